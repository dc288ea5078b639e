"""ContainerMirror: an in-memory view of every container, kept current by the engine's events.

It is filled by one list plus an inspect per container, then follows the event stream: each event
that can change a container's state re-inspects that one container, and ``destroy`` drops it.
When the stream breaks (engine restart, socket gone) the mirror is marked stale and, once the
engine answers again, re-read in full: the engine replays only its last 256 events and none from
before its own restart, so a gap is never patched from events alone. A periodic reconcile re-reads
everything as a safety net against anything missed.

Readers use it only while it is ``fresh``; otherwise they ask the engine (which answers, or fails
with a 503 as every route must when the engine is down).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

import docker_api
from docker_api import DockerClient

__all__ = ["ContainerMirror", "EventListener", "inspect_many"]

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
        self._fresh = False
        self._following = False
        self._reconcile_interval_s = reconcile_interval_s
        self._retry_delay_s = retry_delay_s
        self._resynced = asyncio.Event()
        self.resyncs = 0
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

    async def wait_fresh(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the first full read; True when fresh."""
        if not self._fresh:
            try:
                await asyncio.wait_for(self._resynced.wait(), timeout)
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
        info = self._by_id.pop(container_id, None)
        if info is not None:
            name = str(info.get("Name", "")).lstrip("/")
            if self._id_by_name.get(name) == container_id:
                del self._id_by_name[name]

    def _store(self, info: dict[str, Any]) -> None:
        container_id = str(info["Id"])
        old = self._by_id.get(container_id)
        if old is not None and old.get("Name") != info.get("Name"):
            self._id_by_name.pop(str(old.get("Name", "")).lstrip("/"), None)
        self._by_id[container_id] = info
        self._id_by_name[str(info.get("Name", "")).lstrip("/")] = container_id

    # -- the lifecycle task ---------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the engine forever (cancel to stop): re-read, then apply events as they come."""
        reconcile = asyncio.ensure_future(self._reconcile_forever())
        try:
            while True:
                try:
                    await self._follow()
                    log.warning("engine event stream ended; re-reading containers")
                except docker_api.DockerError as exc:
                    if self._fresh or self.resyncs == 0:
                        log.warning("container mirror stale: %s", exc.message)
                self._fresh = False
                await asyncio.sleep(self._retry_delay_s)
        finally:
            self._fresh = False
            reconcile.cancel()

    async def _follow(self) -> None:
        # Events since just before the re-read are replayed, so nothing falls in between;
        # applying one twice is harmless (it re-inspects).
        since = f"{time.time() - 1.0:.3f}"
        events = self._docker.events.stream(  # an async generator: closed in the finally
            filters={"type": ["container"], "event": list(STATE_EVENTS)}, since=since
        )
        first = asyncio.ensure_future(anext(events))  # opens the stream before the re-read
        try:
            await self.resync()
            self._fresh = self._following = True
            for listener in self.listeners:
                listener.on_resync()
            try:
                event: dict[str, Any] | None = await first
            except StopAsyncIteration:
                return
            while event is not None:
                await self._apply(event)
                event = await anext(events, None)
        finally:
            self._following = False
            first.cancel()
            await asyncio.wait([first])  # settle it before closing the generator
            if not first.cancelled():
                first.exception()  # retrieved: it is reported by whoever raised above
            await events.aclose()

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
        """Re-read every container from the engine and replace the whole view."""
        summaries = await self._docker.containers.list(all=True)
        infos = await inspect_many(self._docker, [s["Id"] for s in summaries])
        self._by_id = {}
        self._id_by_name = {}
        for info in infos:
            if info is not None:  # removed between the list and the inspect
                self._store(info)
        self.resyncs += 1
        self._resynced.set()

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self._reconcile_interval_s)
            if not self._following:
                continue
            try:
                await self.resync()
            except docker_api.DockerError as exc:
                log.warning("container mirror reconcile failed: %s", exc.message)
                self._fresh = False
            else:
                self._fresh = self._following


async def inspect_many(docker: DockerClient, refs: Iterable[str]) -> list[dict[str, Any] | None]:
    """Inspect several containers at once (bounded); None for one the engine does not know.

    Any other engine error fails the whole call: a partial answer would pass for a complete one.
    """
    semaphore = asyncio.Semaphore(INSPECT_CONCURRENCY)

    async def inspect(ref: str) -> dict[str, Any] | None:
        async with semaphore:
            try:
                return await docker.containers.inspect(ref)
            except docker_api.NotFound:
                return None

    tasks = [asyncio.ensure_future(inspect(ref)) for ref in refs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
