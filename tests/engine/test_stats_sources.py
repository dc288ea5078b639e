"""The two stats sources on the same running containers: cgroup files and the engine's stats API.

Work of a known size runs in two test containers: a busy loop under a half-CPU quota and 48 MiB
in ``/dev/shm`` in one, and 10 MiB fetched from it by the other (busybox httpd and wget). Two
samplers, one per source, sample both containers twice, about three seconds apart, and their
records must agree within these tolerances (the two sources read a second or so apart: a one-shot
stats call waits for the engine's collector):

- memory used within 2 %, and the same memory and CPU limits;
- CPU within 5 percentage points (and both near the 50 % the quota allows);
- network totals within 1 % (or 4 KiB, for the small totals: a few ACKs).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from docker_api import DockerClient
from dockerlink.stats.cgroups import CGROUP_ROOT
from dockerlink.stats.sampler import CgroupUnreadable, Sampler
from dockerlink.stats.series import Sample
from dockerlink.stats.sources import CgroupSource
from dockerlink.stats.store import HistoryStore

from ..conftest import TEST_IMAGE, wait_for

MIB = 1 << 20
#: Seconds between the two samples that a CPU figure is measured over.
CPU_WINDOW_S = 3.0


class OnlyThese:
    """A stand-in for the mirror that holds only this test's containers (the shared engine has
    other tests' containers too, which the samplers here have no business with)."""

    def __init__(self, infos: list[dict[str, Any]]) -> None:
        self.infos = infos
        self.fresh = True

    def all(self) -> list[dict[str, Any]]:
        return self.infos

    async def every_container(self, **_: Any) -> list[dict[str, Any]]:
        return self.infos


async def run_container(
    docker: DockerClient, cleanup: list[str], name: str, script: str
) -> dict[str, Any]:
    created = await docker.containers.create(
        {
            "Image": TEST_IMAGE,
            "Cmd": ["sh", "-c", script],
            "HostConfig": {
                "Memory": 256 * MIB,
                "MemorySwap": 256 * MIB,
                "CpuPeriod": 100_000,
                "CpuQuota": 50_000,
            },
        },
        name=name,
    )
    cleanup.append(created["Id"])
    await docker.containers.start(created["Id"])
    return await docker.containers.inspect(created["Id"])


def sampler(
    docker: DockerClient, tmp_path: Path, name: str, infos: list[dict[str, Any]], **kw: Any
) -> Sampler:
    store = HistoryStore(tmp_path / name)
    store.open()
    mirror: Any = OnlyThese(infos)
    return Sampler(docker, store, interval_s=1.0, call_timeout_s=20.0, mirror=mirror, **kw)


def real_cgroups() -> CgroupSource:
    source = CgroupSource.detect()
    assert source is not None, f"no cgroup hierarchy at {CGROUP_ROOT} on the engine's host"
    return source


