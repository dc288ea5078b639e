"""The installed ``dockerlink`` command, run as a subprocess and driven over HTTP like a panel."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from docker_api import DockerClient, NotFound

from ..conftest import TEST_IMAGE, TEST_TOKEN, free_port, free_port_root, wait_for
from ..dockerlink_process import DockerlinkProcess, dockerlink_command


@pytest.fixture
def dockerlink_process(engine_sock: str, tmp_path: Path) -> Iterator[DockerlinkProcess]:
    daemon = DockerlinkProcess(
        tmp_path,
        {
            "docker_sock": f"unix://{engine_sock}",
            "api_token": TEST_TOKEN,
            "base_image": TEST_IMAGE,
            "data_dir": str(tmp_path / "data"),
            "stop_timeout": "1",
        },
    )
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


async def test_a_panel_session_against_the_installed_command(
    dockerlink_process: DockerlinkProcess,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    base_url = dockerlink_process.url
    auth = {"Authorization": f"Bearer {TEST_TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url + "/v1", timeout=30) as panel:

        async def healthy() -> bool:
            try:
                response = await panel.get(base_url + "/health")
            except httpx.TransportError:
                assert dockerlink_process.running(), "dockerlink exited during start-up"
                return False
            return response.status_code == 200 and response.json()["status"] == "ok"

        await wait_for(healthy, timeout=20)

        assert (await panel.get("/container")).status_code == 401
        name = unique_name("e2e")
        created = await panel.put(
            "/container",
            headers=auth,
            json={
                "name": name,
                "host_port_root": await free_port_root(docker, 5000),
                "memory": 0.25,
                "cpulimit": 0.5,
                "commands": ["echo from-e2e > /tmp/e2e"],
            },
        )
        assert created.status_code == 200, created.text
        container_id = created.json()["Id"]
        cleanup.append(container_id)

        assert (
            await panel.post("/container/start", params={"id": container_id}, headers=auth)
        ).status_code == 204
        listed = (await panel.get("/container/", params={"id": container_id}, headers=auth)).json()
        assert listed["success"][container_id]["state"] == "running"
        assert listed["success"][container_id]["name"] == f"/{name}"
        output = await docker.execs.run(container_id, ["cat", "/tmp/e2e"], timeout=10)
        assert output.stdout == b"from-e2e\n"

        patched = await panel.patch(
            "/container", params={"id": container_id}, headers=auth, json={"memory": 0.5}
        )
        assert (patched.status_code, patched.json()) == (200, {"Warnings": []})
        assert (
            await panel.post("/container/stop", params={"id": container_id}, headers=auth)
        ).status_code == 204
        assert (
            await panel.delete("/container", params={"id": container_id}, headers=auth)
        ).status_code == 204
        with pytest.raises(NotFound):
            await docker.containers.inspect(container_id)

    assert dockerlink_process.stop() == 0  # SIGTERM: a clean exit


def test_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKERLINK_")}
    env.update({"DOCKERLINK_HOST": "0.0.0.0", "DOCKERLINK_PORT": str(free_port())})
    result = subprocess.run(
        dockerlink_command(), env=env, cwd=tmp_path, capture_output=True, timeout=30
    )
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "dockerlink: invalid setting api_token: refusing to listen on 0.0.0.0"
    )
