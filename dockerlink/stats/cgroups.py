"""A running container's figures read from the kernel: its cgroup files and its network counters.

This is what the engine itself reads for a stats call (runc's cgroup managers and libnetwork's
interface statistics), minus the engine: about 0.05 ms of CPU per container (five small files,
most of it the kernel's) instead of about 1 s of latency and several ms of CPU. Every function
takes the roots as parameters (``/sys/fs/cgroup`` and ``/proc`` by default) so that tests point
them at a fake tree.

Where a container's cgroup is:

- cgroup v2 (``<root>/cgroup.controllers`` exists): one directory, ``<root>/<path>``;
- cgroup v1: one directory per controller, ``<root>/cpuacct/<path>`` and ``<root>/memory/<path>``
  (the names work whether the controllers are mounted alone or together, as ``cpu,cpuacct``
  with its symlinks).

``<path>`` is taken from ``/proc/<pid>/cgroup`` of the container's init process when it names the
container, which holds for any cgroup driver and parent, cut after the segment that holds the id:
docker-in-docker, kind/k3d and systemd in a container move their processes into a child such as
``docker-<id>.scope/init`` (cgroup v2 allows no processes in a cgroup with children), and the
container's figures are those of the whole ``docker-<id>.scope``. Otherwise the usual layouts are
probed:
``docker/<id>`` (the cgroupfs driver, or ``<CgroupParent>/<id>``) and
``system.slice/docker-<id>.scope`` (the systemd driver).

The figures, as the engine reports them (moby ``daemon/daemon_unix.go`` statsV1/statsV2):

=================  ===================================  =====================================
figure             cgroup v1                            cgroup v2
=================  ===================================  =====================================
CPU time (ns)      ``cpuacct.usage``                    ``cpu.stat`` ``usage_usec`` x 1000
memory usage       ``memory.usage_in_bytes``            ``memory.current``
inactive file      ``memory.stat`` total_inactive_file  ``memory.stat`` inactive_file
memory limit       ``memory.limit_in_bytes``            ``memory.max`` (``max``: none)
=================  ===================================  =====================================

The memory limit is clamped to the host's memory, as the engine does. Network totals sum the
interfaces the engine counts, read from ``/proc/<pid>/net/dev``: libnetwork's sandbox
``Statistics()`` reports only the interfaces it added to the container's namespace, one per
endpoint, which its ``AddInterface`` names ``<prefix><n>``, with the prefix ``eth`` of the bridge,
overlay, macvlan and ipvlan drivers: ``eth0``, ``eth1``... Interfaces made inside the container
(``lo``, a WireGuard ``wg0``, an OpenVPN ``tun0``, a nested engine's ``docker0`` and veths) are not
counted, by the engine or here. (A network created with the bridge driver's
``com.docker.network.container_iface_prefix`` option names its interfaces otherwise: such a
container shows no traffic from this source; use ``stats_source=api`` there.)
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .resources import memory_used

__all__ = [
    "CGROUP_ROOT",
    "PROC_ROOT",
    "CgroupFiles",
    "HeldFiles",
    "Reading",
    "cgroup_version",
    "find_cgroup",
    "parse_net_dev",
    "read_figures",
    "read_file",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_ROOT = Path("/proc")
#: What a read of one of these small files asks for at once (memory.stat is about 1 KiB).
_CHUNK = 65536
#: A record file's first read shorter than this had every record (see ``_read_all``): a page
#: less the longest ``net/dev`` line (a name and 16 counters of at most 20 digits, under 400 B).
_WHOLE_BELOW = 4096 - 512


class Reading(NamedTuple):
    """One running container's cumulative figures at one moment, whichever source read them.

    (A named tuple: made for every running container at every tick, and several times cheaper to
    make than a frozen dataclass.)"""

    #: When they were read, unix nanoseconds (the engine's ``read`` for the API source).
    read_ns: int
    #: CPU time used since the container started, nanoseconds.
    cpu_ns: int
    #: Usage minus the inactive file cache, as ``docker stats`` shows it.
    memory_used_bytes: int
    #: The limit in force (the host's memory when none is set); 0 when not known.
    memory_limit_bytes: int
    #: Bytes sent and received by every interface since the container started.
    tx_bytes: int
    rx_bytes: int


@dataclass(frozen=True, slots=True)
class CgroupFiles:
    """The files one container's figures are read from (absolute paths, as text)."""

    version: int
    cpu: str
    memory_usage: str
    memory_stat: str
    memory_limit: str
    #: ``/proc/<pid>/net/dev``; None when the container shares the host's network (the engine
    #: then reports no network figures at all).
    net_dev: str | None

    def paths(self) -> list[str]:
        """Every file's path."""
        paths = [self.cpu, self.memory_usage, self.memory_stat, self.memory_limit]
        return paths if self.net_dev is None else [*paths, self.net_dev]