@pytest.fixture
async def busy_pair(
    docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> list[dict[str, Any]]:
    """A busy web server with 48 MiB in /dev/shm, and a client that fetched 10 MiB from it."""
    server = await run_container(
        docker,
        cleanup,
        unique_name("src"),
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=48 && mkdir -p /tmp/www"
        " && dd if=/dev/zero of=/tmp/www/blob bs=1M count=10 && httpd -p 8080 -h /tmp/www"
        " && while :; do :; done",
    )
    client = await run_container(docker, cleanup, unique_name("dst"), "sleep 3600")
    address = next(iter(server["NetworkSettings"]["Networks"].values()))["IPAddress"]

    async def fetched() -> bool:
        result = await docker.execs.run(
            client["Id"], ["wget", "-q", "-O", "/dev/null", f"http://{address}:8080/blob"],
            timeout=30,
        )  # fmt: skip
        return result.exit_code == 0  # fails until httpd listens

    await wait_for(fetched, timeout=30, interval=0.2)
    return [await docker.containers.inspect(server["Id"]), client]


async def test_cgroup_files_and_the_stats_api_give_the_same_figures(
    docker: DockerClient, tmp_path: Path, busy_pair: list[dict[str, Any]]
) -> None:
    by_files = sampler(docker, tmp_path, "files", busy_pair, cgroups=real_cgroups(),
                       api_fallback=False)  # fmt: skip
    by_api = sampler(docker, tmp_path, "api", busy_pair)
    await asyncio.gather(by_files.tick(), by_api.tick())
    started = time.monotonic()
    # CPU is a rate: it needs time to pass between the two samples (and a new second for the
    # store, which keeps one sample a second).
    await wait_for(lambda: time.monotonic() - started >= CPU_WINDOW_S, timeout=10)
    await asyncio.gather(by_files.tick(), by_api.tick())
    assert (by_files.cgroup_samples, by_files.api_samples) == (4, 0)
    assert (by_api.cgroup_samples, by_api.api_samples) == (0, 4)

    server_id, client_id = (info["Id"] for info in busy_pair)
    files: dict[str, Sample] = {}
    api: dict[str, Sample] = {}
    for container_id in (server_id, client_id):
        files_sample = by_files.store.last(container_id)
        api_sample = by_api.store.last(container_id)
        assert files_sample is not None
        assert api_sample is not None
        files[container_id], api[container_id] = files_sample, api_sample
        assert files_sample.mem_limit_bytes == api_sample.mem_limit_bytes == 256 * MIB
        assert files_sample.cpu_limit_centi == api_sample.cpu_limit_centi == 5000
        assert within(files_sample.mem_used_kib, api_sample.mem_used_kib, 0.02, 0)
        assert abs(files_sample.cpu_centi - api_sample.cpu_centi) <= 500, (files_sample, api_sample)
        for field in ("up_kib", "down_kib"):
            assert within(getattr(files_sample, field), getattr(api_sample, field), 0.01, 4), field

    for figures in (files, api):
        server, client = figures[server_id], figures[client_id]
        # 48 MiB in /dev/shm, and the 10 MiB file it wrote and serves (in the page cache)
        assert 56 * 1024 <= server.mem_used_kib <= 66 * 1024, server
        assert 4000 <= server.cpu_centi <= 6000, server  # the quota: half a CPU
        assert client.cpu_centi < 1000, client
        assert 10 * 1024 <= server.up_kib <= 11 * 1024, server
        assert 10 * 1024 <= client.down_kib <= 11 * 1024, client


def within(ours: int, theirs: int, fraction: float, absolute: int) -> bool:
    return abs(ours - theirs) <= max(fraction * max(ours, theirs), absolute)


async def test_containers_whose_cgroups_cannot_be_read_go_through_the_engine(
    docker: DockerClient,
    tmp_path: Path,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """One tick, two paths: a fake cgroup root that holds only the first container's files (links
    to the real ones), so the second one's figures come from the engine, in the same records."""
    real = real_cgroups()
    infos = [
        await run_container(docker, cleanup, unique_name("cg"), "sleep 3600") for _ in range(2)
    ]
    readable, unreadable = infos
    root = tmp_path / "cgroup"
    own = (Path("/proc") / str(readable["State"]["Pid"]) / "cgroup").read_text()
    for line in own.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in ("cpuacct", "memory") if real.version == 1 else ("",):
            if (real.version == 1 and controller in controllers.split(",")) or (
                real.version == 2 and line.startswith("0::")
            ):
                link = root / controller / path.lstrip("/")
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    os.symlink(real.root / controller / path.lstrip("/"), link)
    mixed = sampler(docker, tmp_path, "mixed", infos,
                    cgroups=CgroupSource(real.version, root=root))  # fmt: skip
    assert await mixed.tick() == 2
    assert (mixed.cgroup_samples, mixed.api_samples) == (1, 1)

    # An empty root: every figure comes from the engine, and stats_source=cgroup refuses.
    (tmp_path / "empty").mkdir()
    empty = CgroupSource(real.version, root=tmp_path / "empty")
    fallback = sampler(docker, tmp_path, "fallback", infos, cgroups=empty)
    only_files = sampler(docker, tmp_path, "only", infos, cgroups=empty, api_fallback=False)
    assert await fallback.tick() == 2
    assert (fallback.cgroup_samples, fallback.api_samples) == (0, 2)
    with pytest.raises(CgroupUnreadable):
        await only_files.sample(unreadable)

    for info in infos:
        a, b = mixed.store.last(info["Id"]), fallback.store.last(info["Id"])
        assert a is not None
        assert b is not None
        assert a.mem_limit_bytes == b.mem_limit_bytes == 256 * MIB
        assert a.cpu_limit_centi == b.cpu_limit_centi == 5000
        # a sleeping shell: a few hundred KiB, which moves while it settles
        assert 0 < a.mem_used_kib < 4096
        assert 0 < b.mem_used_kib < 4096


def fds_under(*prefixes: str) -> list[str]:
    """The files this process has open whose paths start with one of ``prefixes``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(prefixes):
            found.append(target)
    return found


async def test_files_kept_open_give_fresh_figures_and_are_let_go_when_the_container_stops(
    docker: DockerClient, busy_pair: list[dict[str, Any]]
) -> None:
    """The cgroup source keeps a running container's five files open and reads them again at
    every tick: the figures are the kernel's of that moment, and a stopped container's files
    (its network namespace pinned by ``net/dev``) are closed."""
    source = real_cgroups()
    server, client = busy_pair
    host_memory = 64 << 30
    first = source.read_one(client, host_memory)
    assert first is not None
    assert source.open_files == 5
    cgroup_dir = next(p for p in fds_under(str(source.root)) if client["Id"] in p).rsplit("/", 1)[0]
    net_dev = f"/proc/{client['State']['Pid']}/net/dev"
    # Work done after the files were opened: 10 MiB more received, 16 MiB more in /dev/shm,
    # and a second of CPU.
    address = next(iter(server["NetworkSettings"]["Networks"].values()))["IPAddress"]
    script = (
        f"wget -q -O /dev/null http://{address}:8080/blob"
        " && dd if=/dev/zero of=/dev/shm/more bs=1M count=16 2>/dev/null"
        " && end=$(($(date +%s) + 2)); while [ $(date +%s) -lt $end ]; do :; done"
    )
    result = await docker.execs.run(client["Id"], ["sh", "-c", script], timeout=30)
    assert result.exit_code == 0, result
    again = source.read_one(client, host_memory)
    assert again is not None
    assert source.open_files == 5  # the same files, not opened again
    assert again.rx_bytes - first.rx_bytes >= 10 * MIB
    assert again.memory_used_bytes - first.memory_used_bytes >= 15 * MIB
    assert again.cpu_ns - first.cpu_ns >= 500_000_000  # half a CPU's quota, for 1 s at least

    await docker.containers.stop(client["Id"], t=1)
    # Read through the files still open, a stopped container's cgroup is gone: nothing.
    assert source.read_one(client, host_memory) is None
    assert source.open_files == 0
    assert not fds_under(cgroup_dir, net_dev)
    # A tick lets go of every container that is not running.
    assert source.read_one(server, host_memory) is not None
    assert source.open_files == 5
    source.keep_only([])
    assert source.open_files == 0
    assert not [p for p in fds_under(str(source.root) + "/") if server["Id"] in p]
    assert not fds_under(f"/proc/{server['State']['Pid']}/")
