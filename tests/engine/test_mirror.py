"""The container mirror follows changes made behind dockerlink's back, with the docker CLI."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from docker_api import DockerClient
from dockerlink.mirror import REREAD_PASSES, ContainerMirror
from dockerlink.settings import Settings

from ..conftest import TEST_IMAGE, serve_app, wait_for

#: The issue's bound: a change made with the docker CLI is visible within one second.
VISIBLE_WITHIN_S = 1.0


async def docker_cli(engine_sock: str, *args: str) -> str:
    cli = shutil.which("docker") or "/usr/bin/docker"
    process = await asyncio.create_subprocess_exec(
        cli,
        "-H",
        f"unix://{engine_sock}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


@pytest.fixture
async def served(engine_settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with serve_app(engine_settings) as (app, client):
        assert await app.ctx.mirror.wait_fresh(timeout=10)
        yield app, client


async def test_changes_behind_our_back_show_up_within_a_second(
    served: tuple[Any, httpx.AsyncClient],
    engine_sock: str,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    app, api = served
    mirror = app.ctx.mirror
    name = unique_name("cli")
    cleanup.append(name)

    async def listed() -> dict[str, Any]:
        assert mirror.fresh  # the answer comes from the mirror, not the engine fallback
        return dict((await api.get("/v1/container")).json()["success"])

    async def state_is(expected: str | None, ref: str) -> bool:
        by_name = {info["name"]: info for info in (await listed()).values()}
        info = by_name.get(f"/{ref}")
        return (info or {}).get("state") == expected if expected else info is None

    container_id = await idle_container(engine_sock, name)
    await wait_for(lambda: state_is("created", name), timeout=VISIBLE_WITHIN_S, interval=0.02)

    await docker_cli(engine_sock, "start", name)
    await wait_for(lambda: state_is("running", name), timeout=VISIBLE_WITHIN_S, interval=0.02)
    assert isinstance((await listed())[container_id]["started_at"], int)

    await docker_cli(engine_sock, "stop", "-t", "1", name)
    await wait_for(lambda: state_is("exited", name), timeout=VISIBLE_WITHIN_S, interval=0.02)

    renamed = name + "-renamed"
    cleanup.append(renamed)
    await docker_cli(engine_sock, "rename", name, renamed)
    await wait_for(lambda: state_is("exited", renamed), timeout=VISIBLE_WITHIN_S, interval=0.02)
    assert await state_is(None, name)
    by_new_name = (await api.get("/v1/container", params={"id": renamed})).json()
    assert set(by_new_name["success"]) == {renamed}

    await docker_cli(engine_sock, "rm", renamed)
    await wait_for(lambda: state_is(None, renamed), timeout=VISIBLE_WITHIN_S, interval=0.02)
    gone = (await api.get("/v1/container", params={"id": container_id})).json()
    assert gone["error"] == {container_id: f"no such container: {container_id}"}


async def test_routes_update_the_mirror_at_once(
    served: tuple[Any, httpx.AsyncClient],
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    from ..conftest import free_port_root

    app, api = served
    mirror = app.ctx.mirror
    name = unique_name("now")
    created = await api.put(
        "/v1/container",
        json={
            "name": name,
            "host_port_root": await free_port_root(docker),
            "memory": 0.25,
            "cpulimit": 0.5,
        },
    )
    assert created.status_code == 200, created.text
    container_id = created.json()["Id"]
    cleanup.append(container_id)
    # No waiting: the answer to the create already left the mirror up to date.
    assert mirror.get(container_id)["State"]["Status"] == "created"
    assert (await api.post("/v1/container/start", params={"id": name})).status_code == 204
    assert mirror.get(name)["State"]["Status"] == "running"
    assert (
        await api.patch("/v1/container", params={"id": name}, json={"memory": 0.5})
    ).status_code == 200
    assert mirror.get(name)["HostConfig"]["Memory"] == 1 << 29
    assert (await api.post("/v1/container/stop", params={"id": name, "t": "0"})).status_code == 204
    assert mirror.get(name)["State"]["Running"] is False
    assert (await api.delete("/v1/container", params={"id": name})).status_code == 204
    assert mirror.get(container_id) is None


async def test_a_reconcile_catches_what_the_events_did_not_bring(
    docker: DockerClient,
    engine_sock: str,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """A mirror that follows no events at all, against changes made with the docker CLI: one
    reconcile brings a start, a rename, a removal and a new container (each shows in the list);
    a change of limits (which the list does not show) within REREAD_PASSES passes; an
    unchanged container's inspect is left as it was, the same object."""
    names = [unique_name("rc") for _ in range(6)]
    cleanup.extend(names)
    cleanup.append(names[1] + "-renamed")
    ids = [await idle_container(engine_sock, name) for name in names[:5]]
    mirror = ContainerMirror(docker)
    await mirror.resync()
    unchanged = mirror.get(ids[3])
    assert unchanged is not None

    await docker_cli(engine_sock, "start", names[0])
    await docker_cli(engine_sock, "rename", names[1], names[1] + "-renamed")
    await docker_cli(engine_sock, "update", "--cpu-shares", "512", names[2])
    await docker_cli(engine_sock, "rm", names[4])
    new_id = await idle_container(engine_sock, names[5])

    await mirror.reconcile()
    assert (mirror.get(ids[0]) or {})["State"]["Status"] == "running"
    assert (mirror.get(names[1] + "-renamed") or {}).get("Id") == ids[1]
    assert mirror.get(names[1]) is None
    assert mirror.get(ids[4]) is None and mirror.get(names[4]) is None
    assert (mirror.get(names[5]) or {}).get("Id") == new_id

    passes = 1
    while (mirror.get(ids[2]) or {})["HostConfig"]["CpuShares"] != 512:
        assert passes < REREAD_PASSES, "a change the list does not show was never re-read"
        await mirror.reconcile()
        passes += 1
    for _ in range(REREAD_PASSES - passes):  # every container's turn has come at least once
        await mirror.reconcile()
    assert mirror.get(ids[3]) is unchanged


async def idle_container(engine_sock: str, name: str) -> str:
    return await docker_cli(
        engine_sock,
        "create",
        "--name",
        name,
        TEST_IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 600 & wait",
    )
