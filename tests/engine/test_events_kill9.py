"""``kill -9`` of ``dockerlink serve`` while events are being recorded never breaks the event log.

A container is restarted over and over (straight through the engine, so events keep coming while
dockerlink is down too) and the real ``dockerlink serve`` is SIGKILLed at random moments (seeded).
After each kill a copy of ``data_dir/events`` loads in a fresh :class:`EventLog` and holds every
event the route served before the kill; after each restart the route serves them all again, and
no event twice (the catch-up from the engine's replay skips what was recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from docker_api import DockerClient
from dockerlink.events import EventLog

from ..conftest import TEST_IMAGE, create_container, wait_for
from ..dockerlink_process import DockerlinkProcess
from ..summary import report
from .test_events import events_of

CYCLES = 6
SEED = 20261201


async def restart_forever(docker: DockerClient, container_id: str) -> None:
    while True:
        await docker.containers.restart(container_id, t=0)
        await asyncio.sleep(0.1)


def load_copy(events_dir: Path, copy: Path, container_id: str, served: list[str]) -> int:
    """Load a copy of what the kill left; every served event is there. Returns torn tails."""
    shutil.copytree(events_dir, copy)
    torn = sum(1 for p in copy.glob("*/*.jsonl") if (d := p.read_bytes()) and d[-1:] != b"\n")
    stored = EventLog(copy)
    try:
        stored.open()
        on_disk = [str(event["event_id"]) for event in stored.events(container_id)]
    finally:
        stored.close()
        shutil.rmtree(copy)
    missing = [event_id for event_id in served if event_id not in on_disk]
    assert not missing, f"served but not on disk: {missing}"
    assert len(on_disk) == len(set(on_disk)), "an event is on disk twice"
    return torn


async def test_kill_9_while_events_are_recorded_keeps_the_log_readable(
    engine_sock: str,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    pytestconfig: pytest.Config,
) -> None:
    data_dir = tmp_path / "data"
    server = DockerlinkProcess(
        tmp_path, {"docker_sock": engine_sock, "base_image": TEST_IMAGE, "data_dir": str(data_dir)}
    )
    rng = random.Random(SEED)
    served: list[str] = []
    torn = 0
    churn: asyncio.Task[None] | None = None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
            for cycle in range(CYCLES + 1):
                server.start()
                await server.until_healthy()
                if churn is None:
                    container_id = await create_container(api, docker, cleanup, unique_name("k9"))
                    await docker.containers.start(container_id)
                    churn = asyncio.create_task(restart_forever(docker, container_id))

                async def grown(
                    before: int = len(served), ref: str = container_id
                ) -> list[str] | None:
                    ids = [str(e["event_id"]) for e in await events_of(api, ref, limit="1000")]
                    return ids if len(ids) > before else None

                now_served: list[str] = await wait_for(grown, timeout=30)
                lost = [event_id for event_id in served if event_id not in now_served]
                assert not lost, f"cycle {cycle}: lost {lost}"
                assert len(now_served) == len(set(now_served)), f"cycle {cycle}: recorded twice"
                if cycle == CYCLES:
                    break
                await asyncio.sleep(rng.uniform(0, 1.5))  # the random moment
                served = [
                    str(e["event_id"]) for e in await events_of(api, container_id, limit="1000")
                ]
                server.kill()
                torn += load_copy(
                    data_dir / "events", tmp_path / f"copy-{cycle}", container_id, served
                )
    finally:
        if churn is not None:
            churn.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await churn
        server.stop()
    report(
        pytestconfig,
        f"events kill -9: {CYCLES} kills survived, {torn} torn tails, {len(served)} events kept",
    )
