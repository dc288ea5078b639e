"""Reading a container's figures from cgroup files, on fake trees of every supported layout."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockerlink.stats.cgroups import (
    CgroupFiles,
    HeldFiles,
    Reading,
    cgroup_version,
    find_cgroup,
    parse_net_dev,
    read_figures,
)
from dockerlink.stats.held import held_files_budget
from dockerlink.stats.sources import CgroupSource, cgroup_source_choice

GIB = 1 << 30
MIB = 1 << 20
HOST_MEMORY = 8 * GIB
CID = "c0ffee" + "ab" * 29
OTHER = "d00d00" + "cd" * 29
PID = 4242
#: What a cgroup v1 memory.limit_in_bytes holds when no limit is set.
V1_UNLIMITED = 9223372036854771712

NET_DEV_HEADER = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
)


def net_dev(**interfaces: tuple[int, int]) -> str:
    """A /proc/<pid>/net/dev with ``name=(rx_bytes, tx_bytes)`` per interface."""
    lines = [
        f"{name:>6}: {rx:>8} 7 0 0 0 0 0 0 {tx:>8} 9 0 0 0 0 0 0\n"
        for name, (rx, tx) in interfaces.items()
    ]
    return NET_DEV_HEADER + "".join(lines)


@dataclass
class Figures:
    cpu_ns: int = 12_345_678_000
    usage: int = 300 * MIB
    inactive_file: int = 40 * MIB
    limit: int | None = GIB  # None: no limit
    rx: int = 5000
    tx: int = 7000


class FakeHost:
    """A fake /sys/fs/cgroup (v1 or v2) and /proc under ``tmp``."""

    def __init__(self, tmp: Path, version: int) -> None:
        self.root = tmp / "cgroup"
        self.proc = tmp / "proc"
        self.version = version
        if version == 2:
            self.root.mkdir(parents=True)
            (self.root / "cgroup.controllers").write_text("cpu memory io pids\n")
        else:
            for controller in ("memory", "cpuacct", "cpu", "pids"):
                (self.root / controller).mkdir(parents=True)

    def add(
        self,
        container_id: str,
        relative: str,
        figures: Figures,
        *,
        pid: int = PID,
        proc_cgroup: str | None = None,
        network: bool = True,
    ) -> None:
        """A running container whose cgroup is at ``relative`` (``docker/<id>``...); again:
        new figures."""
        if self.version == 2:
            folder = self.root / relative
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "cpu.stat").write_text(
                f"usage_usec {figures.cpu_ns // 1000}\nuser_usec 1\nsystem_usec 2\n"
            )
            (folder / "memory.current").write_text(f"{figures.usage}\n")
            (folder / "memory.stat").write_text(
                f"anon 1\nfile 2\nactive_file 3\ninactive_file {figures.inactive_file}\n"
            )
            limit = "max" if figures.limit is None else str(figures.limit)
            (folder / "memory.max").write_text(limit + "\n")
            own = f"0::/{relative}\n"
        else:
            memory = self.root / "memory" / relative
            cpuacct = self.root / "cpuacct" / relative
            memory.mkdir(parents=True, exist_ok=True)
            cpuacct.mkdir(parents=True, exist_ok=True)
            (cpuacct / "cpuacct.usage").write_text(f"{figures.cpu_ns}\n")
            (memory / "memory.usage_in_bytes").write_text(f"{figures.usage}\n")
            (memory / "memory.stat").write_text(
                "cache 1\nrss 2\ninactive_file 999\nactive_file 4\n"
                f"total_cache 5\ntotal_inactive_file {figures.inactive_file}\ntotal_active_file 6\n"
            )
            v1_limit = V1_UNLIMITED if figures.limit is None else figures.limit
            (memory / "memory.limit_in_bytes").write_text(f"{v1_limit}\n")
            own = "".join(
                f"{n}:{c}:/{relative}\n"
                for n, c in enumerate(["cpu", "cpuacct", "memory", "pids", "name=systemd"], 1)
            )
        process = self.proc / str(pid)
        (process / "net").mkdir(parents=True, exist_ok=True)
        (process / "cgroup").write_text(own if proc_cgroup is None else proc_cgroup)
        if network:
            (process / "net" / "dev").write_text(
                net_dev(lo=(10**9, 10**9), eth0=(figures.rx, figures.tx))
            )

    def find(self, container_id: str = CID, pid: int = PID, **kw: Any) -> CgroupFiles | None:
        return find_cgroup(
            self.version, container_id, pid, root=self.root, proc_root=self.proc, **kw
        )


def read(host: FakeHost, container_id: str = CID, **kw: Any) -> Reading:
    files = host.find(container_id, **kw)
    assert files is not None
    return read_figures(files, HOST_MEMORY, lambda: 17)


@pytest.mark.parametrize(
    ("version", "relative"),
    [
        (1, f"docker/{CID}"),  # cgroupfs driver
        (1, f"system.slice/docker-{CID}.scope"),  # systemd driver
        (2, f"system.slice/docker-{CID}.scope"),
        (2, f"docker/{CID}"),
        (1, f"customers/{CID}"),  # a --cgroup-parent: only /proc/<pid>/cgroup knows it
    ],
)
def test_every_layout_gives_the_figures_docker_stats_shows(
    tmp_path: Path, version: int, relative: str
) -> None:
    host = FakeHost(tmp_path, version)
    host.add(CID, relative, Figures())
    reading = read(host)
    assert reading.read_ns == 17
    assert reading.cpu_ns == 12_345_678_000
    assert reading.memory_used_bytes == 260 * MIB
    assert reading.memory_limit_bytes == GIB
    # every interface but lo, as the engine (which reports its endpoints' interfaces)
    assert (reading.tx_bytes, reading.rx_bytes) == (7000, 5000)


@pytest.mark.parametrize("relative", [f"docker/{CID}", f"system.slice/docker-{CID}.scope"])
@pytest.mark.parametrize("version", [1, 2])
def test_the_usual_layouts_are_probed_when_proc_does_not_name_the_container(
    tmp_path: Path, version: int, relative: str
) -> None:
    # In a private cgroup namespace, /proc/<pid>/cgroup says "/" for every controller.
    own = "0::/\n" if version == 2 else "2:cpuacct:/\n3:memory:/\n"
    host = FakeHost(tmp_path, version)
    host.add(CID, relative, Figures(), proc_cgroup=own)
    assert read(host).cpu_ns == 12_345_678_000


def test_a_custom_systemd_slice_is_probed(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 2)
    host.add(CID, f"hosting.slice/docker-{CID}.scope", Figures(), proc_cgroup="0::/\n")
    assert host.find(cgroup_parent="hosting.slice") is not None
    assert host.find() is None


def test_a_pid_that_belongs_to_another_container_is_not_trusted(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 1)
    host.add(OTHER, f"docker/{OTHER}", Figures(cpu_ns=1), pid=99)
    # Our container's pid now names the other one's cgroup (a reused pid): never read that.
    host.add(
        CID, f"docker/{CID}", Figures(cpu_ns=2), proc_cgroup=f"3:memory,cpuacct:/docker/{OTHER}\n"
    )
    assert read(host).cpu_ns == 2
    host2 = FakeHost(tmp_path / "b", 1)
    host2.add(OTHER, f"docker/{OTHER}", Figures(), pid=PID)
    assert host2.find(CID) is None  # the pid is the other's and ours is nowhere


@pytest.mark.parametrize("version", [1, 2])
def test_no_limit_is_the_host_memory_as_the_engine_reports_it(tmp_path: Path, version: int) -> None:
    host = FakeHost(tmp_path, version)
    host.add(CID, f"docker/{CID}", Figures(limit=None))
    assert read(host).memory_limit_bytes == HOST_MEMORY


def test_inactive_cache_larger_than_usage_is_not_subtracted(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 1)
    host.add(CID, f"docker/{CID}", Figures(usage=10 * MIB, inactive_file=20 * MIB))
    # The CLI's rule, applied to what the engine passes on: total_inactive_file is not smaller
    # than the usage, so the non-hierarchical inactive_file (999 in the fake) is subtracted.
    assert read(host).memory_used_bytes == 10 * MIB - 999


def test_a_container_on_the_host_network_has_no_network_figures(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 1)
    host.add(CID, f"docker/{CID}", Figures(), network=False)
    assert host.find() is None  # its own namespace is expected, and missing
    reading = read(host, own_network=False)
    assert (reading.tx_bytes, reading.rx_bytes) == (0, 0)


def test_missing_or_broken_files(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 1)
    assert host.find() is None  # no such container
    assert host.find(pid=0) is None
    host.add(CID, f"docker/{CID}", Figures())
    files = host.find()
    assert files is not None
    (host.root / "memory" / "docker" / CID / "memory.usage_in_bytes").write_text("garbage\n")
    with pytest.raises(ValueError, match="garbage"):
        read_figures(files, HOST_MEMORY)
    (host.root / "memory" / "docker" / CID / "memory.usage_in_bytes").unlink()
    with pytest.raises(FileNotFoundError):
        read_figures(files, HOST_MEMORY)
    v2 = FakeHost(tmp_path / "v2", 2)
    v2.add(CID, f"docker/{CID}", Figures())
    (v2.root / "docker" / CID / "cpu.stat").write_text("user_usec 1\n")
    with pytest.raises(ValueError, match="usage_usec"):
        read(v2)


def test_net_dev_sums_the_interfaces_the_engine_counts() -> None:
    # libnetwork reports the interfaces it put in the namespace, one per endpoint: eth0, eth1...
    text = net_dev(lo=(1, 2), eth0=(100, 200), eth1=(1000, 2000), tunl0=(5, 5))
    assert parse_net_dev(text.encode()) == (2200, 1100)
    assert parse_net_dev(NET_DEV_HEADER.encode()) == (0, 0)
    # A VPN container's tunnel carries the same traffic as eth0: counted once, as the engine does.
    vpn = net_dev(lo=(1, 1), eth0=(100, 200), wg0=(90, 180), tun0=(80, 160))
    assert parse_net_dev(vpn.encode()) == (200, 100)
    # Docker in docker: the nested engine's bridge and veths are not the container's endpoints.
    nested = net_dev(
        eth0=(100, 200), docker0=(50, 60), veth1a2b3c=(70, 80), veth4d5e6f=(1, 2), eth10=(1, 1)
    )
    assert parse_net_dev(nested.encode()) == (201, 101)
    assert parse_net_dev(net_dev(ethernet=(9, 9), eth=(9, 9), xeth0=(9, 9)).encode()) == (0, 0)
    # eth and ASCII digits only: not a suffix, not another script's digits
    others = net_dev(**{"eth0a": (9, 9), "eth\u00b2": (9, 9), "eth\u0663": (9, 9)})
    assert parse_net_dev(others.encode()) == (0, 0)


@pytest.mark.parametrize("version", [1, 2])
def test_init_in_a_child_cgroup_reads_the_whole_container(tmp_path: Path, version: int) -> None:
    # Docker in docker, kind/k3d, systemd in a container: init moves into .../docker-<id>.scope/init
    # (v2 allows no processes in a cgroup with children); the container is the whole scope.
    host = FakeHost(tmp_path, version)
    scope = f"system.slice/docker-{CID}.scope"
    host.add(CID, scope, Figures(cpu_ns=500 * 10**9, usage=2000 * MIB, inactive_file=0))
    host.add(CID, f"{scope}/init", Figures(cpu_ns=3 * 10**9, usage=19 * MIB, inactive_file=0))
    assert (host.proc / str(PID) / "cgroup").read_text().rstrip().endswith(f"{scope}/init")
    reading = read(host)
    assert reading.cpu_ns == 500 * 10**9
    assert reading.memory_used_bytes == 2000 * MIB
    # the same under a --cgroup-parent, deeper in the tree
    deep = FakeHost(tmp_path / "deep", version)
    parent = f"customers/{CID}"
    deep.add(CID, parent, Figures(cpu_ns=7 * 10**9))
    deep.add(CID, f"{parent}/init/more", Figures(cpu_ns=1))
    assert read(deep).cpu_ns == 7 * 10**9


@pytest.mark.parametrize("held", [False, True], ids=["opened", "held"])
def test_files_are_read_to_the_end_when_the_kernel_returns_a_page_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: bool
) -> None:
    """A record file (net/dev) gives about a page per read: a short read is not the end."""
    host = FakeHost(tmp_path, 2)
    host.add(CID, f"docker/{CID}", Figures())
    # a nested engine's bridge and 200 veths between the container's two endpoints: ~12 KiB
    interfaces = {"eth0": (1000, 2000), "docker0": (5, 5)}
    interfaces.update({f"veth{n:06x}": (3, 3) for n in range(200)})
    interfaces["eth1"] = (10, 20)
    text = net_dev(**interfaces)
    assert len(text) > 2 * 4096
    (host.proc / str(PID) / "net" / "dev").write_text(text)
    files = host.find()
    assert files is not None
    opened = HeldFiles(files) if held else None
    page = 4096
    real_pread = os.pread
    reads: list[int] = []

    def one_page_at_a_time(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, min(n, page), offset)
        reads.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", one_page_at_a_time)
    try:
        reading = read_figures(files, HOST_MEMORY, read=opened.read if opened else None)
    finally:
        monkeypatch.undo()
        if opened is not None:
            opened.close()
    assert (reading.tx_bytes, reading.rx_bytes) == (2020, 1010)
    assert reads.count(page) >= 2  # the fake really returned short reads


def test_a_short_first_read_of_a_record_file_is_all_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first read of net/dev shorter than a page less its longest line had every line: no
    second read to find the end (one system call less per running container a tick). One that
    long may have been cut, and is read on."""
    host = FakeHost(tmp_path, 1)
    host.add(CID, f"docker/{CID}", Figures())
    dev = host.proc / str(PID) / "net" / "dev"
    files = host.find()
    assert files is not None and files.net_dev == str(dev)
    real_pread = os.pread
    reads: list[int] = []

    def counted(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        if os.readlink(f"/proc/self/fd/{fd}") == str(dev):
            reads.append(len(data))
        return data

    held = HeldFiles(files)
    try:
        monkeypatch.setattr(os, "pread", counted)
        assert held.figures(HOST_MEMORY, time.time_ns).tx_bytes == Figures().tx
        assert reads == [dev.stat().st_size]
        reads.clear()
        many = {"eth0": (7, 9), **{f"veth{n:04x}": (1, 1) for n in range(80)}}
        dev.write_text(net_dev(**many))
        assert dev.stat().st_size >= 4096 - 512
        assert held.figures(HOST_MEMORY, time.time_ns).tx_bytes == 9
        assert reads == [dev.stat().st_size, 0]
    finally:
        monkeypatch.undo()
        held.close()


def test_held_files_give_what_the_files_hold_at_each_read(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 1)
    host.add(CID, f"docker/{CID}", Figures(cpu_ns=5))
    files = host.find()
    assert files is not None
    held = HeldFiles(files)
    try:
        assert len(held) == 5
        assert read_figures(files, HOST_MEMORY, read=held.read).cpu_ns == 5
        # rewritten in place, as the kernel does: the next read gives the new text
        (host.root / "cpuacct" / "docker" / CID / "cpuacct.usage").write_text("123456789\n")
        assert read_figures(files, HOST_MEMORY, read=held.read).cpu_ns == 123456789
        # A cgroup file (one record) is whole after one short read; a longer one is read on.
        stat = host.root / "memory" / "docker" / CID / "memory.stat"
        padding = "".join(f"pad_{n} 0\n" for n in range(8000))
        stat.write_text(padding + "total_inactive_file 1048576\n")
        assert stat.stat().st_size > 65536
        assert read_figures(files, HOST_MEMORY, read=held.read).memory_used_bytes == 299 * MIB
    finally:
        held.close()
    assert len(held) == 0
    (host.root / "memory" / "docker" / CID / "memory.stat").unlink()
    with pytest.raises(FileNotFoundError):
        HeldFiles(files)  # nothing left open: the files it had opened are closed again


def test_cgroup_version(tmp_path: Path) -> None:
    assert cgroup_version(FakeHost(tmp_path / "a", 1).root) == 1
    assert cgroup_version(FakeHost(tmp_path / "b", 2).root) == 2
    (tmp_path / "empty").mkdir()
    assert cgroup_version(tmp_path / "empty") is None
    assert cgroup_version(tmp_path / "missing") is None


def test_the_setting_picks_the_source(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 2)
    local, remote = "/run/docker.sock", "tcp://10.0.0.5:2376"
    auto, why = cgroup_source_choice("auto", local, host.root, host.proc)
    assert auto is not None
    assert (auto.version, why) == (2, "")
    assert cgroup_source_choice("api", local, host.root, host.proc) == (None, "stats_source=api")
    assert cgroup_source_choice("auto", remote, host.root, host.proc) == (
        None,
        "the engine is reached over tcp://, its containers' files are not here",
    )
    assert cgroup_source_choice("cgroup", remote, host.root, host.proc)[0] is not None
    nothing = tmp_path / "nothing"
    assert cgroup_source_choice("auto", local, nothing, host.proc) == (
        None,
        f"no cgroup hierarchy at {nothing}",
    )


def test_the_source_remembers_where_files_are_and_looks_again_when_they_go(
    tmp_path: Path,
) -> None:
    host = FakeHost(tmp_path, 1)
    host.add(CID, f"docker/{CID}", Figures())
    # held_files=0: every read opens the files by their paths
    source = CgroupSource(1, root=host.root, proc_root=host.proc, clock_ns=lambda: 5, held_files=0)
    info = {"Id": CID, "State": {"Running": True, "Pid": PID}, "HostConfig": {}}
    stopped = {"Id": OTHER, "State": {"Running": True, "Pid": 0}, "HostConfig": {}}
    readings = source.read([info, stopped], HOST_MEMORY)
    assert list(readings) == [CID]
    assert readings[CID].memory_used_bytes == 260 * MIB
    assert source.open_files == 0
    # Found once, then read where it was (the /proc entry is not looked at again).
    (host.proc / str(PID) / "cgroup").unlink()
    assert source.read_one(info, HOST_MEMORY) == readings[CID]
    # Gone (the container stopped): None, and it is looked for again next time.
    (host.root / "memory" / "docker" / CID / "memory.stat").unlink()
    assert source.read_one(info, HOST_MEMORY) is None
    assert source.read_one(info, HOST_MEMORY) is None
    source.keep_only([])


def test_the_source_keeps_files_open_for_one_run_within_its_budget(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 1)
    host.add(CID, f"docker/{CID}", Figures(cpu_ns=1))
    host.add(OTHER, f"docker/{OTHER}", Figures(cpu_ns=2), pid=PID + 1)
    # room for one container's five files, not for two
    source = CgroupSource(1, root=host.root, proc_root=host.proc, held_files=7)
    info = {"Id": CID, "State": {"Running": True, "Pid": PID}, "HostConfig": {}}
    other = {"Id": OTHER, "State": {"Running": True, "Pid": PID + 1}, "HostConfig": {}}
    assert source.read([info, other], HOST_MEMORY)[OTHER].cpu_ns == 2
    assert source.open_files == 5  # CID's; OTHER's are read by path
    usage = host.root / "memory" / "docker" / CID / "memory.usage_in_bytes"
    usage.write_text("garbage\n")
    # A held file that fails to read: None, its files closed, and found again next time.
    assert source.read_one(info, HOST_MEMORY) is None
    assert "garbage" in source.failures[CID]
    assert source.open_files == 0
    usage.write_text(f"{20 * MIB}\n")
    assert source.read_one(info, HOST_MEMORY) is not None
    assert source.open_files == 5
    assert CID not in source.failures
    # A new run (another init pid) is looked for again, with files of its own.
    host.add(CID, f"docker/{CID}", Figures(cpu_ns=3, rx=77), pid=PID + 2)
    restarted = {**info, "State": {"Running": True, "Pid": PID + 2}}
    reading = source.read_one(restarted, HOST_MEMORY)
    assert reading is not None
    assert (reading.cpu_ns, reading.rx_bytes) == (3, 77)  # the new init's /proc/<pid>/net/dev
    assert source.open_files == 5
    # A container that is no longer running lets go of its files; close() of all of them.
    source.keep_only([OTHER])
    assert source.open_files == 0
    assert source.read([restarted, other], HOST_MEMORY)[CID].cpu_ns == 3
    assert source.open_files == 5
    source.close()
    assert source.open_files == 0


@pytest.mark.parametrize(
    ("soft", "budget"),
    [(65536, 16256), (20000, 4872), (1024, 128), (512, 0), (256, 0), (-1, (2**20 - 512) // 4)],
)
def test_the_held_files_budget_is_a_quarter_of_the_limit_beyond_512(
    monkeypatch: pytest.MonkeyPatch, soft: int, budget: int
) -> None:
    limit = resource.RLIM_INFINITY if soft == -1 else soft
    monkeypatch.setattr(resource, "getrlimit", lambda which: (limit, resource.RLIM_INFINITY))
    assert held_files_budget() == budget
