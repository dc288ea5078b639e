"""``kill -9`` of ``dockerlink serve`` at random moments of sampling never loses or breaks history.

The real ``dockerlink serve`` samples two running containers every 0.25 s; it is SIGKILLed at a
random moment (seeded) ``CYCLES`` times and started again each time. After every kill the files
under ``data_dir`` are copied and loaded by a fresh :class:`HistoryStore` (no exception; a torn
last line is tolerated, and counted), and it must hold every sample the route had served. After
every restart the route answers 200 with every timestamp it served before, strictly increasing,
with no gap longer than ``MAX_GAP_S`` other than across a downtime (and the sampler's wait for
the container mirror after a start), and new samples keep coming.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dockerlink.stats import HistoryStore
from dockerlink.stats.sampler import MIRROR_WAIT_S

from ..conftest import TEST_IMAGE, wait_for
from ..dockerlink_process import DockerlinkProcess
from ..summary import report

CYCLES = 20
INTERVAL_S = 0.25
#: Timestamps have one-second resolution, so a sample lands every second; allow a late tick.
MAX_GAP_S = 3
SEED = 20261127

Downtime = tuple[float, float]


async def served_history(client: httpx.AsyncClient, container_id: str) -> list[int]:
    response = await client.get("/v1/container/stats", params={"id": container_id})
    assert response.status_code == 200, response.text
    stamps = [int(key) for key in orjson.loads(response.content)]
    assert stamps == sorted(set(stamps)), f"not strictly increasing: {stamps}"
    return stamps


async def sampled_after(client: httpx.AsyncClient, container_id: str, newest: int) -> list[int]:
    """The served timestamps, once one is newer than ``newest``."""

    async def sampled() -> list[int] | None:
        stamps = await served_history(client, container_id)
        return stamps if stamps and stamps[-1] > newest else None

    stamps: list[int] = await wait_for(sampled, timeout=20, interval=0.1)
    return stamps


def check_gaps(stamps: list[int], downtimes: list[Downtime]) -> None:
    for before, after in itertools.pairwise(stamps):
        if after - before <= MAX_GAP_S:
            continue
        spanned = [(k, b) for k, b in downtimes if before <= b + 1 and after >= k - 1]
        assert spanned, f"a gap from {before} to {after} while dockerlink was up"
        # After a start the sampler waits up to MIRROR_WAIT_S for the container mirror's first
        # read (longer when the engine is busy: an inspect waits for a container being stopped).
        down_s = sum(b - k + MIRROR_WAIT_S for k, b in spanned)
        assert after - before <= down_s + MAX_GAP_S, (before, after, spanned)


def load_copy(stats_dir: Path, copy: Path, served: dict[str, list[int]]) -> int:
    """Load a copy of the files a kill left: every served sample must be there. Returns how
    many files ended in a torn line."""
    shutil.copytree(stats_dir, copy)
    torn = sum(
        1 for path in copy.glob("*/*.jsonl") if (data := path.read_bytes()) and data[-1:] != b"\n"
    )
    store = HistoryStore(copy)
    try:
        store.open()
        for container_id, stamps in served.items():
            on_disk = {sample.t for sample in store.query(container_id) or []}
            missing = sorted(set(stamps) - on_disk)
            assert not missing, f"{container_id[:12]}: served but not on disk: {missing}"
    finally:
        store.close()
        shutil.rmtree(copy)
    return torn


async def test_kill_9_at_random_moments_never_loses_or_breaks_history(
    engine_sock: str,
    api: httpx.AsyncClient,
    make_container: Callable[..., Any],
    tmp_path: Path,
    pytestconfig: pytest.Config,
) -> None:
    ids = [await make_container(), await make_container()]
    for container_id in ids:
        started = await api.post("/v1/container/start", params={"id": container_id})
        assert started.status_code == 204, started.text
    data_dir = tmp_path / "killed"
    server = DockerlinkProcess(
        tmp_path,
        {
            "docker_sock": engine_sock,
            "base_image": TEST_IMAGE,
            "data_dir": str(data_dir),
            "sample_interval": str(INTERVAL_S),
        },
    )
    rng = random.Random(SEED)
    served: dict[str, list[int]] = {container_id: [] for container_id in ids}
    downtimes: list[Downtime] = []
    kills = torn = 0
    killed_at = 0.0
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        try:
            for cycle in range(CYCLES + 1):
                server.start()
                await server.until_healthy()
                if cycle:
                    downtimes.append((killed_at, time.time()))
                for container_id in ids:
                    before = served[container_id]
                    stamps = await sampled_after(client, container_id, before[-1] if before else 0)
                    lost = sorted(set(before) - set(stamps))
                    assert not lost, f"cycle {cycle}: {container_id[:12]} lost {lost}"
                    check_gaps(stamps, downtimes)
                    served[container_id] = stamps
                if cycle == CYCLES:
                    break
                # The random moment: anywhere in the next three sampling intervals.
                await asyncio.sleep(rng.uniform(0, 3 * INTERVAL_S))
                for container_id in ids:  # what the route serves just before the kill
                    served[container_id] = await served_history(client, container_id)
                killed_at = time.time()
                server.kill()
                kills += 1
                torn += load_copy(data_dir / "stats", tmp_path / f"copy-{cycle}", served)
        finally:
            server.stop()
    assert kills == CYCLES
    counts = {container_id[:12]: len(stamps) for container_id, stamps in served.items()}
    report(
        pytestconfig,
        f"kill -9: {kills} kills at random moments survived; {torn} torn tails found; "
        f"samples kept per container: {counts}",
    )
