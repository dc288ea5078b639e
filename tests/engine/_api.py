"""Helpers for engine tests that serve their own app (with a token), beyond ``make_container``."""

from __future__ import annotations

from typing import Any

import httpx

from docker_api import DockerClient

from ..conftest import create_container


async def create_and_start(
    client: httpx.AsyncClient, docker: DockerClient, cleanup: list[str], name: str, **fields: Any
) -> str:
    """``PUT /v1/container`` then ``POST /v1/container/start``; the container is removed after."""
    container_id = await create_container(client, docker, cleanup, name, **fields)
    started = await client.post("/v1/container/start", params={"id": container_id})
    assert started.status_code == 204, started.text
    return container_id
