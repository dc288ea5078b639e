"""The lifecycle event log: what happened to each dockerlink container, kept on disk.

**Source.** The engine's event stream that :class:`~dockerlink.mirror.ContainerMirror` follows:
the mirror hands every container event to :class:`LifecycleEvents` (``on_event``), and says when
it (re)opened the stream (``on_resync``). No polling. Only containers with the ``dockerlink``
label are recorded (the engine puts a container's labels in each event's attributes, so no
inspect is needed to tell).

**Types.** ``create``, ``start``, ``stop``, ``die``, ``oom``, ``restart``, ``update``, ``destroy``;
each one ``{"time": <unix s>, "id": <full id>, "name": <no />, "type": ..., ..., "event_id": ...}``.
``time`` is the engine's own time of the event; ``event_id`` is unique and stable (made from the
container, the engine's nanosecond time and the type), so a webhook receiver can drop a repeat.

**Crash or not.** Seen on Docker 20.10 (``docker events``): a stop (through dockerlink or
``docker stop``) is ``kill`` (signal 15), ``kill`` (9) when the grace period runs out, ``die``,
``stop``; ``docker kill`` is ``kill`` (9), ``die``; a restart is ``kill``, ``die``, ``stop``,
``start``, ``restart``; a process that exits on its own gives only ``die``; an OOM kill gives
``oom`` then ``die`` (exit code 137). So a ``die`` is a crash when no ``kill`` came since the
container started, or when an ``oom`` did. ``die`` carries ``exit_code``, ``oom_killed``, ``crash``.
The engine reports the two of an OOM kill from separate sources (the cgroup's OOM notice, the
process's exit), usually about 50 ms apart; under load the ``oom`` can come just after the
``die``. A ``die`` that looks like one (exit code 137, no ``kill``, no ``oom`` yet) waits up to
``OOM_AFTER_DIE_S`` for the container's ``oom``: one that comes is recorded first, at the
``die``'s time, so that the log reads ``oom`` then ``die`` as usual.

**Restart policy.** The engine restarts a container by its policy with a plain ``start`` (no
``restart`` event), and counts it in ``RestartCount`` (which a manual start resets to 0). After a
crash, a ``start`` whose inspect shows ``RestartCount`` > 0 is recorded as ``start`` then
``restart`` with ``"policy": true`` and ``restart_count``.

**Catch-up.** Each time the mirror (re)opens the stream, the engine's replay of recent events
(``since`` the last recorded event, until now: the engine keeps its last 256) is read first, and
nothing is recorded twice: an event older than the container's last record, or with an
``event_id`` already recorded, is skipped. Then a container whose ``State.FinishedAt`` is later
than anything recorded for it (and not later than the replay's end: the live stream has those
deaths) died while nobody watched: its ``die`` is recorded from inspect (``"source": "inspect"``,
the time is ``FinishedAt``, with ``ExitCode`` and ``OOMKilled``; ``crash`` is true after an OOM
kill and null otherwise, since nobody saw whether a stop was asked). Nothing else is invented.

**On disk** (``<data_dir>/events``): ``<full id>/<file number>.jsonl``, one event per line, as the
route serves it. Writes are appends of whole lines from one writer thread (never on the event
loop), with the crash rules of :mod:`dockerlink.journal` (a torn last line is skipped when read
and cut before the next append). A file holds at most ``EVENTS_PER_FILE`` events or one day's.
**Retention** deletes whole files: the oldest while a container has more than
``MAX_PER_CONTAINER`` events, and any whose newest event is older than ``RETENTION_S``. Every
kept event is also in memory (served from there, a few hundred bytes each).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import concurrent.futures
import functools
import heapq
import itertools
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

import docker_api

from .journal import Appender, JournalLocked, lock_directory, read_objects
from .prometheus import Counter, Exposition
from .units import engine_time_ns

if TYPE_CHECKING:
    from docker_api import DockerClient

    from .mirror import ContainerMirror
    from .webhooks import WebhookOutbox

__all__ = [
    "EVENT_TYPES",
    "EventLog",
    "LifecycleEvents",
    "open_event_log",
]

log = logging.getLogger("dockerlink.events")

DAY_S = 24 * 3600
#: The recorded types, as the API contract lists them.
EVENT_TYPES = ("create", "start", "stop", "die", "oom", "restart", "update", "destroy")
#: Engine actions read: the recorded ones, and ``kill`` (a stop or kill was asked).
ENGINE_ACTIONS = (*EVENT_TYPES, "kill")
MAX_PER_CONTAINER = 1000
RETENTION_S = 30 * DAY_S
EVENTS_PER_FILE = 100
FILE_PERIOD_S = DAY_S
#: A ``die`` recorded from inspect stands for the engine's ``die`` up to this much later.
INSPECT_DIE_SLACK_S = 5.0
#: Retention runs this often.
MAINTAIN_EVERY_S = 3600.0
#: A catch-up that failed (the engine did not answer) is tried again after this long.
CATCH_UP_RETRY_S = 10.0
#: How long a ``die`` that looks like an OOM kill waits for the container's late ``oom``.
OOM_AFTER_DIE_S = 1.0
#: Event ids remembered per container to recognise a replayed event.
RECENT_IDS = 64

_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"([0-9]{10})\.jsonl")
DOCKERLINK_LABEL = "dockerlink"  # as hosting.DOCKERLINK_LABEL (not imported: no cycle)


@dataclass(slots=True)
class _File:
    number: int
    count: int
    first_time: float
    last_time: float


@dataclass(slots=True)
class _Container:
    container_id: str
    times: list[float] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    files: list[_File] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    recent_ids: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_IDS))
    last: dict[str, Any] | None = None


class EventLog:
    """Every dockerlink container's events, by full id; ``root`` None keeps them in memory.

    Reads and :meth:`add` run on the event loop and touch memory only; :meth:`add` returns the
    disk work (a function) for the caller to run in its writer thread, in order.
    """

    def __init__(self, root: Path | None, *, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._clock = clock
        self._containers: dict[str, _Container] = {}
        self._lock_fd: int | None = None
        #: Touched only by the writer thread.
        self._appender = Appender()
        self._write_failing = False

    # -- life cycle (blocking: run in a thread) ---------------------------------------------

    def open(self) -> None:
        if self.root is None:
            return
        self._lock_fd = lock_directory(self.root)
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir() and _CONTAINER_ID.fullmatch(entry.name):
                self._load(Path(entry.path))
        self.remove(self.maintain())

    def close(self) -> None:
        self._containers.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _load(self, directory: Path) -> None:
        container = _Container(directory.name)
        numbers = sorted(
            int(match.group(1))
            for name in os.listdir(directory)
            if (match := _FILE_NAME.fullmatch(name))
        )
        for number in numbers:
            events = [
                event
                for event in read_objects(directory / _file_name(number))
                if isinstance(event.get("time"), int | float) and event.get("id") == directory.name
            ]
            if not events:
                continue
            times = [float(event["time"]) for event in events]
            container.files.append(_File(number, len(events), times[0], max(times)))
            for event, moment in zip(events, times, strict=True):
                self._remember(container, event, moment, orjson.dumps(event))
        if container.files:
            self._containers[container.container_id] = container

    @staticmethod
    def _remember(container: _Container, event: dict[str, Any], moment: float, line: bytes) -> None:
        """Keep an event in memory, after the others (a container's events come in time order)."""
        container.times.append(moment)
        container.lines.append(line)
        if isinstance(event.get("name"), str):
            container.names.add(event["name"])
        if isinstance(event.get("event_id"), str):
            container.recent_ids.append(event["event_id"])
        container.last = event

    # -- reading -------------------------------------------------------------------------------

    def __contains__(self, container_id: object) -> bool:
        return container_id in self._containers

    def resolve(self, ref: str) -> str | None:
        """The one stored container id that is ``ref``, starts with it, or was named it."""
        if ref in self._containers:
            return ref
        found = {cid for cid in self._containers if cid.startswith(ref)}
        if not found:
            found = {cid for cid, c in self._containers.items() if ref in c.names}
        return found.pop() if len(found) == 1 else None

    def last_time(self, container_id: str | None = None) -> float | None:
        """The time of the newest event recorded (for one container, or for any)."""
        if container_id is not None:
            container = self._containers.get(container_id)
            return container.times[-1] if container is not None and container.times else None
        newest = [c.times[-1] for c in self._containers.values() if c.times]
        return max(newest) if newest else None

    def last_event(self, container_id: str) -> dict[str, Any] | None:
        container = self._containers.get(container_id)
        return container.last if container is not None else None

    def seen(self, container_id: str, event_id: str) -> bool:
        container = self._containers.get(container_id)
        return container is not None and event_id in container.recent_ids

    def query(self, container_id: str | None, *, since: float = 0.0, limit: int = 100) -> bytes:
        """The newest ``limit`` events later than ``since``, oldest first, as a JSON array."""
        if container_id is not None:
            container = self._containers.get(container_id)
            if container is None:
                return b"[]"
            start = max(bisect.bisect_right(container.times, since), len(container.times) - limit)
            return b"[" + b",".join(container.lines[start:]) + b"]"
        if limit <= 0:
            return b"[]"
        # Each container's events newest first, merged: only the ``limit`` newest are looked at.
        # The key (time, then the container's place, then the event's) orders events of the
        # same moment as the containers are kept and their events were recorded.
        newest_first = [
            _newest_first(container, place, since, limit)
            for place, container in enumerate(self._containers.values())
        ]
        merged = heapq.merge(*newest_first, key=lambda pair: pair[0], reverse=True)
        picked = [line for _, line in itertools.islice(merged, limit)]
        picked.reverse()
        return b"[" + b",".join(picked) + b"]"

    def events(self, container_id: str) -> list[dict[str, Any]]:
        """One container's events, oldest first, as objects."""
        container = self._containers.get(container_id)
        return [orjson.loads(line) for line in container.lines] if container is not None else []

    # -- writing -------------------------------------------------------------------------------

    def add(self, event: dict[str, Any]) -> Callable[[], None]:
        """Record ``event`` in memory now; return the disk work to run in the writer thread."""
        container_id = str(event["id"])
        if not _CONTAINER_ID.fullmatch(container_id):
            raise ValueError(f"not a full container id: {container_id!r}")
        moment = float(event["time"])
        line = orjson.dumps(event)
        container = self._containers.get(container_id)
        if container is None:
            container = self._containers[container_id] = _Container(container_id)
        self._remember(container, event, moment, line)
        current = container.files[-1] if container.files else None
        if (
            current is None
            or current.count >= EVENTS_PER_FILE
            or current.first_time <= moment - FILE_PERIOD_S
        ):
            number = current.number + 1 if current is not None else 1
            current = _File(number, 0, moment, moment)
            container.files.append(current)
        current.count += 1
        current.last_time = max(current.last_time, moment)
        expired = self._trim(container, max_events=MAX_PER_CONTAINER)
        if self.root is None:
            return _nothing
        path = self.root / container_id / _file_name(current.number)

        def write() -> None:
            self._append(path, line + b"\n")
            self.remove(expired)

        return write

    def maintain(self) -> list[Path]:
        """Forget files whose newest event is older than ``RETENTION_S``; the files to delete."""
        horizon = self._clock() - RETENTION_S
        expired: list[Path] = []
        for container in list(self._containers.values()):
            expired.extend(self._trim(container, horizon=horizon))
            if not container.files:
                del self._containers[container.container_id]
                if self.root is not None:
                    expired.append(self.root / container.container_id)
        return expired

    def _trim(
        self, container: _Container, *, max_events: int | None = None, horizon: float | None = None
    ) -> list[Path]:
        """Drop the oldest whole files over the limits; the paths to delete."""
        dropped: list[Path] = []
        while container.files:
            oldest = container.files[0]
            over_count = max_events is not None and len(container.times) > max_events
            too_old = horizon is not None and oldest.last_time < horizon
            if not (over_count or too_old) or (len(container.files) == 1 and over_count):
                break
            container.files.pop(0)
            del container.times[: oldest.count]
            del container.lines[: oldest.count]
            if self.root is not None:
                dropped.append(self.root / container.container_id / _file_name(oldest.number))
        return dropped

    def remove(self, paths: list[Path]) -> None:
        """In the writer thread: delete files, or containers' folders (what :meth:`maintain`
        returns), and forget them as written: a file made again later starts with its folder."""
        for path in paths:
            self._appender.forget(path)
            try:
                if path.is_dir():
                    for child in path.iterdir():
                        child.unlink(missing_ok=True)
                    path.rmdir()
                else:
                    path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("event log: cannot delete %s: %s", path, exc)

    def _append(self, path: Path, data: bytes) -> None:
        """In the writer thread: one append, repairing a torn tail first the first time."""
        try:
            self._appender.append(path, data, make_folder=True)
        except OSError as exc:
            if not self._write_failing:
                log.error("event log: cannot write under %s: %s", self.root, exc)
            self._write_failing = True
            return
        if self._write_failing:
            self._write_failing = False
            log.info("event log: writing under %s again", self.root)


def _newest_first(
    container: _Container, place: int, since: float, limit: int
) -> Iterator[tuple[tuple[float, int, int], bytes]]:
    """A container's ``limit`` newest events later than ``since``, newest first, each with its
    key for :meth:`EventLog.query`'s merge: its time, ``place`` (the container's), its index."""
    times, lines = container.times, container.lines
    start = max(bisect.bisect_right(times, since), len(times) - limit)
    for index in range(len(times) - 1, start - 1, -1):
        yield (times[index], place, index), lines[index]


def _file_name(number: int) -> str:
    return f"{number:010d}.jsonl"


def _nothing() -> None:
    return None


def _in_turn(jobs: list[Callable[[], None]]) -> Callable[[], None]:
    def run_all() -> None:
        for job in jobs:
            job()

    return run_all


def open_event_log(root: Path) -> EventLog:
    """The log on ``root``; when another process holds it, an error is logged and events are
    kept in memory only (two writers would record everything twice)."""
    events = EventLog(root)
    try:
        events.open()
    except JournalLocked as exc:
        log.error("event log: %s: this process keeps events in memory only", exc)
        events = EventLog(None)
    return events


# -- classification ------------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    """What the stream said about a container since it last started."""

    stop_asked: bool = False
    oom: bool = False
    crashed: bool = False


_RESYNC = object()


def _container_and_action(event: dict[str, Any]) -> tuple[Any, Any]:
    """An engine event's container id and action (its current fields, else the legacy ones)."""
    actor = event.get("Actor") or {}
    return actor.get("ID") or event.get("id"), event.get("Action") or event.get("status")


def _is_oom_of(event: dict[str, Any], container_id: str) -> bool:
    return _container_and_action(event) == (container_id, "oom")


class LifecycleEvents:
    """Classifies the mirror's container events and records them (then queues webhooks)."""

    def __init__(
        self,
        docker: DockerClient,
        events: EventLog,
        *,
        mirror: ContainerMirror,
        outbox: WebhookOutbox | None = None,
        call_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._docker = docker
        self.log = events
        #: Every disk write (event log, webhook queue) runs here, one at a time, in order.
        self._writer = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="dockerlink-events"
        )
        self._mirror = mirror
        self._outbox = outbox
        self._call_timeout_s = call_timeout_s
        self._clock = clock
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        #: Items taken from the queue while a ``die`` waited for its ``oom``: handled next.
        self._held: collections.deque[Any] = collections.deque()
        self._catch_up_retry: asyncio.TimerHandle | None = None
        self._states: dict[str, _State] = {}
        self.catch_ups = 0
        self.restarts = Counter(
            "dockerlink_container_restarts_total",
            "Container restarts recorded (through the API, the CLI or the restart policy).",
            ("id", "name"),
        )
        self.oom_kills = Counter(
            "dockerlink_container_oom_kills_total",
            "Processes of the container killed for going over its memory limit.",
            ("id", "name"),
        )
        self.crashes = Counter(
            "dockerlink_container_crashes_total",
            "Container exits nobody asked for (on its own, or killed for memory).",
            ("id", "name"),
        )

    # -- the mirror's listener ------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        self._queue.put_nowait(event)

    def on_resync(self) -> None:
        self._queue.put_nowait(_RESYNC)

    # -- the task -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Record what the mirror hands over, forever (cancel to stop)."""
        maintenance = asyncio.ensure_future(self._maintain_forever())
        try:
            while True:
                item = self._held.popleft() if self._held else await self._queue.get()
                try:
                    if item is _RESYNC:
                        await self.catch_up()
                    else:
                        await self.handle(item, live=True)
                except (docker_api.DockerError, TimeoutError) as exc:
                    text = exc.message if isinstance(exc, docker_api.DockerError) else "timed out"
                    log.warning("event log: engine call failed: %s", text)
                    if item is _RESYNC and self._catch_up_retry is None:
                        # Nothing else would ask again until the mirror's stream breaks: a
                        # death during the gap would go unrecorded.
                        self._catch_up_retry = asyncio.get_running_loop().call_later(
                            CATCH_UP_RETRY_S, self._retry_catch_up
                        )
        finally:
            maintenance.cancel()
            if self._catch_up_retry is not None:
                self._catch_up_retry.cancel()
                self._catch_up_retry = None

    def _retry_catch_up(self) -> None:
        self._catch_up_retry = None
        self.on_resync()

    async def _maintain_forever(self) -> None:
        while True:
            await asyncio.sleep(MAINTAIN_EVERY_S)
            await self._write(functools.partial(self.log.remove, self.log.maintain()))

    async def _write(self, job: Callable[[], None]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._writer, job)

    # -- one engine event -----------------------------------------------------------------------

    async def handle(self, event: dict[str, Any], *, live: bool = False) -> None:
        """Record one engine event. ``live``: it comes from the live stream (see
        :meth:`_late_oom`), not from a catch-up's replay."""
        container_id, action = _container_and_action(event)
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        if (
            event.get("Type", "container") != "container"
            or not isinstance(container_id, str)
            or not _CONTAINER_ID.fullmatch(container_id)
            or DOCKERLINK_LABEL not in attributes
            or action not in ENGINE_ACTIONS
        ):
            return
        nanos = _event_nanos(event)
        name = str(attributes.get("name", "")).lstrip("/")
        state = self._states.setdefault(container_id, _State())
        extra: dict[str, Any] = {}
        crashed_before_start = False
        if action == "kill":
            state.stop_asked = True
            return
        if action == "oom":
            state.oom = True
        elif action == "die":
            exit_code = str(attributes.get("exitCode", ""))
            if live and exit_code == "137" and not state.oom and not state.stop_asked:
                late = await self._late_oom(container_id)
                if late is not None:
                    state.oom = True
                    await self._record(
                        container_id, name, "oom", _event_nanos(late), {}, moment=nanos / 1e9
                    )
            crash = state.oom or not state.stop_asked
            extra = {
                "exit_code": int(exit_code) if exit_code.lstrip("-").isdigit() else None,
                "oom_killed": state.oom,
                "crash": crash,
            }
            state.crashed = crash
        elif action == "start":
            crashed_before_start = state.crashed
            self._states[container_id] = _State()
        elif action == "destroy":
            self._states.pop(container_id, None)
            # Its series end with it: /metrics does not grow with every container ever made.
            for counter in (self.restarts, self.oom_kills, self.crashes):
                counter.forget("id", container_id)
        if action == "die" and self._replays_inspect_die(container_id, nanos):
            return
        recorded = await self._record(container_id, name, action, nanos, extra)
        if recorded and crashed_before_start:
            await self._policy_restart(container_id, name, nanos)

    async def _late_oom(self, container_id: str) -> dict[str, Any] | None:
        """The container's ``oom`` if the live stream brings it within ``OOM_AFTER_DIE_S``,
        taken out of the queue; what else comes meanwhile is held, in order, and handled next."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OOM_AFTER_DIE_S
        while True:
            for item in self._held:
                if item is not _RESYNC and _is_oom_of(item, container_id):
                    self._held.remove(item)
                    return dict(item)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    self._held.append(await self._queue.get())
            except TimeoutError:
                return None

    async def _policy_restart(self, container_id: str, name: str, nanos: int) -> None:
        """A start after a crash: the engine's restart policy, if its restart count says so."""
        try:
            info = await self._docker.containers.inspect(container_id, timeout=self._call_timeout_s)
        except docker_api.NotFound:
            return
        count = info.get("RestartCount")
        if isinstance(count, int) and count > 0:
            await self._record(
                container_id, name, "restart", nanos, {"policy": True, "restart_count": count}
            )

    def _replays_inspect_die(self, container_id: str, nanos: int) -> bool:
        """True for the engine's ``die`` that a ``die`` recorded from inspect already stands for."""
        last = self.log.last_event(container_id)
        if last is None or last.get("type") != "die" or last.get("source") != "inspect":
            return False
        return 0 <= nanos / 1e9 - float(last["time"]) <= INSPECT_DIE_SLACK_S

    async def _record(
        self,
        container_id: str,
        name: str,
        kind: str,
        nanos: int,
        extra: dict[str, Any],
        *,
        moment: float | None = None,
    ) -> bool:
        """Record one event unless it is already there; True when recorded."""
        event_id = f"{container_id[:12]}-{nanos}-{kind}"
        moment = nanos / 1e9 if moment is None else moment
        last = self.log.last_time(container_id)
        if (last is not None and moment < last) or self.log.seen(container_id, event_id):
            return False
        event = {
            "time": moment,
            "id": container_id,
            "name": name,
            "type": kind,
            **extra,
            "event_id": event_id,
        }
        jobs = [self._outbox.add(event)] if self._outbox is not None else []
        jobs.append(self.log.add(event))  # after the webhook queue: a crash between repeats it
        labels = (container_id, name)
        if kind == "restart":
            self.restarts.inc(*labels)
        elif kind == "oom" or (extra.get("source") == "inspect" and extra.get("oom_killed")):
            self.oom_kills.inc(*labels)  # an OOM kill nobody saw happen counts from inspect
        if kind == "die" and extra.get("crash") is True:
            self.crashes.inc(*labels)
        await self._write(_in_turn(jobs))
        return True

    # -- catching up after a gap ----------------------------------------------------------------

    async def catch_up(self) -> None:
        """Read the engine's replay since the last record, then record the deaths inspect proves."""
        since = self.log.last_time()
        if since is None:
            return  # nothing was ever recorded here: there is no gap to fill
        until = self._clock()
        stream = self._docker.events.stream(
            filters={"type": ["container"], "event": list(ENGINE_ACTIONS)},
            since=f"{since:.9f}",
            until=f"{until:.9f}",
        )
        try:
            async with asyncio.timeout(self._call_timeout_s):
                async for event in stream:
                    await self.handle(event)
        finally:
            await stream.aclose()
        for info in await self._mirror.every_container(timeout=self._call_timeout_s):
            await self._inspected_death(info, since, until)
        self.catch_ups += 1

    async def _inspected_death(self, info: dict[str, Any], since: float, until: float) -> None:
        """Record the death ``info`` shows when nothing recorded covers it. A death after
        ``until`` is left to the live stream, open since before then: its events (a ``start``,
        a ``die`` with its exit code and whether it was asked for) wait in the queue, and a
        ``die`` from inspect first would have them skipped as older or replayed."""
        labels = (info.get("Config") or {}).get("Labels") or {}
        if DOCKERLINK_LABEL not in labels:
            return
        container_id = str(info["Id"])
        state = info.get("State") or {}
        finished = engine_time_ns(state.get("FinishedAt"))
        threshold = self.log.last_time(container_id)
        if finished is None or finished / 1e9 <= (threshold if threshold is not None else since):
            return
        if finished / 1e9 > until:
            return
        oom_killed = bool(state.get("OOMKilled"))
        name = str(info.get("Name", "")).lstrip("/")
        await self._record(
            container_id,
            name,
            "die",
            finished,
            {
                "exit_code": state.get("ExitCode"),
                "oom_killed": oom_killed,
                "crash": True if oom_killed else None,
                "source": "inspect",
            },
        )

    async def deliver(self) -> None:
        """The webhook deliveries (cancel to stop); returns at once without ``webhook_url``."""
        if self._outbox is not None:
            await self._outbox.run(self._writer)

    @property
    def outbox(self) -> WebhookOutbox | None:
        return self._outbox

    def close(self) -> None:
        """Finish the writes under way, then let go of the files (blocking: run in a thread)."""
        self._writer.shutdown(wait=True)
        self.log.close()
        if self._outbox is not None:
            self._outbox.close()

    # -- /metrics -------------------------------------------------------------------------------

    def write_metrics(self, out: Exposition) -> None:
        self.restarts.write(out)
        self.oom_kills.write(out)
        self.crashes.write(out)
        if self._outbox is not None:
            self._outbox.write_metrics(out)


def _event_nanos(event: dict[str, Any]) -> int:
    nanos = event.get("timeNano")
    if isinstance(nanos, int) and nanos > 0:
        return nanos
    seconds = event.get("time")
    return int(seconds) * 1_000_000_000 if isinstance(seconds, int | float) else 0
