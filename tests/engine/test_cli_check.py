"""``dockerlink check`` against the real engine: all is well, and where the stats come from."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from docker_api import MAX_API_VERSION, DockerClient
from docker_api.client import parse_version
from dockerlink.cli import check
from dockerlink.settings import Settings

from ..unit.test_cli import run_cli
from .test_stats_sources import run_container


async def test_check_passes_against_the_engine(
    engine_sock: str, docker: DockerClient, tmp_path: Path
) -> None:
    data_dir = tmp_path / "state"
    data_dir.mkdir()
    result = run_cli(
        "check",
        cwd=tmp_path,
        env={"DOCKERLINK_DOCKER_SOCK": f"unix://{engine_sock}", "data_dir": str(data_dir)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    version = await docker.version()
    negotiated = min(version["ApiVersion"], MAX_API_VERSION, key=parse_version)
    lines = result.stdout.splitlines()
    assert lines[0] == "settings: ok"
    assert f"  docker_sock = {engine_sock}" in lines
    assert f"data_dir: ok: {data_dir} exists and is writable" in lines
    assert (
        f"engine: ok: Docker {version['Version']} at {engine_sock}, API {negotiated} negotiated "
        f"(engine API {version['ApiVersion']})"
    ) in lines
    assert lines[-1] == "all is well"
    assert list(data_dir.iterdir()) == []  # the write test left nothing behind


@pytest.fixture
async def running_container(
    docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> dict[str, Any]:
    return await run_container(docker, cleanup, unique_name("chk"), "sleep 3600")


async def test_check_says_the_stats_come_from_the_cgroup_files(
    engine_sock: str,
    tmp_path: Path,
    running_container: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(docker_sock=engine_sock, data_dir=tmp_path)
    assert await check(settings) == 0
    lines = capsys.readouterr().out.splitlines()
    stats = [line for line in lines if line.startswith("stats")]
    assert len(stats) == 1, lines
    assert re.fullmatch(r"stats source: cgroup v[12] files \(\d+ running containers?\)", stats[0])
    assert lines[-1] == "all is well"


async def test_check_names_a_container_whose_proc_entry_is_hidden(
    engine_sock: str,
    tmp_path: Path,
    running_container: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As under ProtectProc=invisible: no container's /proc/<pid> is there."""
    hidden = tmp_path / "proc"
    hidden.mkdir()
    settings = Settings(docker_sock=engine_sock, data_dir=tmp_path)
    assert await check(settings, proc_root=hidden) == 0  # the engine's stats API still works
    lines = capsys.readouterr().out.splitlines()
    stats = [line for line in lines if line.startswith("stats")]
    why = re.escape(
        "No such file or directory (a /proc that hides other users' processes does this: "
        "systemd's ProtectProc=, the hidepid= mount option)"
    )
    pattern = (
        rf"stats source: api \(cgroup files unreadable for {hidden}/(\d+): {why}(; and \d+ more)?\)"
    )
    assert len(stats) == 1, lines
    assert re.fullmatch(pattern, stats[0]), stats[0]
    assert lines[-1] == "all is well"

    # stats_source=cgroup never asks the engine: those containers would not be sampled at all.
    only_files = replace(settings, stats_source="cgroup")
    assert await check(only_files, proc_root=hidden) == 1
    captured = capsys.readouterr()
    stats = [line for line in captured.out.splitlines() if line.startswith("stats")]
    assert stats[0].startswith("stats source: none, stats_source=cgroup never asks the engine (")
    assert re.fullmatch(r"stats: PROBLEM: \d+ running container\(s\) will not be sampled", stats[1])
    assert captured.err == "dockerlink check: 1 problem(s) found\n"
