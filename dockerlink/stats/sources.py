"""Where the sampler's figures come from: a container's cgroup files, or the engine's stats call.

Both give a :class:`Reading` with the same meaning, so the rest of the sampler does not know
which one was used. The cgroup source is the cheap one (see :mod:`.cgroups`); the engine's stats
call is the fallback for any container whose files cannot be read: an engine on another host, a
cgroup layout not recognised, a container that stopped between its inspect and the read.
"""

from __future__ import annotations

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
    Reading,
    cgroup_version,
    find_cgroup,
    read_figures,
)
from .resources import memory_used_bytes, network_totals

__all__ = ["CgroupSource", "Reading", "cgroup_source_for", "reading_from_stats"]


def cgroup_source_for(
    stats_source: str, docker_sock: str, root: Path = CGROUP_ROOT, proc_root: Path = PROC_ROOT
) -> CgroupSource | None:
    """The cgroup source the ``stats_source`` setting asks for, when this host has cgroups.

    ``auto`` leaves an engine reached over TCP to its stats API: its containers are on another
    host (or, if not, the API still gives the same figures). ``cgroup`` tries regardless.
    """
    if stats_source == "api" or (stats_source == "auto" and is_tcp(docker_sock)):
        return None
    return CgroupSource.detect(root, proc_root)


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

    Where each container's files are is found once per run of it (its init pid) and remembered.
    Reads are plain blocking file reads, about 0.2 ms a container: a tick reads them all in one
    worker thread (:meth:`read`), a single on-the-spot sample in place (:meth:`read_one`).
    """

    def __init__(
        self,
        version: int,
        *,
        root: Path = CGROUP_ROOT,
        proc_root: Path = PROC_ROOT,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.version = version
        self.root = root
        self.proc_root = proc_root
        self.clock_ns = clock_ns
        self._files: dict[str, tuple[int, CgroupFiles]] = {}

    @classmethod
    def detect(cls, root: Path = CGROUP_ROOT, proc_root: Path = PROC_ROOT) -> CgroupSource | None:
        """A source for the cgroup hierarchy at ``root``, or None when there is none there."""
        version = cgroup_version(root)
        return None if version is None else cls(version, root=root, proc_root=proc_root)

    def read(
        self, infos: Iterable[Mapping[str, Any]], host_memory_bytes: int
    ) -> dict[str, Reading]:
        """Readings by full id of those running containers (inspect answers) whose files can be
        read; the others are left out, for the caller to ask the engine."""
        readings: dict[str, Reading] = {}
        for info in infos:
            reading = self.read_one(info, host_memory_bytes)
            if reading is not None:
                readings[str(info["Id"])] = reading
        return readings

    def read_one(self, info: Mapping[str, Any], host_memory_bytes: int) -> Reading | None:
        """The figures of one running container (its inspect answer), or None."""
        container_id = str(info["Id"])
        pid = int((info.get("State") or {}).get("Pid") or 0)
        known = self._files.get(container_id)
        files = known[1] if known is not None and known[0] == pid else self._find(info, pid)
        if files is None:
            return None
        try:
            return read_figures(files, host_memory_bytes, self.clock_ns)
        except (OSError, ValueError):
            self._files.pop(container_id, None)  # look again next time
            return None

    def keep_only(self, container_ids: Collection[str]) -> None:
        """Forget where the files of containers not in ``container_ids`` were."""
        for gone in set(self._files).difference(container_ids):
            self._files.pop(gone, None)

    def _find(self, info: Mapping[str, Any], pid: int) -> CgroupFiles | None:
        container_id = str(info["Id"])
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
            self._files.pop(container_id, None)
        else:
            self._files[container_id] = (pid, files)
        return files
