"""Background tasks under supervision: a failure is logged, counted and the task starts again."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dockerlink.prometheus import ServiceMetrics
from dockerlink.tasks import supervise

from ..conftest import wait_for


async def test_a_failing_task_is_logged_counted_and_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ServiceMetrics()
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise RuntimeError(f"bug number {len(runs)}")

    with caplog.at_level(logging.ERROR, logger="dockerlink"):
        await asyncio.wait_for(
            supervise("flaky", flaky, on_failure=metrics.task_failures.inc, backoff_s=0.01),
            timeout=10,
        )
    assert runs == [0, 1, 2]  # started again twice, then it returned: not started again
    assert metrics.task_failures.values == {("flaky",): 2}
    assert "background task flaky failed" in caplog.text
    assert "bug number 2" in caplog.text  # with its traceback


async def test_cancelling_a_supervised_task_stops_it() -> None:
    metrics = ServiceMetrics()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(supervise("forever", forever, on_failure=metrics.task_failures.inc))
    await wait_for(started.is_set, timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert metrics.task_failures.values == {}
