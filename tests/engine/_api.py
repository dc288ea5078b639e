"""Helpers for engine tests that serve their own app (with a token), beyond ``make_container``."""

from __future__ import annotations

from typing import Any

import httpx

from docker_api import DockerClient

from ..conftest import free_port_root


async def create_and_start(
    client: httpx.AsyncClient, docker: DockerClient, cleanup: list[str], name: str, **fields: Any
) -> str:
    """``PUT /v1/container`` then ``POST /v1/container/start``; the container is removed after."""
    for _attempt in range(5):
        body = {
            "name": name,
            "host_port_root": await free_port_root(docker, 5000),
            "memory": 0.25,
            "cpulimit": 0.5,
            **fields,
        }
        response = await client.put("/v1/container", json=body)
        if response.status_code == 409 and "overlap" in response.text:
            continue  # another test took the block meanwhile
        assert response.status_code == 200, response.text
        container_id = str(response.json()["Id"])
        cleanup.append(container_id)
        started = await client.post("/v1/container/start", params={"id": container_id})
        assert started.status_code == 204, started.text
        return container_id
    raise AssertionError("could not find a free port block")
