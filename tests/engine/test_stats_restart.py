"""The stats history outlives dockerlink: a clean restart, and a ``kill -9`` while it samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson

from dockerlink.settings import Settings

from ..conftest import TEST_IMAGE, serve, wait_for
from ..dockerlink_process import DockerlinkProcess
from .test_stats import history, samples_after


async def test_history_survives_a_restart(
    engine_settings: Settings, make_container: Callable[..., Any], tmp_path: Path
) -> None:
    container_id = await make_container()
    settings = replace(engine_settings, data_dir=tmp_path / "restarted")
    async with serve(settings) as first:
        before = await samples_after(first, container_id, 0, 3)
    async with serve(settings) as second:
        served = await history(second, container_id)
        assert served[: len(before)] == before
        await samples_after(second, container_id, before[-1][0], 2)  # and sampling goes on


async def test_history_survives_kill_9_while_sampling(
    engine_sock: str, make_container: Callable[..., Any], tmp_path: Path
) -> None:
    container_id = await make_container()
    data_dir = tmp_path / "killed"
    history_dir = data_dir / "stats" / container_id

    daemon = DockerlinkProcess(
        tmp_path,
        {
            "docker_sock": engine_sock,
            "data_dir": str(data_dir),
            "sample_interval": "1",
            "base_image": TEST_IMAGE,
        },
    )
    daemon.start()
    try:
        await daemon.until_healthy()
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            before = await samples_after(client, container_id, 0, 3)

            # Kill right after a sample of ours lands: the tick is still sampling the others
            # (every container on the engine), and the next tick follows within a second. A
            # sample lands as a line of its own, or (a sample that repeats the one before, as an
            # idle container's do) as a tick's time in the tick log, its file's run still open.
            def landed() -> int:
                files = [*history_dir.iterdir(), *history_dir.parent.glob("ticks-*.jsonl")]
                return sum(f.stat().st_size for f in files)

            size = landed()
            await wait_for(lambda: landed() > size, timeout=10, interval=0.01)
            daemon.kill()

        # A write torn by a crash: the newest raw file ends in the middle of a line.
        raw = max(history_dir.glob("raw-*.jsonl"))
        with raw.open("ab") as f:
            f.write(b"[1,-2")

        daemon.start()
        await daemon.until_healthy()
        async with httpx.AsyncClient(base_url=daemon.url, timeout=30) as client:
            served = await history(client, container_id)
            assert served[: len(before)] == before
            await samples_after(client, container_id, served[-1][0], 2)
    finally:
        daemon.stop()

    # The torn tail was cut before appending: every line of every file is whole JSON.
    for path in history_dir.iterdir():
        data = path.read_bytes()
        assert data.endswith(b"\n"), path
        for line in data.splitlines():
            assert isinstance(orjson.loads(line), dict | list), (path, line)
