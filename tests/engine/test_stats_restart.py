"""The stats history outlives dockerlink: a clean restart, and a ``kill -9`` while it samples."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson

from dockerlink.settings import Settings

from ..conftest import TEST_IMAGE, free_port, serve, wait_for
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


@contextmanager
def dockerlink_serve(
    engine_sock: str, data_dir: Path, workdir: Path
) -> Iterator[tuple[httpx.AsyncClient, subprocess.Popen[bytes]]]:
    """The real ``dockerlink serve``, sampling every second into ``data_dir``."""
    port = free_port()
    env = {
        **os.environ,
        "DOCKERLINK_DOCKER_SOCK": engine_sock,
        "DOCKERLINK_PORT": str(port),
        "DOCKERLINK_DATA_DIR": str(data_dir),
        "DOCKERLINK_SAMPLE_INTERVAL": "1",
        "DOCKERLINK_BASE_IMAGE": TEST_IMAGE,
    }
    command = [str(Path(sys.executable).with_name("dockerlink")), "serve"]
    with (workdir / "dockerlink.log").open("ab") as log:
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def until_healthy(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    async def healthy() -> bool:
        assert process.poll() is None, "dockerlink exited during start-up"
        try:
            return (await client.get("/health")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_for(healthy, timeout=30, interval=0.2)


async def test_history_survives_kill_9_while_sampling(
    engine_sock: str, make_container: Callable[..., Any], tmp_path: Path
) -> None:
    container_id = await make_container()
    data_dir = tmp_path / "killed"
    history_dir = data_dir / "stats" / container_id

    with dockerlink_serve(engine_sock, data_dir, tmp_path) as (client, process):
        async with client:
            await until_healthy(client, process)
            before = await samples_after(client, container_id, 0, 3)
            # Kill right after a sample of ours lands: the tick is still sampling the others
            # (every container on the engine), and the next tick follows within a second.
            size = sum(f.stat().st_size for f in history_dir.iterdir())
            await wait_for(
                lambda: sum(f.stat().st_size for f in history_dir.iterdir()) > size,
                timeout=10,
                interval=0.01,
            )
            process.send_signal(signal.SIGKILL)
            process.wait()

    # A write torn by a crash: the newest raw file ends in the middle of a line.
    raw = max(history_dir.glob("raw-*.jsonl"))
    with raw.open("ab") as f:
        f.write(b"[1,-2")

    with dockerlink_serve(engine_sock, data_dir, tmp_path) as (client, process):
        async with client:
            await until_healthy(client, process)
            served = await history(client, container_id)
            assert served[: len(before)] == before
            await samples_after(client, container_id, served[-1][0], 2)

    # The torn tail was cut before appending: every line of every file is whole JSON.
    for path in history_dir.iterdir():
        data = path.read_bytes()
        assert data.endswith(b"\n"), path
        for line in data.splitlines():
            assert isinstance(orjson.loads(line), dict | list), (path, line)
