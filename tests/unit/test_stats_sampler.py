"""The Sampler against a fake engine: figures, stopped containers, failures, the loop's rhythm."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable
from typing import Any

import pytest

import docker_api
from dockerlink.stats.sampler import Sampler
from dockerlink.stats.store import HistoryStore
from tests.conftest import wait_for

from .clock import T0, Clock

GIB = 1 << 30
MIB = 1 << 20
SECOND_NS = 1_000_000_000
STARTED_NS = (T0 - 86400) * SECOND_NS


def cid(n: int) -> str:
    return f"{n:02x}" * 32  # distinct 12-character prefixes, as in logs


def iso(ns: int) -> str:
    seconds, fraction = divmod(ns, SECOND_NS)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


STARTED_AT = iso(STARTED_NS)


class FakeContainer:
    def __init__(self, n: int, *, running: bool = True, memory: int = GIB) -> None:
        self.id = cid(n)
        self.running = running
        self.started_at = STARTED_AT
        self.host_config: dict[str, Any] = {
            "Memory": memory,
            "CpuPeriod": 100_000,
            "CpuQuota": 50_000,
        }
        self.cpu_ns = 0
        self.read_ns = STARTED_NS
        self.mem_bytes = 100 * MIB
        self.tx = 0
        self.rx = 0

    def inspect(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "State": {"Running": self.running, "StartedAt": self.started_at},
            "HostConfig": dict(self.host_config),
        }

    def stats(self) -> dict[str, Any]:
        if not self.running:
            return {"read": "0001-01-01T00:00:00Z", "memory_stats": {}, "cpu_stats": {}}
        return {
            "read": iso(self.read_ns),
            "memory_stats": {
                "usage": self.mem_bytes + 10 * MIB,
                "limit": self.host_config["Memory"] or 8 * GIB,
                "stats": {"total_inactive_file": 10 * MIB},
            },
            "cpu_stats": {"cpu_usage": {"total_usage": self.cpu_ns}},
            "networks": {"eth0": {"tx_bytes": self.tx, "rx_bytes": self.rx}},
        }

    def advance(self, seconds: float, cpus: float = 0.5, tx: int = 0, rx: int = 0) -> None:
        self.read_ns += int(seconds * SECOND_NS)
        self.cpu_ns += int(seconds * cpus * SECOND_NS)
        self.tx += tx
        self.rx += rx


class FakeContainers:
    def __init__(self, engine: FakeDockerClient) -> None:
        self.engine = engine

    async def list(self, *, all: bool, timeout: float | None = None) -> list[dict[str, Any]]:
        self.engine.calls.append(("list", timeout))
        if self.engine.list_failures:
            self.engine.list_failures -= 1
            raise docker_api.EngineUnreachable("connection refused")
        assert all
        return [{"Id": c.id} for c in self.engine.boxes.values()]

    async def inspect(self, ref: str, *, timeout: float | None = None) -> dict[str, Any]:
        self.engine.calls.append(("inspect", timeout))
        if ref in self.engine.broken:
            raise self.engine.broken[ref]
        if ref not in self.engine.boxes:
            raise docker_api.NotFound(f"No such container: {ref}")
        return self.engine.boxes[ref].inspect()

    async def stats(self, ref: str, *, timeout: float | None = None) -> dict[str, Any]:
        self.engine.calls.append(("stats", timeout))
        self.engine.in_flight += 1
        self.engine.max_in_flight = max(self.engine.max_in_flight, self.engine.in_flight)
        try:
            await asyncio.sleep(self.engine.stats_delay_s)
        finally:
            self.engine.in_flight -= 1
        return self.engine.boxes[ref].stats()


class FakeDockerClient:
    def __init__(self, *containers: FakeContainer) -> None:
        self.boxes = {c.id: c for c in containers}
        self.containers = FakeContainers(self)  # the client's shape: docker.containers.<op>
        self.calls: list[tuple[str, float | None]] = []
        self.broken: dict[str, Exception] = {}
        self.list_failures = 0
        self.stats_delay_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0

    async def info(self, *, timeout: float | None = None) -> dict[str, Any]:
        self.calls.append(("info", timeout))
        return {"MemTotal": 8 * GIB}


def make_sampler(
    engine: FakeDockerClient, store: HistoryStore, clock: Callable[[], float], **kw: Any
) -> Sampler:
    docker: Any = engine
    options: dict[str, Any] = {"interval_s": 15.0, "call_timeout_s": 7.0, "clock": clock}
    options.update(kw)
    return Sampler(docker, store, **options)


async def test_cpu_memory_network_of_a_running_container(store: HistoryStore, clock: Clock) -> None:
    box = FakeContainer(1)
    box.advance(86400, cpus=0.25, tx=4096, rx=8192)  # a day of life before the first sample
    engine = FakeDockerClient(box)
    sampler = make_sampler(engine, store, clock)

    await sampler.tick()
    first = store.last(box.id)
    assert first is not None
    # No previous reading: CPU since the container started, 0.25 CPU all day long.
    assert first.cpu_centi == 2500
    assert first.mem_used_kib == 100 * 1024
    assert first.mem_limit_bytes == GIB
    assert first.cpu_limit_centi == 5000
    assert (first.up_kib, first.down_kib) == (4, 8)
    assert (first.delta_up_kib, first.delta_down_kib) == (4, 8)

    box.advance(15, cpus=0.5, tx=10 * MIB, rx=1024)
    clock.now += 15
    await sampler.tick()
    second = store.last(box.id)
    assert second is not None
    assert second.cpu_centi == 5000
    assert (second.up_kib, second.down_kib) == (4 + 10 * 1024, 9)
    assert (second.delta_up_kib, second.delta_down_kib) == (10 * 1024, 1)


async def test_a_stopped_container_gets_zero_usage_and_keeps_its_limits(
    store: HistoryStore, clock: Clock
) -> None:
    box = FakeContainer(1, running=False)
    unlimited = FakeContainer(2, running=False, memory=0)
    unlimited.host_config = {"Memory": 0}
    engine = FakeDockerClient(box, unlimited)
    await make_sampler(engine, store, clock).tick()
    sample = store.last(box.id)
    assert sample is not None
    assert sample.mem_limit_bytes == GIB
    assert sample.cpu_limit_centi == 5000
    assert sample.as_tuple()[1:] == (0, GIB, 0, 5000, 0, 0, 0, 0)
    assert not [call for call in engine.calls if call[0] == "stats"]
    other = store.last(unlimited.id)
    assert other is not None
    assert other.mem_limit_bytes == 8 * GIB  # the host's memory, as the engine reports it
    assert other.cpu_limit_centi == 0


class SameInspects:
    """A mirror that answers the same inspect objects at every tick until one is replaced, as
    the real one does while it follows the engine."""

    def __init__(self, infos: list[dict[str, Any]]) -> None:
        self.infos = infos

    async def every_container(self, **_: Any) -> list[dict[str, Any]]:
        return self.infos


async def test_a_stopped_container_whose_inspect_did_not_change_gets_the_same_sample(
    store: HistoryStore, clock: Clock
) -> None:
    box = FakeContainer(1, running=False)
    engine = FakeDockerClient(box)
    infos = [box.inspect()]
    sampler = make_sampler(engine, store, clock, mirror=SameInspects(infos))
    for _ in range(3):
        await sampler.tick()
        clock.now += 15
    samples = store.query(box.id)
    assert samples is not None
    assert [sample.t for sample in samples] == [T0, T0 + 15, T0 + 30]
    assert {sample.as_tuple()[1:] for sample in samples} == {(0, GIB, 0, 5000, 0, 0, 0, 0)}
    # Resized while stopped: a new inspect, a sample made from it.
    box.host_config["Memory"] = 2 * GIB
    infos[0] = box.inspect()
    await sampler.tick()
    last = store.last(box.id)
    assert last is not None
    assert last.as_tuple() == (T0 + 45, 0, 2 * GIB, 0, 5000, 0, 0, 0, 0)
    # Started: its figures.
    box.running = True
    box.advance(86400, cpus=0.25)
    infos[0] = box.inspect()
    clock.now += 15
    await sampler.tick()
    last = store.last(box.id)
    assert last is not None
    assert (last.t, last.mem_used_kib, last.cpu_centi) == (T0 + 60, 100 * 1024, 2500)


async def test_ticks_over_the_same_inspects_sample_everything_and_see_each_change(
    store: HistoryStore, clock: Clock
) -> None:
    """While the mirror answers the very same inspects, a tick looks again only at the running
    containers and hands the stopped ones' repeats as they were: every container still gets its
    sample at every tick, and any replaced, added or removed inspect is seen at the next."""
    stopped = [FakeContainer(n, running=False) for n in (1, 2, 3)]
    busy = FakeContainer(4)
    engine = FakeDockerClient(*stopped, busy)
    infos = [box.inspect() for box in (*stopped, busy)]
    sampler = make_sampler(engine, store, clock, mirror=SameInspects(infos))
    times = []
    for _ in range(4):
        busy.advance(15, cpus=0.5)
        times.append(int(clock.now))
        await sampler.tick()
        clock.now += 15
    for box in stopped:
        samples = store.query(box.id)
        assert samples is not None and [sample.t for sample in samples] == times
    running_samples = store.query(busy.id)
    assert running_samples is not None and [s.t for s in running_samples] == times
    assert [s.cpu_centi for s in running_samples[1:]] == [5000] * 3
    # One starts (a new inspect), one is removed, one is resized, one stays: seen at once.
    stopped[0].running = True
    stopped[0].advance(15, cpus=0.25)
    infos[0] = stopped[0].inspect()
    del infos[1], engine.boxes[stopped[1].id]
    stopped[2].host_config["Memory"] = 2 * GIB
    infos[1] = stopped[2].inspect()
    busy.advance(15, cpus=0.5)
    await sampler.tick()
    at = int(clock.now)
    started = store.last(stopped[0].id)
    assert started is not None and (started.t, started.cpu_centi) == (at, 2500)
    resized = store.last(stopped[2].id)
    assert resized is not None and (resized.t, resized.mem_limit_bytes) == (at, 2 * GIB)
    removed = store.query(stopped[1].id)
    assert removed is not None and [sample.t for sample in removed] == times
    assert store.root is not None
    store.flush()
    lines = (store.root / stopped[1].id / f"raw-{T0}.jsonl").read_bytes().splitlines()
    assert lines[1:] == [b'["="]', b'["=",15,15,15]']  # its run ended with it
    # And the new layout is kept in turn: the next tick samples all three again.
    clock.now += 15
    busy.advance(15, cpus=0.5)
    stopped[0].advance(15, cpus=0.25)
    await sampler.tick()
    for box in (stopped[0], stopped[2], busy):
        last = store.last(box.id)
        assert last is not None and last.t == int(clock.now)


async def test_a_stopped_container_is_one_run_on_disk_until_it_is_gone(
    store: HistoryStore, clock: Clock
) -> None:
    """Its samples after the first repeat it: an open repeat line, and nothing more while the
    run goes on; once the container is gone, the run's closed line."""
    box, other = FakeContainer(1, running=False), FakeContainer(2, running=False)
    engine = FakeDockerClient(box, other)
    sampler = make_sampler(engine, store, clock)
    for _ in range(4):
        await sampler.tick()
        clock.now += 15
    assert store.root is not None
    raw = store.root / box.id / f"raw-{T0}.jsonl"
    store.flush()
    assert raw.read_bytes().splitlines()[1:] == [b'["="]']
    del engine.boxes[box.id]
    await sampler.tick()
    store.flush()
    assert raw.read_bytes().splitlines()[1:] == [b'["="]', b'["=",15,15,15]']
    samples = store.query(box.id)
    assert samples is not None
    assert [sample.t for sample in samples] == [T0, T0 + 15, T0 + 30, T0 + 45]


