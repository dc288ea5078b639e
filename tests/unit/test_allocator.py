"""The service's malloc arenas: two, whatever the number of threads that allocate."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dockerlink.allocator import limit_arenas


def _has_glibc_malloc_stats() -> bool:
    try:
        ctypes.CDLL(None).malloc_stats  # noqa: B018 - only whether the symbol is there
    except AttributeError:
        return False
    return True


# Eight threads allocate blocks past pymalloc's (which are malloc's) at the same time, then
# glibc prints one "Arena N:" section per arena to stderr.
_PROGRAM = textwrap.dedent(
    """
    import ctypes, sys, threading
    from dockerlink.allocator import limit_arenas
    if sys.argv[1] == "limit":
        assert limit_arenas()
    barrier = threading.Barrier(8)
    def allocate():
        barrier.wait()
        kept = [bytearray(2048) for _ in range(2000)]
        barrier.wait()
    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stderr.flush()
    ctypes.CDLL(None).malloc_stats()
    """
)


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(not _has_glibc_malloc_stats(), reason="glibc's allocator only")
def test_threads_share_two_arenas_once_limited() -> None:
    assert _arenas("default") > 2  # what the limit is for: a thread allocating gets its own
    assert 1 <= _arenas("limit") <= 2


def test_an_operators_setting_is_left_alone() -> None:
    assert limit_arenas(environ={"MALLOC_ARENA_MAX": "4"}) is False


def test_serve_limits_the_arenas_before_the_app_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import dockerlink.allocator
    import dockerlink.app
    from dockerlink import cli
    from dockerlink.settings import load_settings

    calls: list[str] = []

    class Made(Exception):
        pass

    def create_app(*args: object, **kwargs: object) -> None:
        calls.append("create_app")
        raise Made

    monkeypatch.setattr(dockerlink.allocator, "limit_arenas", lambda: calls.append("limit"))
    monkeypatch.setattr(dockerlink.app, "create_app", create_app)
    monkeypatch.setenv("DOCKERLINK_DATA_DIR", str(tmp_path))
    before = sys.getswitchinterval()  # (serve sets it for the process)
    try:
        with pytest.raises(Made):
            cli.serve(load_settings())
    finally:
        sys.setswitchinterval(before)
    assert calls == ["limit", "create_app"]
