"""Lifecycle events against the real engine: crashes told apart from asked-for stops, OOM kills,
the route's answers, the metrics counters, and the catch-up after dockerlink was down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import TEST_IMAGE, create_container, serve_app, wait_for
from .test_metrics import of, scrape
from .test_mirror import docker_cli

#: 16 MiB: a shell doubling a string goes past it within a second.
SMALL_MEMORY_GIB = 16 / 1024
GROW_UNTIL_OOM = "x=0123456789abcdef; while :; do x=$x$x; done"


async def events_of(client: httpx.AsyncClient, ref: str, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/container/events", params={"id": ref, **params})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


async def until_event(
    client: httpx.AsyncClient, ref: str, kind: str, count: int = 1, timeout: float = 30
) -> list[dict[str, Any]]:
    """The container's events once ``count`` of type ``kind`` are there."""

    async def arrived() -> list[dict[str, Any]] | None:
        events = await events_of(client, ref)
        return events if sum(e["type"] == kind for e in events) >= count else None

    found: list[dict[str, Any]] = await wait_for(arrived, timeout=timeout, interval=0.1)
    return found


def the_one(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = [event for event in events if event["type"] == kind]
    assert len(matching) == 1, events
    return matching[0]


@pytest.fixture
async def served(engine_settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with serve_app(engine_settings) as (app, client):
        assert await app.ctx.mirror.wait_fresh(timeout=10)
        yield app, client


async def test_crashes_oom_kills_and_asked_for_stops_are_told_apart(
    served: tuple[Any, httpx.AsyncClient],
    engine_sock: str,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    _app, api = served
    exits = await create_container(api, docker, cleanup, unique_name("exit3"), commands=["exit 3"])
    oom = await create_container(
        api,
        docker,
        cleanup,
        unique_name("oom"),
        memory=SMALL_MEMORY_GIB,
        commands=[GROW_UNTIL_OOM],
    )
    api_stop = await create_container(api, docker, cleanup, unique_name("apistop"))
    cli_stop = await create_container(api, docker, cleanup, unique_name("clistop"))
    cli_kill = await create_container(api, docker, cleanup, unique_name("clikill"))
    for container_id in (exits, oom, api_stop, cli_stop, cli_kill):
        started = await api.post("/v1/container/start", params={"id": container_id})
        assert started.status_code == 204, started.text
    stopped = await api.post("/v1/container/stop", params={"id": api_stop, "t": "1"})
    assert stopped.status_code == 204, stopped.text
    await docker_cli(engine_sock, "stop", "-t", "1", cli_stop)
    await docker_cli(engine_sock, "kill", cli_kill)

    exited = the_one(await until_event(api, exits, "die"), "die")
    assert exited["exit_code"] == 3
    assert exited["crash"] is True
    assert exited["oom_killed"] is False

    oom_events = await until_event(api, oom, "die")
    died = the_one(oom_events, "die")
    assert died["oom_killed"] is True
    assert died["crash"] is True
    assert died["exit_code"] == 137
    kinds = [event["type"] for event in oom_events]
    assert kinds.index("oom") < kinds.index("die"), kinds

    for container_id in (api_stop, cli_stop, cli_kill):
        events = await until_event(api, container_id, "die")
        died = the_one(events, "die")
        assert died["crash"] is False, (container_id, died)
        assert died["oom_killed"] is False
        assert [e["type"] for e in events][:2] == ["create", "start"]
    assert the_one(await events_of(api, api_stop), "stop")  # a stop ends with "stop"
    assert the_one(await until_event(api, cli_stop, "stop"), "stop")
    # docker kill: kill (signal 9) and die, no stop event
    assert not [e for e in await events_of(api, cli_kill) if e["type"] == "stop"]

    # The shape of an event; the name without its "/"; ids unique.
    info = await docker.containers.inspect(exits)
    event = exited
    assert event["id"] == exits
    assert event["name"] == info["Name"].lstrip("/")
    assert isinstance(event["time"], float)
    assert event["time"] >= (await events_of(api, exits))[0]["time"]
    every = (await api.get("/v1/container/events", params={"limit": "1000"})).json()
    assert {exits, oom, api_stop, cli_stop, cli_kill} <= {e["id"] for e in every}
    assert [e["time"] for e in every] == sorted(e["time"] for e in every)
    assert len({e["event_id"] for e in every}) == len(every)

    samples = await scrape(api)
    assert of(samples, "dockerlink_container_crashes_total", id=exits, name=event["name"]) == 1
    oom_name = (await docker.containers.inspect(oom))["Name"].lstrip("/")
    assert of(samples, "dockerlink_container_crashes_total", id=oom, name=oom_name) == 1
    assert (of(samples, "dockerlink_container_oom_kills_total", id=oom, name=oom_name) or 0) >= 1
    for container_id in (api_stop, cli_stop, cli_kill):
        info = await docker.containers.inspect(container_id)
        labels = {"id": container_id, "name": info["Name"].lstrip("/")}
        assert of(samples, "dockerlink_container_crashes_total", **labels) is None


async def test_route_answers_bad_unknown_and_foreign_ids(
    served: tuple[Any, httpx.AsyncClient],
    engine_sock: str,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    _app, api = served
    container_id = await create_container(api, docker, cleanup, unique_name("route"))
    for _ in range(3):  # start, stop: more events than the limit asked below
        started = await api.post("/v1/container/start", params={"id": container_id})
        assert started.status_code == 204, started.text
        stopped = await api.post("/v1/container/stop", params={"id": container_id, "t": "0"})
        assert stopped.status_code == 204, stopped.text
    patched = await api.patch("/v1/container", params={"id": container_id}, json={"memory": 0.5})
    assert patched.status_code == 200, patched.text
    await until_event(api, container_id, "update")
    events = await until_event(api, container_id, "stop", count=3)
    newest_two = await events_of(api, container_id, limit="2")
    assert newest_two == events[-2:]
    assert await events_of(api, container_id, since=str(events[-3]["time"])) == events[-2:]

    foreign = unique_name("foreign")
    cleanup.append(foreign)
    await docker_cli(engine_sock, "create", "--name", foreign, TEST_IMAGE, "true")
    answers = {
        "unknown": await api.get("/v1/container/events", params={"id": unique_name("nope")}),
        "foreign": await api.get("/v1/container/events", params={"id": foreign}),
        "limit 0": await api.get("/v1/container/events", params={"limit": "0"}),
        "limit big": await api.get("/v1/container/events", params={"limit": "1001"}),
        "since": await api.get("/v1/container/events", params={"since": "yesterday"}),
        "id": await api.get("/v1/container/events", params={"id": "../x"}),
    }
    statuses = {what: answer.status_code for what, answer in answers.items()}
    assert statuses == {
        "unknown": 404,
        "foreign": 412,
        "limit 0": 400,
        "limit big": 400,
        "since": 400,
        "id": 400,
    }
    assert "limit" in answers["limit 0"].text

    # A container removed through the API keeps its events, destroy included.
    assert (await api.delete("/v1/container", params={"id": container_id})).status_code == 204
    events = await until_event(api, container_id, "destroy")
    assert events[-1]["type"] == "destroy"


async def test_a_death_while_dockerlink_was_down_is_recorded_once(
    engine_settings: Settings,
    engine_sock: str,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    settings = replace(engine_settings, data_dir=tmp_path / "shared-data")
    async with serve_app(settings) as (app, api):
        assert await app.ctx.mirror.wait_fresh(timeout=10)
        container_id = await create_container(
            api,
            docker,
            cleanup,
            unique_name("down"),
            commands=["while [ ! -e /tmp/die ]; do sleep 0.1; done", "exit 3"],
        )
        started = await api.post("/v1/container/start", params={"id": container_id})
        assert started.status_code == 204, started.text
        await until_event(api, container_id, "start")
    # dockerlink is down: the container exits on its own.
    await docker_cli(engine_sock, "exec", container_id, "touch", "/tmp/die")
    assert (await docker.containers.wait(container_id))["StatusCode"] == 3
    for _restart in range(2):  # the second time, nothing more is recorded
        async with serve_app(settings) as (app, api):
            lifecycle = app.ctx.lifecycle
            await wait_for(lambda: lifecycle.catch_ups >= 1, timeout=30)  # noqa: B023
            events = await events_of(api, container_id)
            died = the_one(events, "die")
            assert died["exit_code"] == 3
            assert died["crash"] is True
            assert the_one(events, "start")


async def test_each_restart_by_the_restart_policy_is_recorded(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    async with serve_app(replace(engine_settings, restart_max_retries=2)) as (app, api):
        assert await app.ctx.mirror.wait_fresh(timeout=10)
        container_id = await create_container(
            api, docker, cleanup, unique_name("policy"), restart="on-failure", commands=["exit 1"]
        )
        started = await api.post("/v1/container/start", params={"id": container_id})
        assert started.status_code == 204, started.text
        events = await until_event(api, container_id, "die", count=3)
        info = await docker.containers.inspect(container_id)
        assert (info["RestartCount"], info["State"]["Status"]) == (2, "exited")
        kinds = [event["type"] for event in events]
        assert kinds == [
            "create",
            *("start", "die"),
            *("start", "restart", "die"),
            *("start", "restart", "die"),
        ], kinds
        dies = [event for event in events if event["type"] == "die"]
        assert all(d["crash"] is True and d["exit_code"] == 1 for d in dies), dies
        restarts = [event for event in events if event["type"] == "restart"]
        assert all(r["policy"] is True for r in restarts), restarts
        assert restarts[-1]["restart_count"] == 2
        samples = await scrape(api)
        labels = {"id": container_id, "name": events[0]["name"]}
        assert of(samples, "dockerlink_container_restarts_total", **labels) == 2
        assert of(samples, "dockerlink_container_crashes_total", **labels) == 3
