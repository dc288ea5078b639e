"""Where the sampler's figures come from: a container's cgroup files, or the engine's stats call.

Both give a :class:`Reading` with the same meaning, so the rest of the sampler does not know
which one was used. The cgroup source is the cheap one (see :mod:`.cgroups`); the engine's stats
call is the fallback for any container whose files cannot be read: an engine on another host, a
cgroup layout not recognised, a container that stopped between its inspect and the read.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from docker_api.address import is_tcp

from ..units import engine_time_ns
from .cgroups import (
    CGROUP_ROOT,
    PROC_ROOT,
    CgroupFiles,
    HeldFiles,
    Reading,
    cgroup_version,
    find_cgroup,
    read_figures,
)
from .held import held_files_budget
from .resources import memory_used_bytes, network_totals

__all__ = [
    "CgroupSource",
    "Reading",
    "cgroup_source_choice",
    "reading_from_stats",
    "source_summary",
]


def cgroup_source_choice(
    stats_source: str, docker_sock: str, root: Path = CGROUP_ROOT, proc_root: Path = PROC_ROOT
) -> tuple[CgroupSource | None, str]:
    """The cgroup source the ``stats_source`` setting asks for, when this host has cgroups, and
    when there is none, why (for :func:`source_summary`).

    ``auto`` leaves an engine reached over TCP to its stats API: its containers are on another
    host (or, if not, the API still gives the same figures). ``cgroup`` tries regardless.
    """
    if stats_source == "api":
        return None, "stats_source=api"
    if stats_source == "auto" and is_tcp(docker_sock):
        return None, "the engine is reached over tcp://, its containers' files are not here"
    source = CgroupSource.detect(root, proc_root)
    return source, "" if source is not None else f"no cgroup hierarchy at {root}"


def source_summary(
    cgroups: CgroupSource | None,
    no_cgroups_reason: str,
    running: Collection[str],
    *,
    api_fallback: bool = True,
) -> str:
    """One line saying where the figures of the ``running`` containers (full ids) really come
    from, after ``cgroups`` tried to read each of them (its :attr:`CgroupSource.failures`):

    - ``stats source: cgroup v2 files (3 running containers)``;
    - ``stats source: api (cgroup files unreadable for /proc/4242: ...; and 2 more)``;
    - ``stats source: cgroup v2 files for 2 of 3 running containers, api for 1 (<id>: ...)``.
    """
    if cgroups is None:
        return f"stats source: api ({no_cgroups_reason})"
    files = f"cgroup v{cgroups.version} files"
    if not running:
        return f"stats source: {files} (no running container to read yet)"
    failed = [container_id for container_id in running if container_id in cgroups.failures]
    if not failed:
        return f"stats source: {files} ({_containers(len(running))})"
    fallback = "api" if api_fallback else "none, stats_source=cgroup never asks the engine"
    first = failed[0]
    why = cgroups.failures[first] + (f"; and {len(failed) - 1} more" if len(failed) > 1 else "")
    if len(failed) == len(running):
        return f"stats source: {fallback} ({why})"
    return (
        f"stats source: {files} for {len(running) - len(failed)} of "
        f"{_containers(len(running))}, {fallback} for {len(failed)} ({first[:12]}: {why})"
    )


def _containers(count: int) -> str:
    return f"{count} running container{'' if count == 1 else 's'}"


def reading_from_stats(stats: Mapping[str, Any]) -> Reading | None:
    """The figures of a one-shot stats answer; None when the container is not running (the
    engine then answers with the zero time in ``read``)."""
    read_ns = engine_time_ns(stats.get("read"))
    if read_ns is None:
        return None
    memory = stats.get("memory_stats") or {}
    cpu_usage = (stats.get("cpu_stats") or {}).get("cpu_usage") or {}
    tx, rx = network_totals(stats.get("networks"))
    return Reading(
        read_ns=read_ns,
        cpu_ns=int(cpu_usage.get("total_usage") or 0),
        memory_used_bytes=memory_used_bytes(memory),
        memory_limit_bytes=int(memory.get("limit") or 0),
        tx_bytes=tx,
        rx_bytes=rx,
    )


class CgroupSource:
    """Reads running containers' figures from their cgroup files.

    Where each container's files are is found once per run of it (its init pid) and remembered,
    and the files are kept open for that run (:class:`.cgroups.HeldFiles`, as many as
    ``held_files`` allows; past that, each read opens and closes them). Reads are plain blocking
    file reads, about 0.03 ms of CPU a container with the files open, parsing included (opening,
    reading and closing them alone took 0.05 ms): a tick reads them all in one worker thread
    (:meth:`read`), a single on-the-spot sample in another (:meth:`read_one`); a lock keeps the
    two apart.
    """

    def __init__(
        self,
        version: int,
        *,
        root: Path = CGROUP_ROOT,
        proc_root: Path = PROC_ROOT,
        clock_ns: Callable[[], int] = time.time_ns,
        held_files: int | None = None,
    ) -> None:
        """``held_files``: how many files may be kept open (default: :func:`.held_files_budget`)."""
        self.version = version
        self.root = root
        self.proc_root = proc_root
        self.clock_ns = clock_ns
        self.held_files = held_files_budget() if held_files is None else held_files
        #: By full id: the init pid of the run its files were found for, those files, and the
        #: files open when they are held.
        self._files: dict[str, tuple[int, CgroupFiles, HeldFiles | None]] = {}
        self._held_count = 0
        self._lock = threading.Lock()
        #: Why the last read of a container (full id) gave nothing, until one succeeds.
        self.failures: dict[str, str] = {}

    @classmethod
    def detect(cls, root: Path = CGROUP_ROOT, proc_root: Path = PROC_ROOT) -> CgroupSource | None:
        """A source for the cgroup hierarchy at ``root``, or None when there is none there."""
        version = cgroup_version(root)
        return None if version is None else cls(version, root=root, proc_root=proc_root)

    @property
    def open_files(self) -> int:
        """How many files are held open now."""
        return self._held_count

    def read(
        self, infos: Iterable[Mapping[str, Any]], host_memory_bytes: int
    ) -> dict[str, Reading]:
        """Readings by full id of those running containers (inspect answers) whose files can be
        read; the others are left out, for the caller to ask the engine."""
        readings: dict[str, Reading] = {}
        with self._lock:
            for info in infos:
                reading = self._read_one(info, host_memory_bytes)
                if reading is not None:
                    readings[str(info["Id"])] = reading
        return readings

    def read_one(self, info: Mapping[str, Any], host_memory_bytes: int) -> Reading | None:
        """The figures of one running container (its inspect answer), or None."""
        with self._lock:
            return self._read_one(info, host_memory_bytes)

    def _read_one(self, info: Mapping[str, Any], host_memory_bytes: int) -> Reading | None:
        container_id = str(info["Id"])
        pid = int((info.get("State") or {}).get("Pid") or 0)
        known = self._files.get(container_id)
        if known is None or known[0] != pid:
            known = self._find(info, pid)
        if known is None:
            self.failures[container_id] = self._proc_problem(info, pid) or (
                f"no cgroup v{self.version} files for it under {self.root}"
            )
            return None
        _pid, files, held = known
        try:
            if held is not None:
                reading = held.figures(host_memory_bytes, self.clock_ns)
            else:
                reading = read_figures(files, host_memory_bytes, self.clock_ns)
        except (OSError, ValueError) as exc:
            self._forget(container_id)  # look again next time
            self.failures[container_id] = (
                self._proc_problem(info, pid) or f"cgroup files unreadable: {exc}"
            )
            return None
        self.failures.pop(container_id, None)
        return reading

    def keep_only(self, running: Collection[str]) -> None:
        """Forget where the files of containers not in ``running`` (full ids) were, and close
        them: a container that starts again is a new run, with files to find again."""
        with self._lock:
            for gone in set(self._files).difference(running):
                self._forget(gone)
            for gone in set(self.failures).difference(running):
                self.failures.pop(gone, None)

    def close(self) -> None:
        """Close every file held open (the source may still be used: it opens them again)."""
        with self._lock:
            for container_id in list(self._files):
                self._forget(container_id)

    def _forget(self, container_id: str) -> None:
        known = self._files.pop(container_id, None)
        if known is not None and known[2] is not None:
            self._held_count -= len(known[2])
            known[2].close()

    def _proc_problem(self, info: Mapping[str, Any], pid: int) -> str | None:
        """Why the ``/proc`` entry of a running container's init cannot be used, or None."""
        if pid <= 0:
            return "the engine gives no init pid"
        process = self.proc_root / str(pid)
        own_network = (info.get("HostConfig") or {}).get("NetworkMode") != "host"
        for path in [process, process / "net" / "dev"] if own_network else [process]:
            try:
                if path == process:
                    os.stat(path)
                else:
                    os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as exc:
                why = f"cgroup files unreadable for {path}: {exc.strerror or exc}"
                if exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM):
                    why += (
                        " (a /proc that hides other users' processes does this: systemd's"
                        " ProtectProc=, the hidepid= mount option)"
                    )
                return why
        return None

    def _find(
        self, info: Mapping[str, Any], pid: int
    ) -> tuple[int, CgroupFiles, HeldFiles | None] | None:
        container_id = str(info["Id"])
        self._forget(container_id)
        host_config = info.get("HostConfig") or {}
        files = find_cgroup(
            self.version,
            container_id,
            pid,
            cgroup_parent=str(host_config.get("CgroupParent") or ""),
            own_network=host_config.get("NetworkMode") != "host",
            root=self.root,
            proc_root=self.proc_root,
        )
        if files is None:
            return None
        held: HeldFiles | None = None
        if self._held_count + len(files.paths()) <= self.held_files:
            try:
                held = HeldFiles(files)
            except OSError:
                held = None  # read by path, which says why if it fails again
            else:
                self._held_count += len(held)
        known = self._files[container_id] = (pid, files, held)
        return known