def cgroup_version(root: Path = CGROUP_ROOT) -> int | None:
    """2 for a unified hierarchy at ``root``, 1 when the v1 controllers are there, else None."""
    if (root / "cgroup.controllers").is_file():
        return 2
    if (root / "memory").is_dir() and (root / "cpuacct").is_dir():
        return 1
    return None


def find_cgroup(
    version: int,
    container_id: str,
    pid: int,
    *,
    cgroup_parent: str = "",
    own_network: bool = True,
    root: Path = CGROUP_ROOT,
    proc_root: Path = PROC_ROOT,
) -> CgroupFiles | None:
    """The files of a running container (init process ``pid``), or None when none are found."""
    if pid <= 0:
        return None
    net_dev = str(proc_root / str(pid) / "net" / "dev") if own_network else None
    if net_dev is not None and not os.path.exists(net_dev):
        return None
    for cpu_dir, memory_dir in _candidates(
        version, container_id, pid, cgroup_parent, root, proc_root
    ):
        files = _files_in(version, cpu_dir, memory_dir, net_dev)
        if os.path.exists(files.cpu) and os.path.exists(files.memory_stat):
            return files
    return None


def read_figures(
    files: CgroupFiles,
    host_memory_bytes: int,
    clock_ns: Callable[[], int] = time.time_ns,
    read: Callable[[str], bytes] | None = None,
) -> Reading:
    """Read the container's figures now. Raises OSError or ValueError when they can't be read
    (the container stopped, its cgroup went away, or a file is not what it should be).

    ``read``: how a file is read whole, by its path (:meth:`HeldFiles.read` for files kept
    open); by default it is opened, read and closed."""
    if read is None:
        read = read_file
    read_ns = clock_ns()
    return figures_of(files, [read(path) for path in files.paths()], host_memory_bytes, read_ns)


def figures_of(
    files: CgroupFiles, contents: list[bytes], host_memory_bytes: int, read_ns: int
) -> Reading:
    """The figures in ``contents``: what each file of :meth:`CgroupFiles.paths` held, in that
    order, read at ``read_ns``. Raises ValueError when a file is not what it should be."""
    cpu_text, usage_text, stat, limit_text = contents[:4]
    usage = int(usage_text)
    total: int | None = None
    if files.version == 2:
        usage_usec = _stat_value(cpu_text, b"usage_usec")
        if usage_usec is None:
            raise ValueError(f"{files.cpu} has no usage_usec")
        cpu_ns = usage_usec * 1000
        limit_text = limit_text.strip()
        limit = host_memory_bytes if limit_text == b"max" else int(limit_text)
    else:
        cpu_ns = int(cpu_text)
        limit = int(limit_text)
        total = _stat_value(stat, b"total_inactive_file")
    if host_memory_bytes and limit > host_memory_bytes:  # "no limit" is a huge number in v1
        limit = host_memory_bytes
    tx, rx = parse_net_dev(contents[4]) if files.net_dev is not None else (0, 0)
    return Reading(
        read_ns,
        cpu_ns,
        memory_used(usage, _stat_value(stat, b"inactive_file") or 0, total),
        limit,
        tx,
        rx,
    )


