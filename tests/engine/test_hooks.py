"""Lifecycle hooks through the HTTP API against the real engine: what each hook is told, and the
failure policy (a failing create hook undoes the create; other failing hooks are reported in a
header and the action stays done)."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from docker_api import DockerClient, NotFound
from dockerlink.settings import Settings

from ..conftest import create_body, serve

HOOK = """#!/bin/sh
# Records what it was told, then fails if a fail-<event> file says so (exit code, message).
echo "$DOCKERLINK_EVENT|$DOCKERLINK_CONTAINER_ID|$DOCKERLINK_CONTAINER_NAME|\
$DOCKERLINK_HOST_PORT_ROOT|$DOCKERLINK_PORTS|${DOCKERLINK_API_TOKEN:-no-token}" >> "$HOOK_DIR/calls"
if [ -f "$HOOK_DIR/sleep-$DOCKERLINK_EVENT" ]; then exec sleep 300; fi
if [ -f "$HOOK_DIR/fail-$DOCKERLINK_EVENT" ]; then
    read code message < "$HOOK_DIR/fail-$DOCKERLINK_EVENT"
    echo "$message"
    echo "second line of output" >&2
    exit "$code"
fi
"""


@dataclass
class Hooked:
    api: httpx.AsyncClient
    folder: Path

    def calls(self) -> list[list[str]]:
        path = self.folder / "calls"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line.split("|") for line in lines]

    def fail(self, event: str, code: int, message: str) -> None:
        (self.folder / f"fail-{event}").write_text(f"{code} {message}\n")

    def hang(self, event: str) -> None:
        (self.folder / f"sleep-{event}").write_text("")


@pytest.fixture
async def hooked(
    engine_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Hooked]:
    folder = tmp_path / "hooks"
    folder.mkdir()
    hook = folder / "hook"
    hook.write_text(HOOK)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("HOOK_DIR", str(folder))  # a hook's own setting, from the environment
    monkeypatch.setenv("DOCKERLINK_API_TOKEN", "never-shown-to-hooks-0123456789")
    settings = replace(
        engine_settings,
        hook_on_create=hook,
        hook_on_delete=hook,
        hook_on_start=hook,
        hook_on_stop=hook,
        hook_timeout=2.0,
        stop_timeout=1,
    )
    async with serve(settings) as api:
        yield Hooked(api, folder)


async def create(
    hooked: Hooked, docker: DockerClient, name: str, cleanup: list[str]
) -> httpx.Response:
    cleanup.append(name)
    body = await create_body(docker, name, ports=["3000/tcp", "53/udp"])
    return await hooked.api.put("/v1/container", json=body)


async def gone(docker: DockerClient, ref: str) -> bool:
    try:
        await docker.containers.inspect(ref)
    except NotFound:
        return True
    return False


async def test_every_hook_is_told_the_container_and_the_event(
    hooked: Hooked, docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    name = unique_name("hooks")
    created = await create(hooked, docker, name, cleanup)
    assert created.status_code == 200, created.text
    container_id = created.json()["Id"]
    root = (await docker.containers.inspect(container_id))["Config"]["Labels"]["ports"]
    params = {"id": name}
    for action in ("start", "restart", "stop"):
        answer = await hooked.api.post(f"/v1/container/{action}", params=params)
        assert answer.status_code == 204, answer.text
        assert "x-dockerlink-hook-error" not in answer.headers
    deleted = await hooked.api.delete("/v1/container", params=params)
    assert deleted.status_code == 204
    assert "x-dockerlink-hook-error" not in deleted.headers

    ports = "22/tcp 53/udp 80/tcp 443/tcp 3000/tcp"
    assert hooked.calls() == [
        [event, container_id, name, root, ports, "no-token"]
        for event in ("create", "start", "restart", "stop", "delete")
    ]


async def test_a_failing_create_hook_rolls_the_creation_back(
    hooked: Hooked, docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    hooked.fail("create", 4, "no certificate for this site")
    name = unique_name("hookfail")
    answer = await create(hooked, docker, name, cleanup)
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.text == (
        "hook_on_create failed (exit 4), the container was removed; "
        "its output: no certificate for this site second line of output\n"
    )
    assert await gone(docker, name)
    # the delete hook ran too, to clean up after a create hook that got halfway
    assert [call[0] for call in hooked.calls()] == ["create", "delete"]
    assert hooked.calls()[0][2] == hooked.calls()[1][2] == name

    # the name and the port block are free again
    (hooked.folder / "fail-create").unlink()
    retried = await create(hooked, docker, name, cleanup)
    assert retried.status_code == 200, retried.text


async def test_a_create_hook_that_hangs_is_killed_and_rolled_back(
    hooked: Hooked, docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    hooked.hang("create")
    name = unique_name("hookhang")
    answer = await create(hooked, docker, name, cleanup)
    assert answer.status_code == 500
    assert answer.text == (
        "hook_on_create failed (timed out after 2 s, killed), the container was removed; "
        "its output: (none)\n"
    )
    assert await gone(docker, name)


async def test_other_failing_hooks_are_reported_and_the_action_stays_done(
    hooked: Hooked, docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    name = unique_name("hookhdr")
    assert (await create(hooked, docker, name, cleanup)).status_code == 200
    params = {"id": name}

    hooked.fail("start", 3, "could not reload the proxy")
    started = await hooked.api.post("/v1/container/start", params=params)
    assert started.status_code == 204
    assert started.headers["x-dockerlink-hook-error"] == (
        "hook_on_start failed (exit 3): could not reload the proxy"
    )
    assert (await docker.containers.inspect(name))["State"]["Running"]

    hooked.fail("restart", 6, "restart hook broke")  # hook_on_start, told the event "restart"
    restarted = await hooked.api.post("/v1/container/restart", params=params)
    assert restarted.status_code == 204
    assert restarted.headers["x-dockerlink-hook-error"] == (
        "hook_on_start failed (exit 6): restart hook broke"
    )

    hooked.fail("stop", 5, "stop hook broke")
    stopped = await hooked.api.post("/v1/container/stop", params=params)
    assert stopped.status_code == 204
    assert (
        stopped.headers["x-dockerlink-hook-error"]
        == "hook_on_stop failed (exit 5): stop hook broke"
    )
    assert not (await docker.containers.inspect(name))["State"]["Running"]

    hooked.hang("delete")
    deleted = await hooked.api.delete("/v1/container", params=params)
    assert deleted.status_code == 204
    assert deleted.headers["x-dockerlink-hook-error"] == (
        "hook_on_delete failed (timed out after 2 s, killed)"
    )
    assert await gone(docker, name)
    assert [call[0] for call in hooked.calls()] == ["create", "start", "restart", "stop", "delete"]


async def test_no_hook_runs_when_the_action_is_refused(
    hooked: Hooked, docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    name = unique_name("hooknoop")
    assert (await create(hooked, docker, name, cleanup)).status_code == 200
    assert (await hooked.api.post("/v1/container/stop", params={"id": name})).status_code == 406
    assert (await hooked.api.post("/v1/container/start", params={"id": name})).status_code == 204
    assert (await hooked.api.delete("/v1/container", params={"id": name})).status_code == 412
    assert (await hooked.api.post("/v1/container/start", params={"id": name})).status_code == 406
    assert [call[0] for call in hooked.calls()] == ["create", "start"]