async def test_a_restart_resets_deltas_and_cpu(store: HistoryStore, clock: Clock) -> None:
    box = FakeContainer(1)
    box.advance(100, tx=500 * 1024)
    engine = FakeDockerClient(box)
    sampler = make_sampler(engine, store, clock)
    await sampler.tick()
    # Restarted between two ticks, and already sent more than before.
    box.started_at = iso(box.read_ns + 5 * SECOND_NS)
    box.cpu_ns, box.tx = 0, 0
    box.advance(15, cpus=1.0, tx=600 * 1024)
    clock.now += 15
    await sampler.tick()
    sample = store.last(box.id)
    assert sample is not None
    assert sample.up_kib == 600
    assert sample.delta_up_kib == 600  # the new total, not 600 - 500
    # CPU time since the restart (15 s of one core) over the 10 s it has been running.
    assert sample.cpu_centi == 15000


async def test_stop_then_start_counts_everything_since_the_start(
    store: HistoryStore, clock: Clock
) -> None:
    box = FakeContainer(1)
    box.advance(10, tx=100 * 1024)
    engine = FakeDockerClient(box)
    sampler = make_sampler(engine, store, clock)
    await sampler.tick()
    box.running = False
    clock.now += 15
    await sampler.tick()
    stopped = store.last(box.id)
    assert stopped is not None
    assert (stopped.up_kib, stopped.delta_up_kib, stopped.cpu_centi) == (0, 0, 0)
    box.running, box.tx, box.cpu_ns = True, 0, 0
    box.started_at = iso(box.read_ns)
    box.advance(15, cpus=0.5, tx=20 * 1024)
    clock.now += 15
    await sampler.tick()
    started = store.last(box.id)
    assert started is not None
    assert (started.up_kib, started.delta_up_kib) == (20, 20)
    assert started.cpu_centi == 5000


