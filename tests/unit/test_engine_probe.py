"""EngineProbe: concurrent health checks share one engine call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import docker_api
from dockerlink.engine import HEALTH_TIMEOUT_S, EngineProbe


class SlowEngine:
    def __init__(self) -> None:
        self.timeout = 30.0
        self.calls: list[float | None] = []
        self.answer: asyncio.Future[dict[str, Any]] | None = None

    async def version(self, *, timeout: float | None = None) -> dict[str, Any]:
        self.calls.append(timeout)
        self.answer = asyncio.get_running_loop().create_future()
        return await self.answer


def probe_of(engine: SlowEngine) -> EngineProbe:
    docker: Any = engine
    return EngineProbe(docker)


async def until_called(engine: SlowEngine, count: int) -> None:
    while len(engine.calls) < count:
        await asyncio.sleep(0)


async def test_callers_meanwhile_share_one_call_then_a_new_one_is_made() -> None:
    engine = SlowEngine()
    probe = probe_of(engine)
    waiting = [asyncio.ensure_future(probe.version()) for _ in range(50)]
    await until_called(engine, 1)
    assert engine.answer is not None
    engine.answer.set_result({"Version": "20.10.24"})
    assert [await w for w in waiting] == [{"Version": "20.10.24"}] * 50
    assert engine.calls == [HEALTH_TIMEOUT_S]
    later = asyncio.ensure_future(probe.version())
    await until_called(engine, 2)
    engine.answer.set_result({"Version": "24.0.0"})
    assert await later == {"Version": "24.0.0"}


async def test_a_failure_reaches_every_caller_and_a_gone_caller_cancels_nothing() -> None:
    engine = SlowEngine()
    probe = probe_of(engine)
    leaving = asyncio.ensure_future(probe.version())
    staying = asyncio.ensure_future(probe.version())
    await until_called(engine, 1)
    leaving.cancel()
    await asyncio.sleep(0)
    assert engine.answer is not None and not engine.answer.cancelled()
    engine.answer.set_exception(docker_api.EngineTimeout("no answer from the engine within 5 s"))
    with pytest.raises(docker_api.EngineTimeout):
        await staying
    assert len(engine.calls) == 1
