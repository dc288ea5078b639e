"""Concurrent requests: one winner per name, consistent state after a storm, per-container order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import free_port_root, serve

MakeContainer = Callable[..., Any]


async def test_simultaneous_creates_with_one_name_give_one_success(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("race")
    cleanup.append(name)
    root = await free_port_root(docker, 20 * 500)
    # Blocks of 500 ports, one free block per request: only the name clashes.
    bodies = [
        {"name": name, "host_port_root": root + 500 * i, "memory": 0.25, "cpulimit": 0.25}
        for i in range(20)
    ]
    async with serve(replace(engine_settings, port_area_size=500)) as api:
        responses = await asyncio.gather(*(api.put("/v1/container", json=b) for b in bodies))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 19, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert response.text == f"the name {name} is already in use\n"
    matching = await docker.containers.list(all=True, filters={"name": [f"^/{name}$"]})
    assert len(matching) == 1


async def test_a_storm_of_actions_on_one_container_ends_consistent(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    container_id = await make_container()
    rng = random.Random(7)
    actions = []
    for _ in range(40):
        kind = rng.choice(["start", "stop", "restart", "patch"])
        if kind == "patch":
            body = {
                "memory": rng.choice([0.125, 0.25, 0.5]),
                "cpulimit": rng.choice([0.25, 0.5, 1]),
            }
            actions.append(api.patch("/v1/container", params={"id": container_id}, json=body))
        else:
            params = {"id": container_id} | ({} if kind == "start" else {"t": "0"})
            actions.append(api.post(f"/v1/container/{kind}", params=params))
    responses = await asyncio.gather(*actions)
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 204, 406}, [(r.status_code, r.text) for r in responses]
    assert 500 not in statuses

    info = await docker.containers.inspect(container_id)
    listed = (await api.get("/v1/container", params={"id": container_id})).json()["success"]
    assert listed[container_id]["state"] == info["State"]["Status"]
    assert info["State"]["Status"] in {"running", "exited", "created"}
    # Whatever state it ended in, the container still answers every action sensibly.
    if info["State"]["Running"]:
        assert (
            await api.post("/v1/container/stop", params={"id": container_id, "t": "0"})
        ).status_code == 204
    assert (await api.post("/v1/container/start", params={"id": container_id})).status_code == 204


async def test_actions_on_one_container_wait_for_each_other_but_not_for_others(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    # A container that ignores SIGTERM: its stop takes the whole grace period.
    slow = await make_container(commands=["trap '' TERM"])
    other = await make_container()
    for ref in (slow, other):
        assert (await api.post("/v1/container/start", params={"id": ref})).status_code == 204
    finished: list[str] = []

    async def run(label: str, request: Awaitable[httpx.Response]) -> httpx.Response:
        response = await request
        finished.append(label)
        return response

    # The engine's "kill" event shows the stop is under way, and so holds the container's lock.
    events = docker.events.stream(filters={"container": [slow], "event": ["kill"]})
    first_kill = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.2)  # the event subscription is open before the stop goes out
    stop = asyncio.ensure_future(
        run("stop slow", api.post("/v1/container/stop", params={"id": slow, "t": "3"}))
    )
    await asyncio.wait_for(first_kill, timeout=10)
    await events.aclose()
    patch_same = asyncio.ensure_future(
        run("patch slow", api.patch("/v1/container", params={"id": slow}, json={"memory": 0.5}))
    )
    patch_other = await run(
        "patch other", api.patch("/v1/container", params={"id": other}, json={"memory": 0.5})
    )
    assert patch_other.status_code == 200
    assert (await stop).status_code == 204
    assert (await patch_same).status_code == 200
    assert finished == ["patch other", "stop slow", "patch slow"]
