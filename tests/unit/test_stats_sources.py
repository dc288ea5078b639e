"""The Sampler with a mirror and a cgroup source: no engine calls when it can, the same samples."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from dockerlink.stats.sampler import Sampler
from dockerlink.stats.series import Sample
from dockerlink.stats.sources import CgroupSource
from dockerlink.stats.store import HistoryStore

from ..conftest import wait_for
from .clock import Clock
from .test_stats_cgroups import FakeHost, Figures
from .test_stats_sampler import GIB, MIB, FakeContainer, FakeEngine


class Box(FakeContainer):
    """A fake container that also has an init pid, and cgroup files on a fake host."""

    def __init__(self, n: int, **kw: Any) -> None:
        super().__init__(n, **kw)
        self.pid = 1000 + n

    def inspect(self) -> dict[str, Any]:
        info = super().inspect()
        info["State"]["Pid"] = self.pid if self.running else 0
        return info

    def write_files(self, host: FakeHost) -> None:
        """Put the figures its stats call would give into its cgroup files."""
        figures = Figures(
            cpu_ns=self.cpu_ns,
            usage=self.mem_bytes + 10 * MIB,
            inactive_file=10 * MIB,
            limit=self.host_config["Memory"] or None,
            rx=self.rx,
            tx=self.tx,
        )
        host.add(self.id, f"docker/{self.id}", figures, pid=self.pid)


class FakeMirror:
    def __init__(self, engine: FakeEngine, fresh: bool = True) -> None:
        self.engine = engine
        self.fresh = fresh

    def all(self) -> list[dict[str, Any]]:
        return [box.inspect() for box in self.engine.boxes.values()]

    async def wait_fresh(self, timeout: float) -> bool:
        return self.fresh


def store_in(path: Path, clock: Clock) -> HistoryStore:
    history = HistoryStore(path, clock=clock)
    history.open()
    return history


def sampler_for(
    engine: FakeEngine,
    store: HistoryStore,
    clock: Clock,
    *,
    host: FakeHost | None = None,
    read_ns: list[int] | None = None,
    mirror: FakeMirror | None = None,
    **kw: Any,
) -> Sampler:
    cgroups = None
    if host is not None:
        now = read_ns or [0]
        cgroups = CgroupSource(1, root=host.root, proc_root=host.proc, clock_ns=lambda: now[0])
    docker: Any = engine
    fake_mirror: Any = mirror
    return Sampler(
        docker,
        store,
        interval_s=15.0,
        call_timeout_s=7.0,
        clock=clock,
        mirror=fake_mirror,
        cgroups=cgroups,
        **kw,
    )


async def test_both_sources_record_the_same_samples(tmp_path: Path, clock: Clock) -> None:
    running = Box(1, memory=2 * GIB)
    unlimited = Box(2, memory=0)
    unlimited.host_config = {"Memory": 0}  # no limit: the host's memory, both ways
    stopped = Box(3, running=False)
    engine = FakeEngine(running, unlimited, stopped)
    host = FakeHost(tmp_path, 1)
    read_ns = [running.read_ns]
    by_api = sampler_for(engine, store_in(tmp_path / "a", clock), clock)
    by_files = sampler_for(
        engine, store_in(tmp_path / "b", clock), clock, host=host, read_ns=read_ns
    )
    for step in range(3):
        for box in (running, unlimited):
            box.advance(15 if step else 3600, cpus=0.25 * (step + 1), tx=3000 * step, rx=17 * MIB)
            box.write_files(host)
        read_ns[0] = running.read_ns
        clock.now += 15
        await by_api.tick()
        await by_files.tick()
        for box in (running, unlimited, stopped):
            api_sample = by_api.store.last(box.id)
            assert api_sample is not None
            assert by_files.store.last(box.id) == api_sample
    assert by_files.store.last(running.id) == Sample(
        clock.now, 100 * 1024, 2 * GIB, 7500, 5000, 9000 // 1024, 3 * 17 * 1024, 6, 17 * 1024
    )
    assert by_files.store.last(unlimited.id).mem_limit_bytes == 8 * GIB  # type: ignore[union-attr]
    assert (by_files.cgroup_samples, by_files.api_samples) == (6, 0)
    assert (by_api.cgroup_samples, by_api.api_samples) == (0, 6)


async def test_with_a_fresh_mirror_and_cgroups_a_tick_asks_the_engine_nothing(
    tmp_path: Path, clock: Clock
) -> None:
    boxes = [Box(n) for n in range(1, 4)] + [Box(9, running=False)]
    engine = FakeEngine(*boxes)
    host = FakeHost(tmp_path, 1)
    for box in boxes[:3]:
        box.write_files(host)
    mirror = FakeMirror(engine)
    sampler = sampler_for(engine, store_in(tmp_path / "s", clock), clock, host=host, mirror=mirror)
    assert await sampler.tick() == 4
    assert [name for name, _ in engine.calls] == ["info"]  # the host's memory, once
    engine.calls.clear()
    clock.now += 15
    assert await sampler.tick() == 4
    assert engine.calls == []

    mirror.fresh = False  # the mirror lost the engine: list and inspect, read the files
    clock.now += 15
    assert await sampler.tick() == 4
    assert sorted({name for name, _ in engine.calls}) == ["inspect", "list"]


async def test_a_container_whose_files_cannot_be_read_is_sampled_by_the_engine(
    tmp_path: Path, clock: Clock
) -> None:
    readable, unreadable = Box(1), Box(2)
    engine = FakeEngine(readable, unreadable)
    host = FakeHost(tmp_path, 1)
    readable.write_files(host)
    sampler = sampler_for(engine, store_in(tmp_path / "s", clock), clock, host=host)
    assert await sampler.tick() == 2
    stats_calls = [name for name, _ in engine.calls if name == "stats"]
    assert stats_calls == ["stats"]  # for the unreadable one only
    assert (sampler.cgroup_samples, sampler.api_samples) == (1, 1)
    first = sampler.store.last(unreadable.id)
    assert first is not None
    assert first.mem_used_kib == 100 * 1024


async def test_stats_source_cgroup_never_asks_the_engine_for_stats(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    readable, unreadable = Box(1), Box(2)
    engine = FakeEngine(readable, unreadable)
    host = FakeHost(tmp_path, 1)
    readable.write_files(host)
    sampler = sampler_for(
        engine, store_in(tmp_path / "s", clock), clock, host=host, api_fallback=False
    )
    with caplog.at_level(logging.WARNING, logger="dockerlink.stats"):
        assert await sampler.tick() == 1
    assert "stats" not in {name for name, _ in engine.calls}
    assert unreadable.id not in sampler.store
    assert f"{unreadable.id[:12]}: its cgroup files cannot be read" in caplog.text


async def test_the_on_the_spot_sample_reads_the_files_too(tmp_path: Path, clock: Clock) -> None:
    box = Box(1)
    engine = FakeEngine(box)
    host = FakeHost(tmp_path, 1)
    box.write_files(host)
    sampler = sampler_for(engine, store_in(tmp_path / "s", clock), clock, host=host)
    sample = await sampler.sample(box.inspect())
    assert sample is not None
    assert sample.mem_used_kib == 100 * 1024
    assert "stats" not in {name for name, _ in engine.calls}
    assert sampler.describe_source() == (
        "figures from cgroup v1 files, else from the engine's stats API"
    )


async def run_one_tick(sampler: Sampler) -> None:
    """Start the sampler as the service does, until its first tick is done."""
    task = asyncio.create_task(sampler.run())
    try:
        await wait_for(lambda: sampler.ticks >= 1 or task.done(), timeout=10)
        assert not task.done(), task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_start_up_log_says_the_cgroup_files_are_used(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    boxes = Box(1), Box(2), Box(3, running=False)
    engine = FakeEngine(*boxes)
    host = FakeHost(tmp_path, 1)
    for box in boxes[:2]:
        box.write_files(host)
    sampler = sampler_for(
        engine, store_in(tmp_path / "s", clock), clock, host=host, mirror=FakeMirror(engine)
    )
    with caplog.at_level(logging.INFO, logger="dockerlink.stats"):
        await run_one_tick(sampler)
    sources = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stats source")]
    assert sources == ["stats source: cgroup v1 files (2 running containers)"]


async def test_the_start_up_log_names_a_container_whose_proc_entry_is_hidden(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """ProtectProc=invisible (or hidepid=) hides other users' processes: their /proc/<pid> is
    not there, so every figure comes from the engine, and the log says so and why."""
    visible, hidden = Box(1), Box(2)
    engine = FakeEngine(visible, hidden)
    host = FakeHost(tmp_path, 1)
    visible.write_files(host)
    hidden.write_files(host)
    shutil.rmtree(host.proc / str(hidden.pid))
    sampler = sampler_for(
        engine, store_in(tmp_path / "s", clock), clock, host=host, mirror=FakeMirror(engine)
    )
    with caplog.at_level(logging.INFO, logger="dockerlink.stats"):
        await run_one_tick(sampler)
    sources = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stats source")]
    assert sources == [
        f"stats source: cgroup v1 files for 1 of 2 running containers, api for 1 "
        f"({hidden.id[:12]}: cgroup files unreadable for {host.proc}/{hidden.pid}: "
        "No such file or directory (a /proc that hides other users' processes does this: "
        "systemd's ProtectProc=, the hidepid= mount option))"
    ]
    assert (sampler.cgroup_samples, sampler.api_samples) == (1, 1)

    # Every process hidden: the API for all, said once; a tick that changes nothing says nothing.
    shutil.rmtree(host.proc / str(visible.pid))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dockerlink.stats"):
        await sampler.tick()
        clock.now += 15
        await sampler.tick()
    sources = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stats source")]
    assert sources == [
        f"stats source: api (cgroup files unreadable for {host.proc}/{visible.pid}: "
        "No such file or directory (a /proc that hides other users' processes does this: "
        "systemd's ProtectProc=, the hidepid= mount option); and 1 more)"
    ]


async def test_the_start_up_log_without_a_cgroup_source_says_why(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = FakeEngine(Box(1))
    sampler = sampler_for(
        engine,
        store_in(tmp_path / "s", clock),
        clock,
        mirror=FakeMirror(engine),
        no_cgroups_reason="no cgroup hierarchy at /nowhere",
    )
    with caplog.at_level(logging.INFO, logger="dockerlink.stats"):
        await run_one_tick(sampler)
    assert "stats source: api (no cgroup hierarchy at /nowhere)" in caplog.messages
