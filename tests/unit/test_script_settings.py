"""scripts/lib/common.sh's dl_setting reads a setting as dockerlink does (scripts/run picks the
engine with it): the environment over .env, either spelling, the prefixed one first."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dockerlink.settings import load_settings

from ..conftest import REPO

COMMON = REPO / "scripts" / "lib" / "common.sh"


def dl_setting(repo: Path, environ: dict[str, str], name: str, default: str = "") -> str:
    script = f'. "{COMMON}"; DL_REPO="{repo}"; dl_setting {name} "{default}"'
    result = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": os.environ["PATH"], **environ},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.rstrip("\n")


@pytest.mark.parametrize(
    ("env_file", "environ", "expected"),
    [
        ("", {}, "/var/run/docker.sock"),
        ("docker_sock=/bare.sock\n", {}, "/bare.sock"),
        ('DOCKERLINK_DOCKER_SOCK="/prefixed.sock"\ndocker_sock=/bare.sock\n', {}, "/prefixed.sock"),
        ("DOCKERLINK_DOCKER_SOCK=/file.sock\n", {"docker_sock": "/env.sock"}, "/env.sock"),
        (
            "docker_sock=/file.sock\n",
            {"docker_sock": "/bare.sock", "DOCKERLINK_DOCKER_SOCK": "/prefixed.sock"},
            "/prefixed.sock",
        ),
    ],
)
def test_dl_setting_reads_as_dockerlink_does(
    tmp_path: Path, env_file: str, environ: dict[str, str], expected: str
) -> None:
    (tmp_path / ".env").write_text(env_file)
    assert dl_setting(tmp_path, environ, "docker_sock", "/var/run/docker.sock") == expected
    if env_file or environ:
        settings = load_settings(environ, env_file=tmp_path / ".env")
        assert settings.docker_sock == expected
