"""ContainerMirror: an in-memory view of every container, kept current by the engine's events.

It is filled by one list plus an inspect per container, then follows the event stream
(``docker.events.watch``, which reconnects by itself): each event that can change a container's
state re-inspects that one container, and ``destroy`` drops it. When the stream breaks (engine
restart, socket gone) the mirror is marked stale at once and, once the engine answers again,
re-read in full: the engine replays only its last 256 events and none from before its own
restart, so a gap is never patched from events alone. A periodic reconcile is the safety net
against anything missed: it lists every container, drops those no longer listed, and inspects
only those the view lacks or whose state or name disagrees with it and, in turn, a share of the
others, so that each container is re-read within ``REREAD_PASSES`` passes (at 1,000 containers
a full re-read every minute cost seconds of CPU and remade every inspect for the collector).

Readers use it only while it is ``fresh``; otherwise they ask the engine (which answers, or fails
with a 503 as every route must when the engine is down). :meth:`ContainerMirror.every_container`
does both for "every container, fresh": the listing, ``/metrics`` and the sampler use it.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import docker_api
from docker_api import DockerClient

__all__ = ["ContainerMirror", "EventListener", "InspectFailed", "inspect_many"]

log = logging.getLogger("dockerlink.mirror")

#: Container events after which its inspect may differ. (exec_*, attach, top... change nothing.)
STATE_EVENTS = (
    "create",
    "start",
    "restart",
    "die",
    "stop",
    "kill",
    "oom",
    "pause",
    "unpause",
    "rename",
    "update",
    "destroy",
    "health_status",
)
INSPECT_CONCURRENCY = 16
#: A reconcile re-reads ``1/REREAD_PASSES`` of the containers whose summary agrees with the view.
REREAD_PASSES = 10

#: Told of a container that could not be inspected (its id, the error): it is then left out.
InspectFailed = Callable[[str, Exception], None]


class EventListener(Protocol):
    """Told each container event the mirror reads, and each time it (re)opened the stream (there
    may have been a gap before). Both are called on the event loop and must not block."""

    def on_event(self, event: dict[str, Any]) -> None: ...

    def on_resync(self) -> None: ...


class ContainerMirror:
    def __init__(
        self,
        docker: DockerClient,
        *,
        reconcile_interval_s: float = 60.0,
        retry_delay_s: float = 1.0,
    ) -> None:
        self._docker = docker
        self._by_id: dict[str, dict[str, Any]] = {}
        self._id_by_name: dict[str, str] = {}
        #: For each re-read under way, what changed meanwhile (an inspect, or None: removed).
        self._reading: list[dict[str, dict[str, Any] | None]] = []
        self._fresh = False
        self._following = False
        self._said_stale = False
        self._reconcile_interval_s = reconcile_interval_s
        self._reread_from = ""  # where the reconcile's turn of re-reads goes on (a container id)
        self._retry_delay_s = retry_delay_s
        self._resynced = asyncio.Event()
        self.resyncs = 0
        #: Counts the changes to the view: whatever was made from it while this number stays
        #: the same may be reused (each change of a container's inspect, a removal, a re-read).
        self.version = 0
        self.listeners: list[EventListener] = []

    # -- reading ------------------------------------------------------------------------------

    @property
    def fresh(self) -> bool:
        """True while the mirror follows a live event stream (readers may trust it)."""
        return self._fresh

    def get(self, ref: str) -> dict[str, Any] | None:
        """The inspect of a container by full id, name, or unique id prefix; None if unknown."""
        info = self._by_id.get(ref)
        if info is not None:
            return info
        container_id = self._id_by_name.get(ref.lstrip("/"))
        if container_id is not None:
            return self._by_id.get(container_id)
        matches = [cid for cid in self._by_id if cid.startswith(ref)] if len(ref) >= 1 else []
        return self._by_id[matches[0]] if len(matches) == 1 else None

    def all(self) -> list[dict[str, Any]]:
        return list(self._by_id.values())

    async def every_container(
        self,
        *,
        timeout: float | None = None,
        concurrency: int = INSPECT_CONCURRENCY,
        on_failure: InspectFailed | None = None,
    ) -> list[dict[str, Any]]:
        """Every container's inspect: the mirror's while it is fresh, else listed and inspected
        now (``concurrency`` at a time, each call with ``timeout``).

        A container removed between the list and its inspect is left out. Any other failure to
        inspect one fails the whole call (a partial answer would pass for a complete one), unless
        ``on_failure`` is given: it is then told, and that container is left out.
        """
        if self.fresh:
            return self.all()
        return await self._read_all(timeout=timeout, concurrency=concurrency, on_failure=on_failure)

    async def _read_all(
        self,
        *,
        timeout: float | None = None,
        concurrency: int = INSPECT_CONCURRENCY,
        on_failure: InspectFailed | None = None,
    ) -> list[dict[str, Any]]:
        summaries = await self._docker.containers.list(all=True, timeout=timeout)
        ids = [str(summary["Id"]) for summary in summaries if summary.get("Id")]
        infos = await inspect_many(
            self._docker, ids, timeout=timeout, concurrency=concurrency, on_failure=on_failure
        )
        return [info for info in infos if info is not None]

    async def wait_fresh(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the first full read; True when fresh."""
        if not self._fresh:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the event is set, and the cancelled caller would run on.
            try:
                async with asyncio.timeout(timeout):
                    await self._resynced.wait()
            except TimeoutError:
                return False
        return self._fresh

    # -- writing (routes call these right after changing a container) --------------------------

    async def refresh(self, container_id: str) -> None:
        """Re-inspect one container now; drop it if the engine no longer knows it."""
        try:
            info = await self._docker.containers.inspect(container_id)
        except docker_api.NotFound:
            self.forget(container_id)
        else:
            self._store(info)

    def forget(self, container_id: str) -> None:
        for changes in self._reading:
            changes[container_id] = None
        info = self._by_id.pop(container_id, None)
        self.version += 1
        if info is not None:
            name = str(info.get("Name", "")).lstrip("/")
            if self._id_by_name.get(name) == container_id:
                del self._id_by_name[name]

    def _store(self, info: dict[str, Any]) -> None:
        container_id = str(info["Id"])
        for changes in self._reading:
            changes[container_id] = info
        self._put(info)

    def _put(self, info: dict[str, Any]) -> None:
        container_id = str(info["Id"])
        old = self._by_id.get(container_id)
        if old is not None and old.get("Name") != info.get("Name"):
            old_name = str(old.get("Name", "")).lstrip("/")
            if self._id_by_name.get(old_name) == container_id:  # (not another's by now)
                del self._id_by_name[old_name]
        self._by_id[container_id] = info
        self._id_by_name[str(info.get("Name", "")).lstrip("/")] = container_id
        self.version += 1

    # -- the lifecycle task ---------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the engine forever (cancel to stop): re-read, then apply events as they come.

        Run :meth:`reconcile_forever` beside it as the safety net.
        """
        try:
            while True:
                try:
                    await self._follow()
                except docker_api.DockerError as exc:  # a re-read failed: start again
                    self._stale(exc.message)
                await asyncio.sleep(self._retry_delay_s)
        finally:
            self._fresh = False

    def _stale(self, reason: str) -> None:
        """Said once per outage (the first failed start too), not at every retry."""
        if self._fresh or (self.resyncs == 0 and not self._said_stale):
            log.warning("container mirror stale: %s", reason)
            self._said_stale = True
        self._fresh = self._following = False

    async def _follow(self) -> None:
        # Events since just before the re-read are replayed, so nothing falls in between;
        # applying one twice is harmless (it re-inspects).
        since = f"{time.time() - 1.0:.3f}"
        events = self._docker.events.watch(  # an async generator: closed in the finally
            filters={"type": ["container"], "event": list(STATE_EVENTS)},
            since=since,
            retry_delay_s=self._retry_delay_s,
            on_break=self._stale,
        )
        first = asyncio.ensure_future(anext(events))  # opens the stream before the re-read
        try:
            await self.resync()
            self._fresh = self._following = True
            self._resynced_for_listeners()
            item = await first
            while True:
                if isinstance(item, docker_api.Reconnected):
                    log.info("engine event stream back; re-reading containers")
                    await self.resync()
                    self._fresh = self._following = True
                    self._resynced_for_listeners()
                else:
                    await self._apply(item)
                item = await anext(events)
        finally:
            self._following = False
            first.cancel()
            await asyncio.wait([first])  # settle it before closing the generator
            if not first.cancelled():
                first.exception()  # retrieved: it is reported by whoever raised above
            await events.aclose()

    def _resynced_for_listeners(self) -> None:
        for listener in self.listeners:
            listener.on_resync()

    async def _apply(self, event: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.on_event(event)
        actor = event.get("Actor") or {}
        container_id = actor.get("ID") or event.get("id")
        if not isinstance(container_id, str):
            return
        if event.get("Action") == "destroy":
            self.forget(container_id)
        else:
            await self.refresh(container_id)

    async def resync(self) -> None:
        """Re-read every container from the engine and replace the whole view.

        What the events and the routes changed while the re-read ran is newer than what it
        read: it is applied again over the new view (a container destroyed meanwhile stays
        forgotten, one created meanwhile stays)."""
        changes: dict[str, dict[str, Any] | None] = {}
        self._reading.append(changes)
        try:
            infos = await self._read_all()
        finally:
            self._reading.remove(changes)
        self._by_id = {}
        self._id_by_name = {}
        self.version += 1
        for info in infos:
            self._put(info)
        for container_id, changed in changes.items():
            if changed is None:
                self.forget(container_id)
            else:
                self._store(changed)
        self.resyncs += 1
        self._resynced.set()

    async def reconcile(self) -> None:
        """One pass of the safety net: list every container, then inspect those the view lacks,
        those whose summary disagrees with the view (state or name), and the next
        ``1/REREAD_PASSES`` of the others (in id order, going on where the last pass stopped);
        drop those no longer listed.

        As in :meth:`resync`, what events and routes changed meanwhile is newer and kept. An
        inspect equal to the view's leaves it as it is (``version`` unchanged).
        """
        changes: dict[str, dict[str, Any] | None] = {}
        self._reading.append(changes)
        try:
            summaries = await self._docker.containers.list(all=True)
            by_id = {str(summary["Id"]): summary for summary in summaries if summary.get("Id")}
            listed = dict(sorted(by_id.items()))  # (unique keys: no summaries compared)
            ids = self._worth_reading(listed)
            infos = await inspect_many(self._docker, ids)
        finally:
            self._reading.remove(changes)
        for container_id, info in zip(ids, infos, strict=True):
            if container_id in changes:
                continue
            if info is None:
                self.forget(container_id)
            elif info != self._by_id.get(container_id):
                self._put(info)
        for container_id in [cid for cid in self._by_id if cid not in listed]:
            if container_id not in changes:
                self.forget(container_id)

    def _worth_reading(self, listed: dict[str, dict[str, Any]]) -> list[str]:
        """The ids a reconcile inspects (see :meth:`reconcile`) of the summaries ``listed`` by
        id, in id order."""
        agree: list[str] = []
        chosen: set[str] = set()
        for container_id, summary in listed.items():
            info = self._by_id.get(container_id)
            if info is None or not _agrees(summary, info):
                chosen.add(container_id)
            else:
                agree.append(container_id)
        if agree:
            start = bisect.bisect_left(agree, self._reread_from) % len(agree)
            share = -(-len(agree) // REREAD_PASSES)
            chosen.update((agree + agree)[start : start + share])
            self._reread_from = agree[(start + share) % len(agree)]
        return [cid for cid in listed if cid in chosen]

    async def reconcile_forever(self) -> None:
        """Reconcile every ``reconcile_interval_s`` while following (cancel to stop); after a
        pass that failed, the next one re-reads everything."""
        failed = False
        while True:
            await asyncio.sleep(self._reconcile_interval_s)
            if not self._following:
                continue
            try:
                await (self.resync() if failed else self.reconcile())
            except docker_api.DockerError as exc:
                log.warning("container mirror reconcile failed: %s", exc.message)
                self._fresh = False
                failed = True
            else:
                self._fresh = self._following
                failed = False


def _agrees(summary: dict[str, Any], info: dict[str, Any]) -> bool:
    """True when a container's list summary shows the same state and name as its inspect."""
    state = info.get("State")
    status = state.get("Status") if isinstance(state, dict) else None
    names = summary.get("Names")
    return summary.get("State") == status and isinstance(names, list) and info.get("Name") in names


async def inspect_many(
    docker: DockerClient,
    refs: Iterable[str],
    *,
    timeout: float | None = None,
    concurrency: int = INSPECT_CONCURRENCY,
    on_failure: InspectFailed | None = None,
) -> list[dict[str, Any] | None]:
    """Inspect several containers at once (``concurrency`` at a time); None for one the engine
    does not know.

    Any other failure fails the whole call (a partial answer would pass for a complete one),
    unless ``on_failure`` is given: it is then told, and the container's answer is None.
    """
    semaphore = asyncio.Semaphore(concurrency)

    async def inspect(ref: str) -> dict[str, Any] | None:
        async with semaphore:
            try:
                return await docker.containers.inspect(ref, timeout=timeout)
            except docker_api.NotFound:
                return None
            except Exception as exc:
                if on_failure is None:
                    raise
                on_failure(ref, exc)
                return None

    tasks = [asyncio.ensure_future(inspect(ref)) for ref in refs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