async def test_one_bad_container_is_logged_and_skipped(
    store: HistoryStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad, weird, gone = (FakeContainer(n) for n in range(1, 5))
    engine = FakeDockerClient(good, bad, weird, gone)
    engine.broken[bad.id] = docker_api.EngineTimeout("timed out")
    engine.broken[weird.id] = RuntimeError("a bug")
    engine.broken[gone.id] = docker_api.NotFound("No such container")
    with caplog.at_level(logging.WARNING, logger="dockerlink.stats"):
        recorded = await make_sampler(engine, store, clock).tick()
    assert recorded == 1
    assert good.id in store
    assert bad.id not in store
    assert "timed out" in caplog.text
    assert "a bug" in caplog.text
    assert gone.id[:12] not in caplog.text  # removed since the listing: not an error


async def test_every_engine_call_has_the_timeout(store: HistoryStore, clock: Clock) -> None:
    engine = FakeDockerClient(FakeContainer(1), FakeContainer(2, running=False, memory=0))
    await make_sampler(engine, store, clock, call_timeout_s=3.5).tick()
    assert {name for name, _ in engine.calls} == {"list", "inspect", "stats", "info"}
    assert {timeout for _, timeout in engine.calls} == {3.5}


async def test_sampling_is_concurrent_with_a_bound(store: HistoryStore, clock: Clock) -> None:
    engine = FakeDockerClient(*(FakeContainer(n) for n in range(1, 21)))
    engine.stats_delay_s = 0.02
    await make_sampler(engine, store, clock, concurrency=5).tick()
    assert engine.max_in_flight == 5
    assert len(store.container_ids()) == 20


async def test_the_loop_survives_a_failing_engine_and_never_overlaps_ticks(
    store: HistoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    box = FakeContainer(1)
    engine = FakeDockerClient(box)
    engine.list_failures = 3
    engine.stats_delay_s = 0.03  # longer than the interval: ticks must wait for each other
    seconds = iter(range(T0, T0 + 10_000))
    sampler = make_sampler(engine, store, lambda: float(next(seconds)), interval_s=0.01)
    with caplog.at_level(logging.WARNING, logger="dockerlink.stats"):
        task = asyncio.create_task(sampler.run())
        try:
            await wait_for(lambda: sampler.ticks >= 4, timeout=10)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert "cannot list containers: connection refused" in caplog.text
    assert caplog.text.count("cannot list containers") == 1  # said once, not every tick
    assert engine.max_in_flight == 1
    # A list call only ever comes after the previous tick's stats call ended.
    names = [name for name, _ in engine.calls if name in {"list", "stats"}]
    assert names[:3] == ["list"] * 3
    assert names[3:] == ["list", "stats"] * ((len(names) - 3) // 2) + ["list"] * (
        (len(names) - 3) % 2
    )
    query = store.query(box.id)
    assert query is not None
    assert len(query) >= 4


async def test_retention_runs_in_the_loop(store: HistoryStore, clock: Clock) -> None:
    box = FakeContainer(1)
    engine = FakeDockerClient(box)
    calls = 0
    real = store.maintain

    def counting() -> None:
        nonlocal calls
        calls += 1
        real()

    store.maintain = counting  # type: ignore[method-assign]
    sampler = make_sampler(engine, store, clock, interval_s=0.01, maintain_every_s=0.0)
    task = asyncio.create_task(sampler.run())
    try:
        await wait_for(lambda: calls >= 2, timeout=5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_forget_deletes_the_history(store: HistoryStore, clock: Clock) -> None:
    box = FakeContainer(1)
    sampler = make_sampler(FakeDockerClient(box), store, clock)
    await sampler.tick()
    assert box.id in store
    await sampler.forget(box.id)
    assert box.id not in store


async def test_a_tick_over_many_containers_lets_other_work_run_in_between(
    store: HistoryStore, clock: Clock
) -> None:
    """Recording a thousand samples takes tens of milliseconds: requests get answered between
    batches of them, not after the whole tick."""
    boxes = [FakeContainer(n, running=False) for n in range(1, 100)]  # more than YIELD_EVERY
    sampler = make_sampler(FakeDockerClient(*boxes), store, clock)
    seen: list[int] = []
    tick = asyncio.ensure_future(sampler.tick())
    while not tick.done():
        seen.append(sum(store.last(box.id) is not None for box in boxes))
        await asyncio.sleep(0)
    assert await tick == len(boxes)
    assert any(0 < recorded < len(boxes) for recorded in seen), seen
