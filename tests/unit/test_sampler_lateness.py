"""The Sampler counts ticks that start late against its schedule: a blocked event loop, or a tick
longer than the interval. (``LATE_TICK_S`` is lowered so that the tests take milliseconds.)"""

from __future__ import annotations

import asyncio
import time

import pytest

from dockerlink.stats import sampler as sampler_module
from dockerlink.stats.sampler import Sampler
from dockerlink.stats.store import HistoryStore
from tests.conftest import wait_for

from .clock import Clock
from .test_stats_sampler import FakeContainer, FakeDockerClient, make_sampler

LATE_S = 0.2


@pytest.fixture(autouse=True)
def _late_after_200_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler_module, "LATE_TICK_S", LATE_S)


async def run_until(sampler: Sampler, ticks: int, during: float = 0.0) -> None:
    """Run the loop until ``ticks`` ticks, blocking the event loop ``during`` seconds once."""
    task = asyncio.create_task(sampler.run())
    try:
        if during:
            await wait_for(lambda: sampler.ticks >= 1, timeout=5, interval=0.001)
            time.sleep(during)  # a handler that blocks the loop
        await wait_for(lambda: sampler.ticks >= ticks, timeout=10, interval=0.001)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_punctual_ticks_are_not_late(store: HistoryStore, clock: Clock) -> None:
    sampler = make_sampler(FakeDockerClient(FakeContainer(1)), store, clock, interval_s=0.02)
    await run_until(sampler, 10)
    assert sampler.late_ticks == 0
    assert 0 <= sampler.max_lateness_s < LATE_S


async def test_a_blocked_event_loop_makes_a_late_tick(store: HistoryStore, clock: Clock) -> None:
    sampler = make_sampler(FakeDockerClient(FakeContainer(1)), store, clock, interval_s=0.02)
    await run_until(sampler, 3, during=0.4)
    assert sampler.late_ticks == 1
    assert sampler.max_lateness_s >= 0.35


async def test_a_tick_longer_than_the_interval_makes_the_next_one_late(
    store: HistoryStore, clock: Clock
) -> None:
    engine = FakeDockerClient(FakeContainer(1))
    engine.stats_delay_s = 0.3  # every tick waits this long for the engine
    sampler = make_sampler(engine, store, clock, interval_s=0.02)
    await run_until(sampler, 3)
    assert sampler.late_ticks >= 2
    assert sampler.max_lateness_s >= 0.25
