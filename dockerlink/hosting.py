"""The domain: hosting containers and the rules for creating, changing and powering them.

Everything here works on validated requests (:mod:`dockerlink.requests`) and talks to the engine
only through ``docker_api``. Actions on one container are serialized by a per-container lock;
actions on different containers run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson

import docker_api
from docker_api import DockerClient, Frame

from . import __version__
from .domain_errors import (
    ActionFailed,
    AlreadyRunning,
    AlreadyStopped,
    InUse,
    InvalidRequest,
    MustBeStopped,
    NoSuchContainer,
    NoSuchImage,
    NotManaged,
    NotRunning,
)
from .hooks import HookFailure, Hooks, HookTarget
from .mirror import ContainerMirror, inspect_many
from .requests import CreateRequest, LimitsRequest, LogsRequest
from .settings import Settings
from .units import CPU_PERIOD_US, GIB, cpus_of, engine_time_s

__all__ = [
    "DOCKERLINK_LABEL",
    "PORTS_LABEL",
    "Hosting",
    "KeyedLocks",
    "ManagedContainer",
    "describe",
]

DOCKERLINK_LABEL = "dockerlink"
PORTS_LABEL = "ports"
LABEL_VERSION = f"v{__version__}"
MIN_CPU_QUOTA_US = 1000
WORKDIR = "/var/www/html"
#: Descriptions kept before the ones of containers gone from the mirror are dropped.
DESCRIBED_MIN_LIMIT = 256
#: Listings of given containers kept as JSON (see :meth:`Hosting.cached_listing`): how many, and
#: the largest kept, its query string and answer together (a few containers'; ~1 MiB in all).
LISTINGS_KEPT = 256
LISTING_KEPT_MAX_BYTES = 4096
VOLUME = "/var/www"

log = logging.getLogger("dockerlink")

_VERSION_LABEL = re.compile(r"v\d+\.\d+(\.\d+)?")

DeleteHook = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ManagedContainer:
    """A container dockerlink created, as inspected just now."""

    info: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.info["Id"])

    @property
    def name(self) -> str:
        return str(self.info.get("Name", ""))

    @property
    def running(self) -> bool:
        return bool((self.info.get("State") or {}).get("Running"))

    @property
    def host_config(self) -> dict[str, Any]:
        return self.info.get("HostConfig") or {}


def labels_of(info: dict[str, Any]) -> dict[str, str]:
    return (info.get("Config") or {}).get("Labels") or {}


def host_port_root(labels: dict[str, str]) -> int | None:
    """The ``ports`` label's port, None when it holds none (anyone with engine access can set
    it, to anything)."""
    text = labels.get(PORTS_LABEL, "")
    return int(text) if len(text) <= 5 and text.isascii() and text.isdigit() else None


def describe(info: dict[str, Any]) -> dict[str, Any]:
    """One container as ``GET /v1/container`` shows it (the original's shape, plus limits)."""
    labels = labels_of(info)
    state = info.get("State") or {}
    host_config = info.get("HostConfig") or {}
    out: dict[str, Any] = {
        "name": info.get("Name", ""),
        "dockerlink": labels.get(DOCKERLINK_LABEL, "not_dockerlink"),
        "host_port_root": host_port_root(labels),
        "ports": {port: {} for port in (info.get("Config") or {}).get("ExposedPorts") or {}},
        "state": state.get("Status", "unknown"),
    }
    if state.get("Running"):
        out["started_at"] = engine_time_s(state.get("StartedAt"))
    else:
        out["exit_code"] = state.get("ExitCode", 0)
    out["memory"] = round((host_config.get("Memory") or 0) / GIB, 6)
    out["cpulimit"] = round(cpus_of(host_config), 6)
    out["restart"] = restart_policy_of(host_config)
    out["restart_count"] = int(info.get("RestartCount") or 0)
    return out


def restart_policy_of(host_config: dict[str, Any]) -> str:
    """The engine's restart policy name, ``no`` when none is set (the engine's ``""``)."""
    return str((host_config.get("RestartPolicy") or {}).get("Name") or "no")


def restart_policy(name: str, max_retries: int) -> dict[str, Any]:
    """The engine's ``RestartPolicy`` for a ``restart`` value (retries only for on-failure)."""
    return {"Name": name, "MaximumRetryCount": max_retries if name == "on-failure" else 0}


def start_command(template: str, commands: Iterable[str]) -> str:
    """The container's shell command: ``{commands}`` joined with `` && ``, or dropped cleanly.

    Each command is one link of the chain, in a ``{ ...; }`` group of its own ended by two line
    breaks: a ``#`` comment, a line break or a trailing backslash in one cannot swallow the rest
    of the chain (the keep-alive), and a ``cd`` or an ``export`` still holds for the commands
    after it. (``:;`` first: a command that is only a comment still makes a valid group.)"""
    joined = " && ".join("{ :; " + command + "\n\n}" for command in commands)
    if joined:
        return template.replace("{commands}", joined)
    for form in ("{commands} && ", " && {commands}", "{commands}"):
        if form in template:
            return template.replace(form, "", 1)
    return template


_P = ParamSpec("_P")
_T = TypeVar("_T")


class KeyedLocks:
    """One :class:`asyncio.Lock` per key (a container id), kept while someone holds or awaits
    it: the map does not grow with every container ever acted on."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __getitem__(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


def _to_the_end(
    action: Callable[Concatenate[Hosting, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[Hosting, _P], Coroutine[Any, Any, _T]]:
    """Run a changing action to its end even when its caller is cancelled. Sanic cancels a
    handler when its client goes away: a create cancelled while its hook ran would leave the
    container with no undo nor hook_on_delete, a delete cancelled after the engine removed the
    container would keep its history and its sites."""

    async def run(self: Hosting, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self.run_to_the_end(action.__name__, action(self, *args, **kwargs))

    functools.update_wrapper(run, action)
    return run


class Hosting:
    """Create, inspect, resize, power and delete hosting containers."""

    def __init__(
        self,
        docker: DockerClient,
        settings: Settings,
        mirror: ContainerMirror,
        *,
        delete_hooks: Iterable[DeleteHook] = (),
    ) -> None:
        self.docker = docker
        self.settings = settings
        #: The event-fed view reads are served from, and writes keep current.
        self.mirror = mirror
        self._locks = KeyedLocks()
        self._create_lock = asyncio.Lock()
        self._engine_cpus: int | None = None
        self._engine_memory: int | None = None
        #: Called with a container's id once it is removed (the sampler drops its history).
        self.delete_hooks = list(delete_hooks)
        #: The operator's lifecycle hooks (hook_on_create...), run after each action.
        self.hooks = Hooks(settings)
        #: describe() of the mirror's inspects, by id, with the inspect it was made from: the
        #: mirror replaces a container's inspect object whenever it changes, so a description is
        #: reused while the same object is there (listing 200 containers, or one at 2,000 req/s,
        #: would otherwise parse the same timestamps over and over).
        self._described: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._described_limit = DESCRIBED_MIN_LIMIT
        #: JSON answers of listings of given containers made wholly from the mirror, by query
        #: string, with the mirror's version they were made at.
        self._listings: dict[str, tuple[int, bytes]] = {}
        #: Every container's listing, by ``running``: (mirror version, JSON), as _listings.
        self._full_listings: dict[bool | None, tuple[int, bytes]] = {}
        #: Actions finished so far (see :meth:`acting_on`).
        self._actions_done = 0
        #: Actions whose caller went away, running to their end.
        self._unfinished: set[asyncio.Future[Any]] = set()

    async def wait_unfinished(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the actions whose callers went away (at shutdown,
        while the engine client is still open); returns how many were still running."""
        unfinished = set(self._unfinished)
        if not unfinished:
            return 0
        log.info(
            "waiting up to %g s for %d action(s) whose clients went away", timeout, len(unfinished)
        )
        _done, pending = await asyncio.wait(unfinished, timeout=timeout)
        for task in pending:
            log.warning("an action whose client went away is still running at shutdown: %s", task)
        return len(pending)

    async def run_to_the_end(self, name: str, work: Coroutine[Any, Any, _T]) -> _T:
        """``work``'s result; when the caller is cancelled, ``work`` goes on to its end (logged,
        and waited for at shutdown by :meth:`wait_unfinished`)."""
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                self._unfinished.add(task)
                task.add_done_callback(functools.partial(self._finished, name))
            raise

    def _finished(self, name: str, task: asyncio.Future[Any]) -> None:
        """An action whose caller went away has ended: say how (no one else will)."""
        self._unfinished.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            log.info("%s finished after its client went away", name)
        else:
            log.warning("%s failed after its client went away: %s", name, exc)

    # -- lookups ------------------------------------------------------------------------------

    async def inspect(self, ref: str) -> dict[str, Any]:
        try:
            return await self.docker.containers.inspect(ref)
        except docker_api.NotFound:
            raise NoSuchContainer(ref) from None

    async def managed(
        self, ref: str, *, mirrored: bool = False, name_only: bool = False
    ) -> ManagedContainer:
        """Inspect a container and check dockerlink made it (412 otherwise, whatever its state).

        ``mirrored``: take the inspect from the mirror while it is fresh (no engine call), for
        actions that fail safely on their own if it is a few milliseconds behind the engine.
        ``name_only``: ``ref`` must be the container's name (not an id or id prefix).
        """
        info = self._from_mirror(ref) if mirrored else None
        if info is None:
            info = await self.inspect(ref)
        if name_only and str(info.get("Name", "")).lstrip("/") != ref:
            raise NoSuchContainer(ref)
        label = labels_of(info).get(DOCKERLINK_LABEL)
        if label is None:
            raise NotManaged()
        if not _VERSION_LABEL.fullmatch(label):
            raise NotManaged(too_old=True)
        return ManagedContainer(info)

    def _from_mirror(self, ref: str) -> dict[str, Any] | None:
        return self.mirror.get(ref) if self.mirror.fresh else None

    @contextlib.asynccontextmanager
    async def acting_on(
        self, ref: str, *, mirrored: bool = False
    ) -> AsyncIterator[ManagedContainer]:
        """Hold the container's lock for one action; yields its state as of taking the lock
        (``mirrored``: see :meth:`managed`; when any action ended since it was read, a slow
        inspect may predate it, so it is asked again under the lock)."""
        done_before = self._actions_done
        container = await self.managed(ref, mirrored=mirrored)
        async with self._locks[container.id]:
            if self._actions_done != done_before:  # another action ran meanwhile: look again
                container = await self.managed(container.id)
            try:
                yield container
            finally:
                self._actions_done += 1

    async def _changed(self, container_id: str) -> None:
        """Bring the mirror up to date at once after a change made through the API. The change
        is made: an engine that does not answer the inspect now must not fail the action (its
        hooks, its answer); the engine's events bring the view up to date later."""
        try:
            await self.mirror.refresh(container_id)
        except docker_api.DockerError as exc:
            log.warning("%s: cannot read it again after a change: %s", container_id[:12], exc)

    async def _removed(self, container_id: str) -> None:
        """Forget a container the API has just removed: in the mirror, then in every hook."""
        self.mirror.forget(container_id)
        for hook in self.delete_hooks:
            await hook(container_id)

    async def engine_cpus(self) -> int:
        if self._engine_cpus is None:
            await self._read_engine_info()
        assert self._engine_cpus is not None
        return self._engine_cpus

    async def engine_memory(self) -> int:
        """The engine host's total memory in bytes (``/info`` ``MemTotal``; 0 when unknown)."""
        if self._engine_memory is None:
            await self._read_engine_info()
        assert self._engine_memory is not None
        return self._engine_memory

    async def _read_engine_info(self) -> None:
        """Read the host's CPU count and memory once: neither changes while the engine runs."""
        info = await self.docker.info()
        self._engine_cpus = int(info.get("NCPU") or 1)
        memory = info.get("MemTotal")
        self._engine_memory = memory if isinstance(memory, int) and memory > 0 else 0

    # -- listing ------------------------------------------------------------------------------

    async def list_containers(
        self, asked: Mapping[str, str] | None, running: bool | None
    ) -> dict[str, dict[str, Any]]:
        """``{"error": {...}, "success": {...}}`` for the containers asked (each answer keyed as
        it was asked, to the reference looked up), or for every container.

        Served from the mirror while it follows the engine; otherwise (and for an id the mirror
        does not know) from the engine, so an outage is a 503, never a false "no such container".
        """
        listing, _ = await self._list_containers(asked, running)
        return listing

    def cached_listing(self, key: str) -> bytes | None:
        """The JSON answer :meth:`listing_json` made for ``key`` while the mirror, still fresh,
        has not changed since; None otherwise."""
        return self._unchanged(self._listings.get(key))

    async def listing_json(
        self, asked: Mapping[str, str], running: bool | None, *, key: str
    ) -> bytes:
        """:meth:`list_containers` as JSON. An answer made wholly from the mirror (every
        container found there) is kept by ``key``, the request's query string, until the mirror
        changes: :meth:`cached_listing` gives it again."""
        version, body = await self._listing_to_keep(asked, running)
        if version is not None and len(key) + len(body) <= LISTING_KEPT_MAX_BYTES:
            listings = self._listings
            if key not in listings and len(listings) >= LISTINGS_KEPT:
                del listings[next(iter(listings))]  # the oldest
            listings[key] = (version, body)
        return body

    async def full_listing_json(self, running: bool | None) -> bytes:
        """:meth:`list_containers` of every container as JSON. Made from the mirror alone, it
        is kept until the mirror changes (one answer for each value of ``running``): a panel
        that polls the list of 1,000 containers gets the same bytes again while nothing
        changed."""
        kept = self._unchanged(self._full_listings.get(running))
        if kept is not None:
            return kept
        version, body = await self._listing_to_keep(None, running)
        if version is not None:
            self._full_listings[running] = (version, body)
        return body

    def _unchanged(self, kept: tuple[int, bytes] | None) -> bytes | None:
        """A kept answer (the mirror's version it was made at, its JSON) while the mirror,
        still fresh, has not changed since; None otherwise."""
        mirror = self.mirror
        if kept is not None and kept[0] == mirror.version and mirror.fresh:
            return kept[1]
        return None

    async def _listing_to_keep(
        self, asked: Mapping[str, str] | None, running: bool | None
    ) -> tuple[int | None, bytes]:
        """:meth:`list_containers` as JSON, with the mirror's version to keep it under: None
        when the mirror alone did not make it, or changed meanwhile."""
        version = self.mirror.version
        listing, from_mirror = await self._list_containers(asked, running)
        body = orjson.dumps(listing)
        return (version if from_mirror and self.mirror.version == version else None), body

    async def _list_containers(
        self, asked: Mapping[str, str] | None, running: bool | None
    ) -> tuple[dict[str, dict[str, Any]], bool]:
        """:meth:`list_containers`'s answer, and whether it is the mirror's alone (the mirror
        fresh, each container asked found in it)."""
        mirror = self.mirror if self.mirror.fresh else None
        errors: dict[str, str] = {}
        success: dict[str, Any] = {}
        if asked:
            infos = {key: mirror.get(ref) if mirror else None for key, ref in asked.items()}
            missing = [asked[key] for key, info in infos.items() if info is None]
            looked_up: dict[str, dict[str, Any] | None] = {}
            if missing:
                missing = list(dict.fromkeys(missing))  # "/web1" and "web1": one inspect
                inspected = await inspect_many(self.docker, missing)
                looked_up = dict(zip(missing, inspected, strict=True))
            for key, info in infos.items():
                if info is not None:
                    success[key] = self._describe_mirrored(info)
                elif (found := looked_up.get(asked[key])) is not None:
                    success[key] = describe(found)
                else:
                    errors[key] = f"no such container: {asked[key]}"
            return {"error": errors, "success": success}, mirror is not None and not missing
        describe_one = self._describe_mirrored if mirror is not None else describe
        for info in await self.mirror.every_container():
            state = info.get("State") or {}
            if running is None or bool(state.get("Running")) == running:
                success[info["Id"]] = describe_one(info)
        return {"error": errors, "success": success}, mirror is not None

    def _describe_mirrored(self, info: dict[str, Any]) -> dict[str, Any]:
        """``describe(info)`` for an inspect the mirror holds, made once per inspect object."""
        container_id = str(info["Id"])
        known = self._described.get(container_id)
        if known is not None and known[0] is info:
            return known[1]
        description = describe(info)
        self._described[container_id] = (info, description)
        if len(self._described) > self._described_limit:
            # Drop the containers the mirror no longer holds (or holds in a newer version).
            mirror = self.mirror
            self._described = {
                cid: entry for cid, entry in self._described.items() if mirror.get(cid) is entry[0]
            }
            self._described_limit = max(DESCRIBED_MIN_LIMIT, 2 * len(self._described))
        return description

    # -- create / delete ----------------------------------------------------------------------

    @_to_the_end
    async def create(self, request: CreateRequest) -> dict[str, Any]:
        """Create the container, then run hook_on_create.

        A failing create hook undoes the creation: the container is removed, hook_on_delete runs
        (to clean up after a hook that got halfway) and the answer is a 500 with its output.
        """
        created = await self._create_container(request)
        target = HookTarget.of(
            str(created["Id"]),
            request.name,
            request.host_port_root,
            [spec.key for spec in request.ports],
        )
        failure = await self.hooks.run("create", target)
        if failure is not None:
            await self._undo_create(target, failure)
        return created

    async def _undo_create(self, target: HookTarget, failure: HookFailure) -> None:
        removal = "the container was removed"
        try:
            await self.docker.containers.remove(target.id, force=True, volumes=True)
        except docker_api.DockerError as exc:
            log.error("could not remove %s after %s failed: %s", target.name, failure.setting, exc)
            removal = f"removing the container failed too ({exc.message})"
        else:
            await self._removed(target.id)
        await self.hooks.run("delete", target)
        raise ActionFailed(
            f"{failure.setting} failed ({failure.reason}), {removal}; "
            f"its output: {failure.output.strip() or '(none)'}"
        )

    async def _run_hook(
        self, hook: str, container: ManagedContainer, *, event: str | None = None
    ) -> HookFailure | None:
        """Run one lifecycle hook for a container the action has just changed."""
        config = container.info.get("Config") or {}
        target = HookTarget.of(
            container.id,
            container.name,
            host_port_root(labels_of(container.info)),
            list(config.get("ExposedPorts") or {}),
        )
        return await self.hooks.run(hook, target, event=event)

    async def _create_container(self, request: CreateRequest) -> dict[str, Any]:
        image = request.image or self.settings.base_image
        if image is None:
            raise InvalidRequest("image is required (no base_image is configured)")
        await self._check_cpus(request.cpus)
        await self._check_memory(request.memory_bytes)
        body = self._create_body(request, image)
        async with self._create_lock:  # the port-block check and the create are one step
            await self._check_port_block(request.host_port_root)
            try:
                created = await self.docker.containers.create(body, name=request.name)
            except docker_api.NotFound:
                raise NoSuchImage(image) from None
            except docker_api.Conflict:
                raise InUse(f"the name {request.name} is already in use") from None
        await self._changed(created["Id"])
        return created

    def _create_body(self, request: CreateRequest, image: str) -> dict[str, Any]:
        root = request.host_port_root
        return {
            "Image": image,
            "Cmd": ["sh", "-c", start_command(self.settings.start_command, request.commands)],
            "User": "root",
            "WorkingDir": WORKDIR,
            "Volumes": {VOLUME: {}},
            "ExposedPorts": {spec.key: {} for spec in request.ports},
            "Labels": {DOCKERLINK_LABEL: LABEL_VERSION, PORTS_LABEL: str(root)},
            "HostConfig": {
                "PortBindings": {
                    spec.key: [{"HostIp": "", "HostPort": str(root + spec.port)}]
                    for spec in request.ports
                },
                "Memory": request.memory_bytes,
                # Swap equal to memory: the limit is the limit, no silent spill to disk.
                "MemorySwap": request.memory_bytes,
                "CpuPeriod": CPU_PERIOD_US,
                "CpuQuota": _quota(request.cpus, CPU_PERIOD_US),
                "RestartPolicy": restart_policy(request.restart, self.settings.restart_max_retries),
                **self._safe_defaults(),
            },
        }

    def _safe_defaults(self) -> dict[str, Any]:
        """Limits that keep one customer from hurting the host: processes, privileges, logs,
        capabilities."""
        settings = self.settings
        defaults: dict[str, Any] = {
            "PidsLimit": settings.pids_limit or -1,
            "LogConfig": {
                "Type": "json-file",
                "Config": {
                    "max-size": settings.container_log_max_size,
                    "max-file": str(settings.container_log_max_files),
                },
            },
        }
        if settings.no_new_privileges:
            defaults["SecurityOpt"] = ["no-new-privileges:true"]
        if settings.cap_drop:
            defaults["CapDrop"] = list(settings.cap_drop)
        return defaults

    async def _check_cpus(self, cpus: float) -> None:
        engine_cpus = await self.engine_cpus()
        if cpus > engine_cpus:
            raise InvalidRequest(f"cpulimit {cpus:g} is more than the engine's {engine_cpus} CPUs")

    async def _check_memory(self, memory_bytes: int) -> None:
        engine_memory = await self.engine_memory()
        if engine_memory and memory_bytes > engine_memory:
            raise InvalidRequest(
                f"memory {memory_bytes / GIB:g} GiB is more than the engine's "
                f"{engine_memory / GIB:.2f} GiB"
            )

    async def _check_port_block(self, root: int) -> None:
        size = self.settings.port_area_size
        others = await self.docker.containers.list(all=True, filters={"label": [PORTS_LABEL]})
        for other in others:
            labels = other.get("Labels") or {}
            if DOCKERLINK_LABEL not in labels:
                continue
            other_root = host_port_root(labels)
            if other_root is not None and other_root < root + size and root < other_root + size:
                name = (other.get("Names") or [other.get("Id", "?")[:12]])[0]
                raise InUse(
                    f"host ports {root}-{root + size - 1} overlap those of {name} "
                    f"({other_root}-{other_root + size - 1})"
                )

    @_to_the_end
    async def delete(self, ref: str, *, delete_volume: bool) -> HookFailure | None:
        async with self.acting_on(ref) as container:
            if container.running:
                raise MustBeStopped()
            await self.docker.containers.remove(container.id, volumes=delete_volume)
            await self._removed(container.id)
            return await self._run_hook("delete", container)

    # -- limits -------------------------------------------------------------------------------

    @_to_the_end
    async def update_limits(self, ref: str, request: LimitsRequest) -> list[str]:
        async with self.acting_on(ref) as container:  # 404 and 412 before the limits' 400
            if request.cpus is not None:
                await self._check_cpus(request.cpus)
            if request.memory_bytes is not None:
                await self._check_memory(request.memory_bytes)
            resources: dict[str, Any] = {}
            if request.memory_bytes is not None:
                # Sent together so that raising the limit above the old swap limit works.
                resources["Memory"] = request.memory_bytes
                resources["MemorySwap"] = request.memory_bytes
            if request.cpus is not None:
                resources.update(_cpu_resources(request.cpus, container.host_config))
            if request.restart is not None:
                # The update endpoint takes the restart policy beside the resources.
                resources["RestartPolicy"] = restart_policy(
                    request.restart, self.settings.restart_max_retries
                )
            warnings = await self.docker.containers.update(container.id, resources)
            await self._changed(container.id)
            return warnings

    # -- output -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def logs(self, ref: str, request: LogsRequest) -> AsyncIterator[AsyncIterator[Frame]]:
        """The container's output as asked, stdout and stderr in order (404/412 raise here).

        Leaving the context closes the engine's stream (a followed log ends that way).
        """
        container = await self.managed(ref, mirrored=True)
        tty = bool((container.info.get("Config") or {}).get("Tty"))
        async with self.docker.containers.logs(
            container.id,
            tty=tty,
            follow=request.follow,
            tail=request.tail,
            since=request.since or None,
            timestamps=request.timestamps,
        ) as frames:
            yield frames

    # -- power --------------------------------------------------------------------------------

    @_to_the_end
    async def start(self, ref: str) -> HookFailure | None:
        async with self.acting_on(ref) as container:
            if container.running:
                raise AlreadyRunning()
            try:
                started = await self.docker.containers.start(container.id)
            except (docker_api.BadParameter, docker_api.ServerError) as exc:
                raise ActionFailed(f"the engine could not start it: {exc.message}") from exc
            await self._changed(container.id)
            if not started:
                raise AlreadyRunning()
            return await self._run_hook("start", container)

    @_to_the_end
    async def stop(self, ref: str, *, grace_s: int) -> HookFailure | None:
        async with self.acting_on(ref) as container:
            if not container.running:
                raise AlreadyStopped()
            stopped = await self.docker.containers.stop(container.id, t=grace_s)
            await self._changed(container.id)
            if not stopped:
                raise AlreadyStopped()
            return await self._run_hook("stop", container)

    @_to_the_end
    async def restart(self, ref: str, *, grace_s: int) -> HookFailure | None:
        async with self.acting_on(ref) as container:
            if not container.running:
                raise NotRunning()
            await self.docker.containers.restart(container.id, t=grace_s)
            await self._changed(container.id)
            return await self._run_hook("start", container, event="restart")


def _quota(cpus: float, period_us: int) -> int:
    quota = round(cpus * period_us)
    if quota < MIN_CPU_QUOTA_US:
        smallest = MIN_CPU_QUOTA_US / period_us
        raise InvalidRequest(f"cpulimit must be at least {smallest:g} for this container")
    return quota


def _cpu_resources(cpus: float, host_config: dict[str, Any]) -> dict[str, int]:
    """The update fields for a new CPU limit, in the style the container already uses."""
    if host_config.get("NanoCpus"):
        return {"NanoCpus": round(cpus * 1e9)}
    period = host_config.get("CpuPeriod") or CPU_PERIOD_US
    return {"CpuPeriod": period, "CpuQuota": _quota(cpus, period)}
