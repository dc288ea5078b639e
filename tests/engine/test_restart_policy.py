"""The ``restart`` field: applied as the engine's own restart policy, shown with the engine's
restart count in the listing, changed by PATCH; bad values change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import create_container, free_port_root, serve, wait_for

#: Kept small: the engine waits 100 ms before the first restart, then doubles the wait.
MAX_RETRIES = 3


@pytest.fixture
async def api(engine_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(replace(engine_settings, restart_max_retries=MAX_RETRIES)) as client:
        yield client


async def listed(api: httpx.AsyncClient, container_id: str) -> dict[str, Any]:
    response = await api.get("/v1/container", params={"id": container_id})
    assert response.status_code == 200, response.text
    entry: dict[str, Any] = response.json()["success"][container_id]
    return entry


async def policy_of(docker: DockerClient, container_id: str) -> dict[str, Any]:
    policy: dict[str, Any] = (await docker.containers.inspect(container_id))["HostConfig"][
        "RestartPolicy"
    ]
    return policy


async def test_on_failure_restarts_exactly_restart_max_retries_times_then_stays_down(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    container_id = await create_container(
        api, docker, cleanup, unique_name("crash"), restart="on-failure", commands=["exit 1"]
    )
    assert await policy_of(docker, container_id) == {
        "Name": "on-failure",
        "MaximumRetryCount": MAX_RETRIES,
    }
    before = await listed(api, container_id)
    assert (before["restart"], before["restart_count"]) == ("on-failure", 0)
    started = await api.post("/v1/container/start", params={"id": container_id})
    assert started.status_code == 204, started.text

    async def gave_up() -> dict[str, Any] | None:
        entry = await listed(api, container_id)  # from the event-fed mirror
        return entry if entry["state"] == "exited" and entry["restart_count"] > 0 else None

    final = await wait_for(gave_up, timeout=30)
    # "exited", not "restarting": the engine has given up, no further restart is scheduled.
    assert (final["restart_count"], final["exit_code"]) == (MAX_RETRIES, 1)
    info = await docker.containers.inspect(container_id)
    assert info["RestartCount"] == MAX_RETRIES
    assert (info["State"]["Status"], info["State"]["Restarting"]) == ("exited", False)

    # A start by hand sets the count back and gives it the same number of retries again.
    again = await api.post("/v1/container/start", params={"id": container_id})
    assert again.status_code == 204, again.text

    async def gave_up_again() -> dict[str, Any] | None:
        state = (await docker.containers.inspect(container_id))["State"]
        later = state["StartedAt"] != info["State"]["StartedAt"]
        return await gave_up() if later and state["Status"] == "exited" else None

    assert (await wait_for(gave_up_again, timeout=30))["restart_count"] == MAX_RETRIES


async def test_patch_changes_the_policy_and_the_listing_shows_it(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    container_id = await create_container(api, docker, cleanup, unique_name("policy"))
    assert await policy_of(docker, container_id) == {"Name": "no", "MaximumRetryCount": 0}
    assert (await listed(api, container_id))["restart"] == "no"
    for restart, retries in (("unless-stopped", 0), ("on-failure", MAX_RETRIES), ("no", 0)):
        response = await api.patch(
            "/v1/container", params={"id": container_id}, json={"restart": restart}
        )
        assert (response.status_code, response.json()) == (200, {"Warnings": []})
        assert await policy_of(docker, container_id) == {
            "Name": restart,
            "MaximumRetryCount": retries,
        }
        assert (await listed(api, container_id))["restart"] == restart
    # With the limits, in one call.
    both = await api.patch(
        "/v1/container",
        params={"id": container_id},
        json={"memory": 0.5, "restart": "unless-stopped"},
    )
    assert both.status_code == 200, both.text
    info = await docker.containers.inspect(container_id)
    assert info["HostConfig"]["Memory"] == 1 << 29
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


@pytest.mark.parametrize("value", ["always", "on-failure:3", "", "NO", 1, None, ["no"]])
async def test_bad_restart_values_are_400s_that_change_nothing(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    value: Any,
) -> None:
    container_id = await create_container(
        api, docker, cleanup, unique_name("badpol"), restart="unless-stopped"
    )
    before = await docker.containers.inspect(container_id)
    if value is not None:  # null means "unchanged" in a PATCH with other fields; alone, a 400
        patched = await api.patch(
            "/v1/container", params={"id": container_id}, json={"restart": value, "memory": 1}
        )
        assert patched.status_code == 400, patched.text
        assert patched.text.startswith("restart must be one of no, on-failure, unless-stopped")
    alone = await api.patch("/v1/container", params={"id": container_id}, json={"restart": value})
    assert alone.status_code == 400, alone.text
    after = await docker.containers.inspect(container_id)
    assert after["HostConfig"] == before["HostConfig"]

    name = unique_name("badnew")
    created = await api.put(
        "/v1/container",
        json={
            "name": name,
            "host_port_root": await free_port_root(docker),
            "memory": 0.25,
            "cpulimit": 0.5,
            "restart": value if value is not None else 7,
        },
    )
    assert created.status_code == 400, created.text
    assert created.text.startswith("restart must be one of")
    assert await docker.containers.list(all=True, filters={"name": [f"^/{name}$"]}) == []


async def test_a_crash_looping_unless_stopped_container_stops_through_dockerlink_and_stays_down(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    container_id = await create_container(
        api, docker, cleanup, unique_name("loop"), restart="unless-stopped", commands=["exit 1"]
    )
    started = await api.post("/v1/container/start", params={"id": container_id})
    assert started.status_code == 204, started.text

    async def looping() -> bool:
        entry = await listed(api, container_id)
        return bool(entry["restart_count"] >= 2)

    await wait_for(looping, timeout=30)  # the engine restarts it on its own
    # Between two attempts the engine shows it "restarting" (State.Running is true then), so a
    # stop goes through; the engine records it as stopped by hand and restarts it no more.
    stopped = await api.post("/v1/container/stop", params={"id": container_id, "t": "0"})
    assert stopped.status_code == 204, stopped.text

    async def down() -> dict[str, Any] | None:
        info = await docker.containers.inspect(container_id)
        state = info["State"]
        return info if state["Status"] == "exited" and not state["Restarting"] else None

    info = await wait_for(down, timeout=15)
    entry = await listed(api, container_id)
    assert entry["state"] == "exited"
    assert entry["restart_count"] == info["RestartCount"]
    again = await api.post("/v1/container/stop", params={"id": container_id})
    assert (again.status_code, again.text) == (406, "Already stopped\n")
