"""Actions against a fake engine, in orders a real one cannot be made to produce: a client that
goes away in the middle, an inspect that fails after the change, a slow inspect that spans
another action."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockerlink.domain_errors import NotRunning
from dockerlink.hosting import Hosting
from dockerlink.mirror import ContainerMirror
from dockerlink.requests import parse_create
from dockerlink.settings import Settings

from .fakes import fake_engine_client

CID = "c" * 64


def inspect_of(running: bool) -> dict[str, object]:
    return {
        "Id": CID,
        "Name": "/web1",
        "State": {"Running": running},
        "Config": {"Labels": {"dockerlink": "v1.0.0", "ports": "20000"}},
        "HostConfig": {},
    }


def hook(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


CREATE = {"name": "web1", "host_port_root": 20000, "memory": 1, "cpulimit": 1}


async def test_a_create_whose_client_goes_away_during_its_hook_is_still_undone(
    tmp_path: Path,
) -> None:
    """Sanic cancels the handler when the client goes away: the failing create hook still
    runs to its end, and the container is removed and hook_on_delete run, as if it stayed."""
    writes: list[str] = []

    def engine(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method != "GET":
            writes.append(f"{request.method} {path.rsplit('/', 1)[-1]}")
        if path.endswith("/containers/json"):
            return httpx.Response(200, json=[])
        if path.endswith("/containers/create"):
            return httpx.Response(201, json={"Id": CID, "Warnings": None})
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json=inspect_of(False))

    deleted = tmp_path / "delete-hook-ran"
    settings = Settings(
        docker_sock="/fake.sock",
        data_dir=tmp_path / "data",
        base_image="img:1",
        hook_on_create=hook(tmp_path, "create.sh", "sleep 0.5; exit 1"),
        hook_on_delete=hook(tmp_path, "delete.sh", f"touch {deleted}"),
    )
    docker = fake_engine_client(engine)
    hosting = Hosting(docker, settings, ContainerMirror(docker))
    request = parse_create(CREATE, port_area_size=settings.port_area_size)
    handler = asyncio.ensure_future(hosting.create(request))
    await asyncio.sleep(0.2)  # the container is made, the hook runs
    handler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handler
    # what the service does at shutdown: wait for it, with the engine client still open
    assert await hosting.wait_unfinished(5) == 0
    assert writes == ["POST create", f"DELETE {CID}"]
    assert deleted.exists()


async def test_a_failed_inspect_after_the_change_does_not_fail_the_action(tmp_path: Path) -> None:
    """The engine made the container; its inspect right after times out: the create hook runs
    and the create answers (the engine's events bring the view up to date)."""

    def engine(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/containers/json"):
            return httpx.Response(200, json=[])
        if path.endswith("/containers/create"):
            return httpx.Response(201, json={"Id": CID, "Warnings": None})
        return httpx.Response(500, json={"message": "context deadline exceeded"})

    ran = tmp_path / "create-hook-ran"
    settings = Settings(
        docker_sock="/fake.sock",
        data_dir=tmp_path / "data",
        base_image="img:1",
        hook_on_create=hook(tmp_path, "create.sh", f"touch {ran}"),
    )
    docker = fake_engine_client(engine)
    hosting = Hosting(docker, settings, ContainerMirror(docker))
    created = await hosting.create(parse_create(CREATE, port_area_size=settings.port_area_size))
    assert created["Id"] == CID
    assert ran.exists()


async def test_an_inspect_older_than_an_action_that_ended_is_read_again(tmp_path: Path) -> None:
    """A restart whose inspect (slow: a busy engine) began before a stop ended must not trust
    it: the container is stopped by then, and the answer is 406, not an engine restart that
    would start it."""
    state = {"running": True, "slow": True}
    writes: list[str] = []

    async def engine(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method != "GET":
            writes.append(path.rsplit("/", 1)[-1])
        if path.endswith(f"/containers/{CID}/json") or path.endswith("/containers/web1/json"):
            answer = inspect_of(state["running"])
            if state["slow"]:
                state["slow"] = False
                await asyncio.sleep(0.3)
            return httpx.Response(200, json=answer)
        if path.endswith("/stop"):
            state["running"] = False
            return httpx.Response(204)
        if path.endswith("/restart"):
            state["running"] = True
            return httpx.Response(204)
        return httpx.Response(200, json=[])

    slow_engine: Any = engine  # (the fake transport awaits an async answer)
    docker = fake_engine_client(slow_engine)
    settings = Settings(docker_sock="/fake.sock", data_dir=tmp_path / "data")
    hosting = Hosting(docker, settings, ContainerMirror(docker))
    restart = asyncio.ensure_future(hosting.restart("web1", grace_s=0))
    await asyncio.sleep(0.05)
    await hosting.stop("web1", grace_s=0)  # ends while the restart's inspect is on its way
    with pytest.raises(NotRunning):
        await restart
    assert writes == ["stop"]
    assert not state["running"]