def parse_net_dev(data: bytes) -> tuple[int, int]:
    """``(transmitted, received)`` bytes summed over the endpoint interfaces (``eth<n>``) of
    ``/proc/<pid>/net/dev``, the ones the engine counts.

    Each line after the two headers is ``name: rx_bytes rx_packets ... (8 receive fields)
    tx_bytes ...``.
    """
    tx = rx = 0
    for line in data.splitlines()[2:]:
        if b"eth" not in line:  # lo, most often: no need to look closer
            continue
        name, _, counters = line.partition(b":")
        name = name.strip()
        # eth<n>: bytes.isdigit() is ASCII digits only, and False when there are none
        if not counters or not (name.startswith(b"eth") and name[3:].isdigit()):
            continue
        fields = counters.split(None, 9)  # the 9th is tx_bytes; the rest need no splitting
        rx += int(fields[0])
        tx += int(fields[8])
    return tx, rx


# -- helpers --------------------------------------------------------------------------------------


def _candidates(
    version: int,
    container_id: str,
    pid: int,
    cgroup_parent: str,
    root: Path,
    proc_root: Path,
) -> list[tuple[Path, Path]]:
    """``(cpu directory, memory directory)`` pairs where the container's cgroup may be."""
    cpu_base, memory_base = (root, root) if version == 2 else (root / "cpuacct", root / "memory")
    found: list[tuple[Path, Path]] = []
    own = _own_cgroups(proc_root / str(pid) / "cgroup", version)
    if own is not None:
        cpu_path = _up_to_container(own[0], container_id)
        memory_path = _up_to_container(own[1], container_id)
        if cpu_path is not None and memory_path is not None:  # else a reused pid, or a namespace
            found.append((cpu_base / cpu_path.lstrip("/"), memory_base / memory_path.lstrip("/")))
    parent = cgroup_parent.strip("/")
    relatives = [
        f"{parent or 'docker'}/{container_id}",
        f"system.slice/docker-{container_id}.scope",
    ]
    if parent.endswith(".slice"):
        relatives.insert(0, f"{parent}/docker-{container_id}.scope")
    found.extend((cpu_base / relative, memory_base / relative) for relative in relatives)
    return found


def _up_to_container(cgroup: str, container_id: str) -> str | None:
    """``cgroup`` cut after its segment that holds ``container_id``
    (``/system.slice/docker-<id>.scope`` of ``/system.slice/docker-<id>.scope/init``), or None
    when no segment holds it."""
    segments = cgroup.split("/")
    for index, segment in enumerate(segments):
        if container_id in segment:
            return "/".join(segments[: index + 1])
    return None


def _own_cgroups(path: Path, version: int) -> tuple[str, str] | None:
    """The cpu (cpuacct) and memory cgroup paths a ``/proc/<pid>/cgroup`` file names."""
    try:
        text = read_file(str(path)).decode()
    except (OSError, UnicodeDecodeError):
        return None
    cpu = memory = None
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, cgroup = rest.partition(":")
        if version == 2:
            if hierarchy == "0" and controllers == "":
                return cgroup, cgroup
            continue
        names = controllers.split(",")
        if "cpuacct" in names:
            cpu = cgroup
        if "memory" in names:
            memory = cgroup
    return (cpu, memory) if cpu is not None and memory is not None else None


def _files_in(version: int, cpu_dir: Path, memory_dir: Path, net_dev: str | None) -> CgroupFiles:
    if version == 2:
        return CgroupFiles(
            version=2,
            cpu=str(cpu_dir / "cpu.stat"),
            memory_usage=str(memory_dir / "memory.current"),
            memory_stat=str(memory_dir / "memory.stat"),
            memory_limit=str(memory_dir / "memory.max"),
            net_dev=net_dev,
        )
    return CgroupFiles(
        version=1,
        cpu=str(cpu_dir / "cpuacct.usage"),
        memory_usage=str(memory_dir / "memory.usage_in_bytes"),
        memory_stat=str(memory_dir / "memory.stat"),
        memory_limit=str(memory_dir / "memory.limit_in_bytes"),
        net_dev=net_dev,
    )


