"""The single-file binary (scripts/build-binary -> dist/dockerlink), smoke-tested.

The build is skipped when dist/dockerlink is already built from the current sources (its
stamp). The binary then serves ``GET /health`` against the test engine twice: on this machine
with a bare environment (no virtualenv, no PYTHON* variables), and inside a container of the
test image, which has no Python at all (busybox, git and the rest of glibc only).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from docker_api import DockerClient
from dockerlink import __version__

from ..conftest import REPO, TEST_IMAGE, TEST_TOKEN, free_port, wait_for

BINARY = REPO / "dist" / "dockerlink"
BARE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
#: glibc's own libraries that the test image (made for git) lacks; every Linux host has them.
GLIBC_EXTRAS = ("libdl.so.2", "libpthread.so.0", "libm.so.6", "librt.so.1", "libutil.so.1")
LIB_DIR = Path("/lib/x86_64-linux-gnu")


@pytest.fixture(scope="module")
def binary() -> Path:
    built = subprocess.run(
        [str(REPO / "scripts" / "build-binary")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    assert os.access(BINARY, os.X_OK)
    return BINARY


def bare_env(home: Path, **settings: str) -> dict[str, str]:
    return {"PATH": BARE_PATH, "HOME": str(home), "LANG": "C.UTF-8", **settings}


async def healthy(base_url: str) -> dict[str, object] | None:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(base_url + "/health")
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def test_version_and_check_exit_codes(binary: Path, tmp_path: Path) -> None:
    version = subprocess.run(
        [str(binary), "version"],
        env=bare_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert version.returncode == 0
    assert version.stdout.startswith(f"dockerlink {__version__} (Docker Engine API ")
    check = subprocess.run(
        [str(binary), "check"],
        env=bare_env(tmp_path, DOCKERLINK_DOCKER_SOCK=str(tmp_path / "none.sock")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 1
    assert "engine: PROBLEM: docker engine unavailable: cannot connect to" in check.stdout


@pytest.fixture
def served(binary: Path, engine_sock: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log_path = tmp_path / "dockerlink.log"
    env = bare_env(
        tmp_path,
        DOCKERLINK_DOCKER_SOCK=engine_sock,
        DOCKERLINK_PORT=str(port),
        DOCKERLINK_DATA_DIR=str(tmp_path / "data"),
        DOCKERLINK_API_TOKEN=TEST_TOKEN,
        DOCKERLINK_LOG_FORMAT="json",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "serve"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield f"http://127.0.0.1:{port}", log_path
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0  # a clean stop on SIGTERM, as systemd sends
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


async def test_the_binary_serves_health_against_the_engine(
    served: tuple[str, Path], docker: DockerClient
) -> None:
    base_url, log_path = served
    health = await wait_for(lambda: healthy(base_url), timeout=30)
    assert health == {"status": "ok", "engine": (await docker.version())["Version"]}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        assert (await client.get("/v1/container")).status_code == 401
        auth = {"Authorization": f"Bearer {TEST_TOKEN}"}
        listed = await client.get("/v1/container", headers=auth)
        assert listed.status_code == 200
        assert set(listed.json()) == {"error", "success"}
        dashboard = await client.get("/")  # package data (the page) is in the binary
        assert dashboard.status_code == 200
        assert "<title>dockerlink</title>" in dashboard.text
        page = await client.get("/terminal", params={"id": "web1"})  # and the terminal's
        assert page.status_code == 200
        assert 'data-socket="v1/container/terminal?id=web1"' in page.text
        for asset in ("terminal.js", "vendor/xterm.js", "vendor/addon-fit.js", "vendor/xterm.css"):
            served_file = await client.get(f"/static/{asset}")
            assert served_file.status_code == 200, asset
            assert served_file.content == (REPO / "dockerlink" / "static" / asset).read_bytes()
    log = log_path.read_text()
    assert '"logger":"dockerlink.request"' in log
    assert '"path":"/health","status":200' in log
    assert TEST_TOKEN not in log


async def test_the_binary_runs_where_there_is_no_python(
    binary: Path,
    engine_sock: str,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    port = free_port()
    binds = [
        f"{binary}:/usr/local/bin/dockerlink:ro",
        f"{engine_sock}:/run/docker.sock",
        *(f"{LIB_DIR / lib}:/usr/lib/x86_64-linux-gnu/{lib}:ro" for lib in GLIBC_EXTRAS),
    ]
    name = unique_name("binary")
    cleanup.append(name)
    await docker.containers.create(
        {
            "Image": TEST_IMAGE,
            "Cmd": [
                "sh",
                "-c",
                # prove there is no interpreter, then serve
                "! command -v python3 && ! command -v python && exec dockerlink serve",
            ],
            "Env": [
                "DOCKERLINK_DOCKER_SOCK=/run/docker.sock",
                f"DOCKERLINK_PORT={port}",
                "DOCKERLINK_DATA_DIR=/tmp/dockerlink",
            ],
            "HostConfig": {"Binds": binds, "NetworkMode": "host"},
        },
        name=name,
    )
    await docker.containers.start(name)

    async def up() -> dict[str, object] | None:
        state = (await docker.containers.inspect(name))["State"]
        assert state["Running"], f"the binary exited in the container: {state}"
        return await healthy(f"http://127.0.0.1:{port}")

    health = await wait_for(up, timeout=30)
    assert health == {"status": "ok", "engine": (await docker.version())["Version"]}
