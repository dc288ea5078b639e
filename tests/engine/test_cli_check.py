"""``dockerlink check`` against the real engine: all is well, exit 0."""

from __future__ import annotations

from pathlib import Path

from docker_api import MAX_API_VERSION, DockerClient
from docker_api.client import parse_version

from ..unit.test_cli import run_cli


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
