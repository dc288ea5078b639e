"""The Sampler: one background task that samples every container on the engine into the history.

Every ``interval_s`` it takes every container (running or not) with its state and configured
limits from the :class:`ContainerMirror` while the mirror follows the engine, and otherwise lists
and inspects them (``concurrency`` at a time). The figures of the running ones come from their
cgroup files when a :class:`CgroupSource` is given and can read them (all of a tick's reads in one
worker thread), and otherwise from a one-shot stats call to the engine, container by container:
the same :class:`Reading` either way (see :mod:`.sources`). So on a local engine a tick makes no
engine call at all. Each engine call has its own timeout. A tick runs to its end before the next
one is scheduled, so ticks never overlap; a tick that overruns the interval is followed by the
next one at once. A failing engine or a bad container is logged and skipped; the loop only ends
when cancelled. Once a minute it also runs the store's retention (:meth:`HistoryStore.maintain`).

How the figures are made (see :mod:`.resources` for the formulas):

- CPU percent: the change in the container's CPU time over the change in the read time (the
  engine's, or the clock's for cgroup files) between this sample and this process's previous one
  of the same run of the container. With no such reading (the first sample after dockerlink or
  the container started), it is the CPU time since the container started over the time since
  then, which is exact when the container started after the previous sample and the best figure
  available otherwise.
- Memory used: usage minus inactive file cache; the limit is the one in force (the engine's
  ``memory_stats.limit``, or the cgroup's), the host's memory when none is set.
- Network: totals summed over every interface; the deltas are against the last stored sample,
  and a restart (a new ``StartedAt``) or a counter that went down makes the delta the new total.
- A container that is not running gets a sample with zero usage and its configured limits
  (the memory limit is the host's memory when none is configured, as the engine reports it).
"""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import docker_api
from docker_api import DockerClient

from ..mirror import ContainerMirror
from ..units import KIB, engine_time_ns
from .resources import cpu_limit_centi, cpu_percent, net_delta, round_kib
from .series import Sample
from .sources import CgroupSource, Reading, reading_from_stats, source_summary
from .store import HistoryStore

__all__ = [
    "LATE_TICK_S",
    "MAINTAIN_EVERY_S",
    "SAMPLE_CONCURRENCY",
    "Sampler",
    "Usage",
    "call_timeout_for",
    "concurrency_for",
]

log = logging.getLogger("dockerlink.stats")

MAINTAIN_EVERY_S = 60.0
#: No engine call of the sampler waits less than this (a one-shot stats call takes ~1 s).
MIN_CALL_TIMEOUT_S = 5.0
#: How long the first tick waits for the mirror's first full read (rather than list and inspect
#: everything itself at the same moment).
MIRROR_WAIT_S = 10.0
#: A tick that starts more than this after it was due is late (``Sampler.late_ticks``).
LATE_TICK_S = 1.0


