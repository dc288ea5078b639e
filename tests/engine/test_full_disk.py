"""A full disk under ``data_dir``: the sampler logs once and goes on, the API keeps answering, and
when space returns the history is written again.

``data_dir`` is a 256 KiB tmpfs mounted by the test (root needed: CI fails without it, a laptop
skips). A filler file takes every free block. Files that already have room in their last block
keep taking lines (as on any real filesystem), so a container created after the disk filled up
is the one whose history cannot be written. Then the filler is deleted and its samples must
land on disk and be served.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dockerlink.settings import Settings
from dockerlink.stats import HistoryStore

from ..conftest import engine_required, serve_app, wait_for

DISK_SIZE = "256k"
CANNOT_WRITE = "stats history: cannot write under"
WRITING_AGAIN = "stats history: writing under"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, unmounted at the end."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs (root needed): {mounted.stderr.strip()}"
        if engine_required() or os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True, timeout=30)


def fill(path: Path) -> int:
    """Write ``path`` until the disk is full; returns the bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (64 * 1024, 4096, 1):
            while True:
                try:
                    written += os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return written


def whole_lines(directory: Path) -> dict[str, int]:
    """Every history file's line count; fails on a line that is not JSON, except a torn last
    line (no newline after it), which readers skip."""
    counts = {}
    for path in sorted(directory.glob("*/*.jsonl")):
        data = path.read_bytes()
        lines = data.split(b"\n")
        complete = lines[:-1]  # the last item is b"" or a torn tail
        for line in complete:
            assert isinstance(orjson.loads(line), dict | list), (path, line)
        counts[f"{path.parent.name[:12]}/{path.name}"] = len(complete)
    return counts


def load_copy(stats_dir: Path, copy: Path) -> dict[str, set[int]]:
    """Load a copy of the store's files in a fresh store; the timestamps of each container."""
    shutil.copytree(stats_dir, copy)
    store = HistoryStore(copy)
    try:
        store.open()
        return {cid: {s.t for s in store.query(cid) or []} for cid in store.container_ids()}
    finally:
        store.close()
        shutil.rmtree(copy)


async def stamps(api: httpx.AsyncClient, container_id: str) -> list[int]:
    response = await api.get("/v1/container/stats", params={"id": container_id})
    assert response.status_code == 200, response.text
    return [int(t) for t in orjson.loads(response.content)]


async def test_a_full_disk_is_logged_once_and_sampling_recovers(
    engine_settings: Settings,
    make_container: Callable[..., Any],
    small_disk: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dockerlink")
    settings = replace(engine_settings, data_dir=small_disk, sample_interval=0.5)
    stats_dir = small_disk / "stats"
    before = await make_container()
    async with serve_app(settings) as (app, api):
        assert (await api.post("/v1/container/start", params={"id": before})).status_code == 204
        await wait_for(lambda: len(load_copy(stats_dir, tmp_path / "c0").get(before, ())) >= 2)

        # -- the disk fills up ------------------------------------------------------------------
        filler = small_disk / "filler"
        fill(filler)
        full_at = time.time()
        after = await make_container()
        assert (await api.post("/v1/container/start", params={"id": after})).status_code == 204
        await wait_for(lambda: CANNOT_WRITE in caplog.text, timeout=15)
        ticks = app.ctx.sampler.ticks
        await wait_for(lambda: app.ctx.sampler.ticks >= ticks + 6, timeout=15)

        # The API keeps answering, from memory where the disk could not take the samples.
        served_after = await stamps(api, after)
        assert any(t >= int(full_at) for t in served_after)
        assert len(await stamps(api, before)) >= 2
        for method, path, params, body in [
            ("GET", "/v1/container", {}, None),
            ("GET", "/v1/container", {"id": after}, None),
            ("GET", "/health", {}, None),
            ("GET", "/v1/env", {}, None),
            ("PATCH", "/v1/container", {"id": after}, {"memory": 0.5}),
        ]:
            response = await api.request(method, path, params=params, json=body)
            assert response.status_code == 200, (method, path, response.text)
        assert not app.ctx.tasks["sampler"].done()
        # One line for the outage, however many writes failed (or succeeded in between).
        assert caplog.text.count(CANNOT_WRITE) == 1, caplog.text
        assert WRITING_AGAIN not in caplog.text
        # What is on disk still reads: whole lines (a torn tail at most) and a loadable store.
        whole_lines(stats_dir)
        on_disk = load_copy(stats_dir, tmp_path / "c1")
        assert len(on_disk[before]) >= 2
        assert not on_disk.get(after)

        # -- space returns ----------------------------------------------------------------------
        filler.unlink()
        freed_at = time.time()

        def written_again() -> bool:
            return any(t > freed_at for t in load_copy(stats_dir, tmp_path / "c2").get(after, ()))

        await wait_for(written_again, timeout=15)
        served = await stamps(api, after)
        assert [t for t in served if t > freed_at], served
        assert caplog.text.count(WRITING_AGAIN) == 1, caplog.text
        assert caplog.text.count(CANNOT_WRITE) == 1, caplog.text
        whole_lines(stats_dir)