def read_file(path: str) -> bytes:
    """A small kernel file, whole: opened, read and closed."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _read_all(fd)
    finally:
        os.close(fd)


def _read_all(fd: int, records: bool = True) -> bytes:
    """An open kernel file read whole from its start (plain blocking reads: these never wait on
    a disk). Kernel files make their text again at each read from offset 0, so a file kept open
    gives fresh figures every time.

    A record file (``records``: ``net/dev``) may give less than asked before its end: the
    kernel fills a buffer of a page (or more) with whole records and stops at the first that
    does not fit. A first read shorter than a page by more than the longest record
    (``_WHOLE_BELOW``) was not cut: it has them all; a longer one is read on until an empty
    read. A cgroup file is one record, which the kernel makes whole before it copies what was
    asked: a read that gives less than asked (or a regular file's, in tests) has it all."""
    data = os.pread(fd, _CHUNK, 0)
    if data and (len(data) >= _WHOLE_BELOW if records else len(data) == _CHUNK):
        while chunk := os.pread(fd, _CHUNK, len(data)):  # rare: a few pages at most
            data += chunk
    return data


class HeldFiles:
    """One run of a container's files (:class:`CgroupFiles`), kept open: a read is then a
    ``pread()`` with no walk of the path (see :mod:`.held`).

    A file of a removed cgroup, kept open, fails to read (``ENODEV``); but ``/proc/<pid>/net/dev``
    kept open still reads the network namespace it was opened in, even after that process ended:
    files are held only for one run of a container (one init pid) and closed when it stops."""

    __slots__ = ("_fds", "_in_order", "files")

    def __init__(self, files: CgroupFiles) -> None:
        self.files = files
        #: Each file's descriptor, and whether it is a record file (``net/dev``).
        self._fds: dict[str, tuple[int, bool]] = {}
        try:
            for path in files.paths():
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                self._fds[path] = (fd, path == files.net_dev)
        except OSError:
            self.close()
            raise
        #: The same, in the order of :meth:`CgroupFiles.paths`.
        self._in_order = list(self._fds.values())

    def __len__(self) -> int:
        return len(self._fds)

    def read(self, path: str) -> bytes:
        """The file at ``path`` (one of :attr:`files`), whole, as it is now."""
        fd, records = self._fds[path]
        return _read_all(fd, records)

    def figures(self, host_memory_bytes: int, clock_ns: Callable[[], int]) -> Reading:
        """:func:`read_figures` of these files, read as they are kept open (a ``pread()`` each,
        most often)."""
        read_ns = clock_ns()
        contents = [_read_all(fd, records) for fd, records in self._in_order]
        return figures_of(self.files, contents, host_memory_bytes, read_ns)

    def close(self) -> None:
        fds, self._fds, self._in_order = list(self._fds.values()), {}, []
        for fd, _records in fds:
            with contextlib.suppress(OSError):  # freed all the same
                os.close(fd)


def _stat_value(data: bytes, key: bytes) -> int | None:
    """The value of ``key`` in a flat-keyed cgroup file (``memory.stat``, ``cpu.stat``: one
    ``key value`` a line), or None when it has none. (Finding the one key is several times
    cheaper than parsing the 36 lines of a v1 ``memory.stat``.)"""
    needles = _NEEDLES.get(key) or _needles(key)
    if data.startswith(needles[0]):
        start = len(key) + 1
    else:
        found = data.find(needles[1])
        if found < 0:
            return None
        start = found + len(key) + 2
    end = data.find(b"\n", start)
    return int(data[start:] if end < 0 else data[start:end])


def _needles(key: bytes) -> tuple[bytes, bytes]:
    """What ``key``'s line starts with: at the start of the file, and after another line."""
    return key + b" ", b"\n" + key + b" "


#: The needles of the keys read at every sample, made once.
_NEEDLES = {key: _needles(key) for key in (b"usage_usec", b"inactive_file", b"total_inactive_file")}