def concurrency_for(max_connections: int) -> int:
    """Containers sampled at once over a client of ``max_connections``: three quarters of them.

    A one-shot stats call holds a connection while the engine's collector waits (about 1 s here);
    48 at once over 64 connections sample 200 containers in about 5 s and leave a quarter of the
    connections to API requests.
    """
    return max(1, max_connections * 3 // 4)


#: Containers sampled at once by default: what a client of 64 connections allows.
SAMPLE_CONCURRENCY = concurrency_for(64)
#: The tick lets the event loop run other work after recording this many samples.
YIELD_EVERY = 64


def call_timeout_for(interval_s: float, docker_timeout_s: float) -> float:
    """Each sampler call may take up to one interval (at least 5 s), never more than any call."""
    return min(docker_timeout_s, max(interval_s, MIN_CALL_TIMEOUT_S))


class CgroupUnreadable(Exception):
    """A running container's cgroup files cannot be read and the engine may not be asked."""


class _CpuReading(NamedTuple):
    """The previous CPU reading of one run of a container (``StartedAt`` names the run)."""

    started_at: str
    total_ns: int
    read_ns: int


class Usage(NamedTuple):
    """A container's cumulative figures at its last sample, as the engine counts them since it
    started (for ``/metrics``; the history keeps rates and KiB). All 0 while it is not running.

    (Named tuples, this and the readings: one is made per running container at every tick, and
    a frozen dataclass costs several times more to make.)"""

    cpu_ns: int
    rx_bytes: int
    tx_bytes: int


#: The figures of a container that is not running (one object for all: a Usage never changes).
_NO_USAGE = Usage(0, 0, 0)


class _Layout:
    """One tick's containers as the tick sorts them: ids, the running ones, and (once every
    stopped one repeated its sample) the stopped ones' repeats, as ``repeat_many`` takes them.
    The next tick with the same inspect answers (nothing changed in the mirror) uses them as
    they are, instead of going over a thousand containers again."""

    __slots__ = ("fixed", "ids", "infos", "repeats", "running", "running_ids")

    def __init__(self, infos: list[Mapping[str, Any]]) -> None:
        self.infos = infos
        self.ids = [str(info["Id"]) for info in infos]
        self.running = [info for info in infos if (info.get("State") or {}).get("Running")]
        self.running_ids = [str(info["Id"]) for info in self.running]
        self.repeats: list[tuple[str, tuple[int, ...]]] | None = None
        #: What each inspect says of its sample, by id, made when first needed.
        self.fixed: dict[str, _Fixed] = {}


class _Fixed(NamedTuple):
    """What a container's inspect says of its samples: the configured memory limit (0: none),
    the CPU limit in hundredths of a percent, and when its current run started."""

    memory_bytes: int
    cpu_limit: int
    started_at: str

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> _Fixed:
        host_config = info.get("HostConfig") or {}
        return cls(
            int(host_config.get("Memory") or 0),
            cpu_limit_centi(host_config),
            str((info.get("State") or {}).get("StartedAt") or ""),
        )


def _same_objects(before: list[Mapping[str, Any]], now: list[Mapping[str, Any]]) -> bool:
    """Whether ``now`` holds the very objects of ``before``, in the same order."""
    return len(before) == len(now) and all(map(operator.is_, before, now))


class Sampler:
    """Samples every container on the engine into a :class:`HistoryStore`."""

    def __init__(
        self,
        docker: DockerClient,
        store: HistoryStore,
        *,
        interval_s: float,
        call_timeout_s: float,
        concurrency: int = SAMPLE_CONCURRENCY,
        maintain_every_s: float = MAINTAIN_EVERY_S,
        clock: Callable[[], float] = time.time,
        mirror: ContainerMirror | None = None,
        cgroups: CgroupSource | None = None,
        api_fallback: bool = True,
        no_cgroups_reason: str = "stats_source=api",
        tick_hooks: Iterable[Callable[[float], None]] = (),
    ) -> None:
        """``mirror``: where containers are taken from while it is fresh. ``cgroups``: read
        figures there first (``no_cgroups_reason``: why there is no such source, for the log).
        ``api_fallback=False`` never asks the engine for stats: a running container whose files
        cannot be read is then logged and not sampled."""
        self.docker = docker
        self.store = store
        #: Where containers are read from. Without a mirror, one that never follows the engine
        #: (so it lists and inspects every time), and the first tick does not wait for it.
        self.mirror = mirror if mirror is not None else ContainerMirror(docker)
        self._wait_for_mirror = mirror is not None
        self.cgroups = cgroups
        self.api_fallback = api_fallback
        self.no_cgroups_reason = no_cgroups_reason
        #: The running containers whose cgroup files could not be read at the last tick.
        self._unreadable: set[str] = set()
        self.interval_s = interval_s
        self.call_timeout_s = call_timeout_s
        self.concurrency = concurrency
        self.maintain_every_s = maintain_every_s
        self._clock = clock
        self._cpu: dict[str, _CpuReading] = {}
        #: The containers not running at the last tick: the inspect answer their sample was
        #: made from, and (id, that sample but its time) as the store's repeat_many takes it
        #: (each tick's sample of a container whose inspect did not change is the same but for
        #: its time).
        self._idle: dict[str, tuple[Mapping[str, Any], tuple[str, tuple[int, ...]]]] = {}
        #: The last tick's containers, as the tick sorted them.
        self._layout: _Layout | None = None
        self._host_memory_bytes: int | None = None
        self._engine_failing = False
        #: Completed ticks, for tests and logs.
        self.ticks = 0
        #: Samples of running containers taken from cgroup files, and from the engine's stats.
        self.cgroup_samples = 0
        self.api_samples = 0
        #: Each container's cumulative figures at its last sample, by full id.
        self.usage: dict[str, Usage] = {}
        #: Ticks that could not list the containers, plus containers that could not be sampled.
        self.errors = 0
        #: Called with each tick's duration in seconds, whether it succeeded or not.
        self.tick_hooks = list(tick_hooks)
        #: Lateness against the schedule (a tick is due ``interval_s`` after the previous one
        #: started, or at once when that one overran): ticks that started more than LATE_TICK_S
        #: late (a busy event loop, or a tick longer than the interval), and the worst seen.
        self.late_ticks = 0
        self.max_lateness_s = 0.0

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every ``interval_s`` until cancelled.

        Returns at once over a memory-only store: another process samples into that data_dir.
        """
        if not self.store.persistent:
            return
        log.info("stats sampler: every %g s, %s", self.interval_s, self.describe_source())
        try:
            await self._run()
        finally:
            if self.cgroups is not None:
                self.cgroups.close()  # the files it kept open

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_maintain = loop.time() + self.maintain_every_s
        if self._wait_for_mirror:
            await self.mirror.wait_fresh(MIRROR_WAIT_S)
        due = loop.time()
        while True:
            started = loop.time()
            self._note_lateness(started - due)
            await self._tick_logged()
            if loop.time() >= next_maintain:
                try:
                    self.store.maintain()
                except Exception:
                    log.exception("stats sampler: retention failed")
                next_maintain = loop.time() + self.maintain_every_s
            due = started + self.interval_s
            await asyncio.sleep(max(due - loop.time(), 0.0))

    def _note_lateness(self, lateness_s: float) -> None:
        self.max_lateness_s = max(self.max_lateness_s, lateness_s)
        if lateness_s > LATE_TICK_S:
            self.late_ticks += 1

    async def _tick_logged(self) -> None:
        started_s = time.monotonic()
        try:
            sampled = await self.tick()
        except docker_api.DockerError as exc:
            self.errors += 1
            if not self._engine_failing:
                log.warning("stats sampler: cannot list containers: %s", exc.message)
            self._engine_failing = True
            return
        except Exception:
            self.errors += 1
            log.exception("stats sampler: tick failed")
            return
        finally:
            for hook in self.tick_hooks:
                hook(time.monotonic() - started_s)
        if self._engine_failing:
            log.info("stats sampler: the engine answers again")
            self._engine_failing = False
        log.debug("stats sampler: %d containers sampled", sampled)

    @property
    def open_files(self) -> int:
        """The cgroup files kept open now (see :mod:`.held`)."""
        return self.cgroups.open_files if self.cgroups is not None else 0

    def describe_source(self) -> str:
        """Where the figures come from, for the start-up log line."""
        if self.cgroups is None:
            return "figures from the engine's stats API"
        fallback = (
            "the engine's stats API" if self.api_fallback else "nothing (stats_source=cgroup)"
        )
        return f"figures from cgroup v{self.cgroups.version} files, else from {fallback}"

    async def tick(self) -> int:
        """Sample every container once; returns how many samples were recorded."""
        infos: list[Mapping[str, Any]] = list(
            await self.mirror.every_container(
                timeout=self.call_timeout_s,
                concurrency=self.concurrency,
                on_failure=self._log_failure,
            )
        )
        layout = self._layout
        # The same inspect answers as at the last tick (the mirror's, while nothing changed):
        # the same containers, running or not, and no container gone since.
        unchanged = layout is not None and _same_objects(layout.infos, infos)
        if not unchanged or layout is None:
            layout = self._layout = _Layout(infos)
        ids, running, running_ids = layout.ids, layout.running, layout.running_ids
        readings: dict[str, Reading] = {}
        if self.cgroups is not None:
            if running:
                host_memory = await self._host_memory()
                readings = await asyncio.to_thread(self.cgroups.read, running, host_memory)
                self.cgroup_samples += len(readings)
            if not unchanged:
                self.cgroups.keep_only(running_ids)
        recorded = 0
        by_engine: list[Mapping[str, Any]] = []
        # The samples made from the readings (and of the stopped containers) are made here, on
        # the loop, without a coroutine each, and handed to the store YIELD_EVERY at a time.
        batch: list[tuple[str, Sample]] = []
        # Not running, and the same inspect as at the last tick: the same sample but its time,
        # one time for all, handed to the store at once at the end (it keeps these as runs, and
        # the same list of them at every tick as one ride; its tick log holds that time once).
        repeats: list[tuple[str, tuple[int, ...]]] = []
        idle = self._idle
        now = int(self._clock())
        # Every stopped container repeated its sample at the last tick, and none changed since:
        # the same repeats again (the same list), and only the running ones to look at.
        known_repeats = layout.repeats if unchanged else None
        known_fixed = layout.fixed
        looked_at = (ids, infos) if known_repeats is None else (running_ids, running)
        for index, (container_id, info) in enumerate(zip(*looked_at, strict=True), 1):
            reading = readings.get(container_id)
            still = idle.get(container_id) if reading is None else None
            if still is not None and still[0] is info:
                repeats.append(still[1])
                continue
            if reading is None and (info.get("State") or {}).get("Running"):
                by_engine.append(info)
            else:  # read from its cgroup, or not running: nothing to wait for
                try:
                    fixed = known_fixed.get(container_id)
                    if fixed is None:
                        fixed = known_fixed[container_id] = _Fixed.of(info)
                    memory_limit = fixed.memory_bytes or self._host_memory_bytes
                    if memory_limit is None:
                        memory_limit = await self._host_memory()
                    sample = self._make_sample(container_id, now, fixed, reading, memory_limit)
                    batch.append((container_id, sample))
                    if reading is None:
                        idle[container_id] = (info, (container_id, tuple(sample[1:])))
                    else:
                        idle.pop(container_id, None)
                except Exception as exc:
                    self._log_failure(container_id, exc)
            if index % YIELD_EVERY == 0:
                # A thousand containers take tens of milliseconds: let requests in between.
                recorded += self.store.append_many(batch)
                batch.clear()
                await asyncio.sleep(0)
        recorded += self.store.append_many(batch)
        if known_repeats is not None:
            repeats = known_repeats
        else:
            layout.repeats = repeats if len(repeats) == len(ids) - len(running) else None
        recorded += self.store.repeat_many(repeats, now) if repeats else 0
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(info: Mapping[str, Any]) -> bool:
            async with semaphore:
                return await self._sample_logged(info, None, False)

        recorded += sum(await asyncio.gather(*(one(info) for info in by_engine)))
        if not unchanged:
            for gone in set(self._cpu).difference(ids):
                del self._cpu[gone]
            for gone in set(self.usage).difference(ids):
                del self.usage[gone]
                self.store.end_run(gone)  # its run of repeated samples ends on disk too
            for gone in set(idle).difference(ids):
                del idle[gone]
        self._report_source(running_ids)
        self.ticks += 1
        return recorded

    def _report_source(self, running: list[str]) -> None:
        """Log where the figures really come from after the first tick, and again whenever a
        running container's cgroup files become unreadable (the engine's stats API, far more
        costly, then takes over for it)."""
        failures = self.cgroups.failures if self.cgroups is not None else {}
        unreadable = {container_id for container_id in running if container_id in failures}
        if self.ticks == 0 or not unreadable <= self._unreadable:
            summary = source_summary(
                self.cgroups, self.no_cgroups_reason, running, api_fallback=self.api_fallback
            )
            log.info("%s", summary)
        self._unreadable = unreadable

    async def _sample_logged(
        self, info: Mapping[str, Any], reading: Reading | None, try_cgroups: bool
    ) -> bool:
        try:
            return await self._sample(info, reading, try_cgroups) is not None
        except Exception as exc:
            self._log_failure(str(info["Id"]), exc)
            return False

    def _log_failure(self, container_id: str, exc: Exception) -> None:
        if isinstance(exc, docker_api.NotFound):
            return  # removed since the listing: not an error
        self.errors += 1
        if isinstance(exc, docker_api.DockerError):
            log.warning("stats sampler: %s: %s", container_id[:12], exc.message)
        elif isinstance(exc, CgroupUnreadable):
            log.warning("stats sampler: %s: %s", container_id[:12], exc)
        else:
            log.error("stats sampler: %s: cannot sample", container_id[:12], exc_info=exc)

    # -- one container -------------------------------------------------------------------------

    async def sample(self, info: Mapping[str, Any]) -> Sample | None:
        """Sample the container ``info`` (an inspect answer) describes, and record it.

        Returns the sample, or None when the store did not take it (same second as the last one,
        or the container was just deleted). Once it returns, the store serves the sample.
        """
        sample = await self._sample(info, None, True)
        await self.store.written()
        return sample

    async def _sample(
        self, info: Mapping[str, Any], reading: Reading | None, try_cgroups: bool
    ) -> Sample | None:
        """Record a sample of ``info``'s container from ``reading``; without one, a running
        container is read from its cgroup (``try_cgroups``), else by the engine."""
        container_id = str(info["Id"])
        fixed = _Fixed.of(info)
        memory_limit = fixed.memory_bytes or await self._host_memory()
        if reading is None and (info.get("State") or {}).get("Running"):
            reading = await self._read(info, try_cgroups)
        t = int(self._clock())
        sample = self._make_sample(container_id, t, fixed, reading, memory_limit)
        return sample if self.store.append(container_id, sample) else None

    def _make_sample(
        self,
        container_id: str,
        t: int,
        fixed: _Fixed,
        reading: Reading | None,
        memory_limit: int,
    ) -> Sample:
        """The sample at ``t`` of a container from ``reading`` (None: not running, or it
        stopped since the inspect); ``memory_limit``: the configured one, else the host's
        memory."""
        if reading is None:
            self._cpu.pop(container_id, None)
            self.usage[container_id] = _NO_USAGE
            return Sample(t, 0, memory_limit, 0, fixed.cpu_limit, 0, 0, 0, 0)
        return self._running_sample(
            container_id, t, fixed.started_at, reading, memory_limit, fixed.cpu_limit
        )

    async def _read(self, info: Mapping[str, Any], try_cgroups: bool) -> Reading | None:
        """A running container's figures: from its cgroup files, else from the engine."""
        container_id = str(info["Id"])
        if try_cgroups and self.cgroups is not None:
            host_memory = await self._host_memory()
            reading = await asyncio.to_thread(self.cgroups.read_one, info, host_memory)
            if reading is not None:
                self.cgroup_samples += 1
                return reading
        if not self.api_fallback:
            raise CgroupUnreadable("its cgroup files cannot be read (stats_source=cgroup)")
        stats = await self.docker.containers.stats(container_id, timeout=self.call_timeout_s)
        reading = reading_from_stats(stats)
        if reading is not None:
            self.api_samples += 1
        return reading

    async def forget(self, container_id: str) -> None:
        """A container was deleted through the API: drop its history and what is kept about it.

        Meant for :attr:`Hosting.delete_hooks`.
        """
        self._cpu.pop(container_id, None)
        self.usage.pop(container_id, None)
        self._idle.pop(container_id, None)
        self._layout = None
        self.store.delete(container_id)

    def _running_sample(
        self,
        container_id: str,
        t: int,
        started_at: str,
        reading: Reading,
        memory_limit: int,
        cpu_limit: int,
    ) -> Sample:
        cpu_total, read_ns = reading.cpu_ns, reading.read_ns
        previous = self._cpu.get(container_id)
        same_run = previous is not None and previous.started_at == started_at
        if previous is not None and same_run and cpu_total >= previous.total_ns:
            percent = cpu_percent(cpu_total - previous.total_ns, read_ns - previous.read_ns)
        else:
            started_ns = engine_time_ns(started_at)
            percent = cpu_percent(cpu_total, read_ns - started_ns) if started_ns else 0.0
        self._cpu[container_id] = _CpuReading(started_at, cpu_total, read_ns)

        tx_bytes, rx_bytes = reading.tx_bytes, reading.rx_bytes
        self.usage[container_id] = Usage(cpu_total, rx_bytes, tx_bytes)
        up, down = tx_bytes // KIB, rx_bytes // KIB
        last = self.store.last(container_id)
        restarted = previous is not None and not same_run
        return Sample(
            t,
            round_kib(reading.memory_used_bytes),
            reading.memory_limit_bytes or memory_limit,
            round(percent * 100),
            cpu_limit,
            up,
            down,
            net_delta(last.up_kib if last else 0, up, reset=restarted),
            net_delta(last.down_kib if last else 0, down, reset=restarted),
        )

    async def _host_memory(self) -> int:
        """The host's memory: the engine's limit for a container with none configured."""
        if self._host_memory_bytes is None:
            info = await self.docker.info(timeout=self.call_timeout_s)
            self._host_memory_bytes = int(info.get("MemTotal") or 0)
        return self._host_memory_bytes
