"""Reads served from the mirror without an engine call: descriptions made once per inspect, and
git's container lookup, which leaves the last word to the engine when the mirror lags."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import docker_api
from docker_api import ExecResult
from dockerlink import hosting as hosting_module
from dockerlink.domain_errors import ActionFailed, NotRunningForExec
from dockerlink.git import GitService
from dockerlink.hooks import HookFailure, HookTarget
from dockerlink.hosting import Hosting
from dockerlink.settings import Settings


def info(n: int, *, running: bool = True) -> dict[str, Any]:
    return {
        "Id": f"{n:04x}" * 16,
        "Name": f"/web{n}",
        "State": {
            "Status": "running" if running else "exited",
            "Running": running,
            "StartedAt": "2026-11-27T05:07:58.67982636Z",
            "ExitCode": 0,
        },
        "Config": {"Labels": {"dockerlink": "v1.0.0"}, "WorkingDir": "/var/www/html"},
        "HostConfig": {"Memory": 1 << 30, "CpuPeriod": 100_000, "CpuQuota": 50_000},
    }


class FakeMirror:
    def __init__(self, *infos: dict[str, Any]) -> None:
        self.by_id = {i["Id"]: i for i in infos}
        self.fresh = True

    def get(self, ref: str) -> dict[str, Any] | None:
        return self.by_id.get(ref)

    def all(self) -> list[dict[str, Any]]:
        return list(self.by_id.values())

    async def every_container(self, **_: Any) -> list[dict[str, Any]]:
        return self.all()

    def forget(self, container_id: str) -> None:
        self.by_id.pop(container_id, None)


class FakeDocker:
    """The engine's side: its own inspects (which may differ from the mirror's), and execs."""

    def __init__(self, *infos: dict[str, Any]) -> None:
        self.by_id = {i["Id"]: copy.deepcopy(i) for i in infos}
        self.calls: list[str] = []
        self.containers = self
        self.execs = self
        self.exec_error: Exception | None = None

    async def inspect(self, ref: str, **_: Any) -> dict[str, Any]:
        self.calls.append("inspect")
        if ref not in self.by_id:
            raise docker_api.NotFound(f"No such container: {ref}")
        return self.by_id[ref]

    async def remove(self, container_id: str, **_: Any) -> None:
        self.calls.append("remove")
        del self.by_id[container_id]

    async def run(self, container_id: str, cmd: list[str], **_: Any) -> ExecResult:
        self.calls.append("exec")
        if self.exec_error is not None:
            raise self.exec_error
        return ExecResult(0, b"commit abc\n")


def hosting_with(mirror: FakeMirror, docker: FakeDocker) -> Hosting:
    engine: Any = docker
    fake: Any = mirror
    return Hosting(engine, Settings(), fake)


async def test_a_description_is_made_once_per_inspect_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []
    real = hosting_module.describe

    def counting(one: dict[str, Any]) -> dict[str, Any]:
        made.append(one["Id"])
        return real(one)

    monkeypatch.setattr(hosting_module, "describe", counting)
    first, second = info(1), info(2)
    mirror = FakeMirror(first, second)
    hosting = hosting_with(mirror, FakeDocker())
    listing = await hosting.list_containers(None, None)
    assert listing["success"][first["Id"]]["started_at"] == 1795756078
    for _ in range(3):
        assert await hosting.list_containers(None, None) == listing
        await hosting.list_containers({first["Id"]: first["Id"]}, None)
    assert sorted(made) == sorted([first["Id"], second["Id"]])

    # The mirror re-inspected it (a new object): described again, with the new state.
    mirror.by_id[first["Id"]] = info(1, running=False)
    again = await hosting.list_containers({first["Id"]: first["Id"]}, None)
    assert again["success"][first["Id"]]["state"] == "exited"
    assert made.count(first["Id"]) == 2


async def test_descriptions_of_containers_gone_from_the_mirror_are_dropped() -> None:
    mirror = FakeMirror()
    hosting = hosting_with(mirror, FakeDocker())
    for generation in range(10):  # 300 containers each time, none of them the same
        mirror.by_id = {i["Id"]: i for i in (info(generation * 300 + n) for n in range(300))}
        await hosting.list_containers(None, None)
        assert len(hosting._described) <= 2 * 300 + 1  # not 300 more each time
    listed = {i["Id"] for i in mirror.all()}
    assert listed <= set(hosting._described)


async def test_git_takes_the_container_from_the_mirror() -> None:
    box = info(1)
    docker = FakeDocker(box)
    git = GitService(hosting_with(FakeMirror(box), docker))
    assert await git.head(box["Id"], None) == "commit abc\n"
    assert docker.calls == ["exec"]


async def test_git_asks_the_engine_when_the_mirror_says_not_running() -> None:
    # Started a moment ago: the mirror has not seen it yet, the engine has.
    docker = FakeDocker(info(1))
    git = GitService(hosting_with(FakeMirror(info(1, running=False)), docker))
    assert await git.head(info(1)["Id"], None) == "commit abc\n"
    assert docker.calls == ["inspect", "exec"]

    stopped = FakeDocker(info(1, running=False))
    git = GitService(hosting_with(FakeMirror(info(1, running=False)), stopped))
    with pytest.raises(NotRunningForExec, match="container is not running"):
        await git.head(info(1)["Id"], None)
    assert stopped.calls == ["inspect"]


async def test_git_in_a_container_that_stopped_behind_the_mirror_is_409() -> None:
    docker = FakeDocker(info(1, running=False))
    docker.exec_error = docker_api.Conflict("Container 0101 is not running")
    git = GitService(hosting_with(FakeMirror(info(1)), docker))
    with pytest.raises(NotRunningForExec, match="container is not running"):
        await git.head(info(1)["Id"], None)
    # Running but refused all the same (paused): the engine's own answer goes through.
    paused = FakeDocker(info(1))
    paused.exec_error = docker_api.Conflict("Container 0101 is paused")
    git = GitService(hosting_with(FakeMirror(info(1)), paused))
    with pytest.raises(docker_api.Conflict, match="paused"):
        await git.head(info(1)["Id"], None)


async def test_a_rolled_back_create_is_forgotten_like_a_delete() -> None:
    # A failing create hook removes the container: the mirror and the delete hooks (the
    # sampler's history) forget it at once, as after a DELETE, not when the event arrives.
    box = info(1, running=False)
    mirror = FakeMirror(box)
    hosting = hosting_with(mirror, FakeDocker(box))
    forgotten: list[str] = []

    async def delete_hook(container_id: str) -> None:
        forgotten.append(container_id)

    hosting.delete_hooks.append(delete_hook)
    target = HookTarget.of(box["Id"], box["Name"], 5000, [])
    failure = HookFailure("hook_on_create", "create", 4, False, "no certificate")
    with pytest.raises(ActionFailed, match="the container was removed"):
        await hosting._undo_create(target, failure)
    assert mirror.get(box["Id"]) is None
    assert forgotten == [box["Id"]]
