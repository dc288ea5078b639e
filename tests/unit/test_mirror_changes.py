"""The container mirror when changes cross: a re-read that spans events, a name that moved to
another container. (Orders a real engine cannot be made to produce on demand.)"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Any

import pytest

import docker_api
from dockerlink.mirror import REREAD_PASSES, ContainerMirror

A, B = "a" * 64, "b" * 64


def info(container_id: str, name: str) -> dict[str, Any]:
    return {"Id": container_id, "Name": "/" + name, "State": {"Status": "running"}}


class SlowContainers:
    """An engine whose inspect answers are delayed until ``answer`` is set."""

    def __init__(self, engine: dict[str, dict[str, Any]]) -> None:
        self.engine = engine
        self.answer = asyncio.Event()
        self.answer.set()

    async def list(self, **_: Any) -> list[dict[str, Any]]:
        return [{"Id": container_id} for container_id in self.engine]

    async def inspect(self, container_id: str, timeout: float | None = None) -> dict[str, Any]:
        if container_id not in self.engine:
            raise docker_api.NotFound(f"No such container: {container_id}")
        snapshot = dict(self.engine[container_id])
        await self.answer.wait()
        return snapshot


class Engine:
    def __init__(self, engine: dict[str, dict[str, Any]]) -> None:
        self.containers = SlowContainers(engine)


@pytest.mark.parametrize("pass_", ["resync", "reconcile"])
async def test_what_events_changed_during_a_re_read_is_kept(pass_: str) -> None:
    """A re-read (a full one, or a reconcile's) lists and inspects A; meanwhile A is destroyed
    and B created, and the events are applied. The re-read must not bring A back nor drop B."""
    engine = Engine({A: info(A, "old")})
    docker: Any = engine
    mirror = ContainerMirror(docker)
    await mirror.resync()
    engine.containers.answer.clear()
    reread = asyncio.create_task(getattr(mirror, pass_)())
    await asyncio.sleep(0.01)  # it has listed A and waits for A's inspect
    del engine.containers.engine[A]
    engine.containers.engine[B] = info(B, "new")
    engine.containers.answer.set()
    await mirror._apply({"Action": "destroy", "Actor": {"ID": A}})
    await mirror._apply({"Action": "create", "Actor": {"ID": B}})
    await reread
    assert [i["Id"] for i in mirror.all()] == [B]
    assert mirror.get("old") is None
    assert mirror.get(A) is None
    assert (mirror.get("new") or {}).get("Id") == B


async def test_a_late_rename_does_not_take_a_name_another_container_has_now() -> None:
    """web is renamed web-old and a new web is made; the rename's event, applied last, must
    not drop the new container's name."""
    engine = Engine({A: info(A, "web")})
    docker: Any = engine
    mirror = ContainerMirror(docker)
    await mirror.refresh(A)
    engine.containers.engine[A] = info(A, "web-old")
    engine.containers.engine[B] = info(B, "web")
    await mirror.refresh(B)  # right after the create, through the API
    await mirror._apply({"Action": "rename", "Actor": {"ID": A}})
    assert (mirror.get("web") or {}).get("Id") == B
    assert (mirror.get("web-old") or {}).get("Id") == A


class CountingContainers:
    """An engine whose list shows each container's state and name, as a real one does, and
    which counts the inspects."""

    def __init__(self, engine: dict[str, dict[str, Any]]) -> None:
        self.engine = engine
        self.inspected: list[str] = []

    async def list(self, **_: Any) -> list[dict[str, Any]]:
        return [
            {"Id": cid, "Names": [i["Name"]], "State": i["State"]["Status"]}
            for cid, i in self.engine.items()
        ]

    async def inspect(self, container_id: str, timeout: float | None = None) -> dict[str, Any]:
        self.inspected.append(container_id)
        if container_id not in self.engine:
            raise docker_api.NotFound(f"No such container: {container_id}")
        return copy.deepcopy(self.engine[container_id])


async def test_a_reconcile_re_reads_a_share_in_turn_and_what_the_list_shows_changed() -> None:
    """25 containers: each pass inspects 3 of those that look unchanged (1/REREAD_PASSES,
    rounded up), going on where the last pass stopped, so every one is re-read within
    REREAD_PASSES passes; a container whose state or name changed, a new one and a removed
    one are dealt with at the next pass. An unchanged inspect is not replaced."""
    ids = [f"{n:02d}" + "c" * 62 for n in range(25)]
    containers = CountingContainers({cid: info(cid, f"web{n}") for n, cid in enumerate(ids)})
    docker: Any = Engine({})
    docker.containers = containers
    mirror = ContainerMirror(docker)
    await mirror.resync()
    kept = {cid: mirror.get(cid) for cid in ids}
    version = mirror.version
    containers.inspected.clear()

    passes = []
    for _ in range(REREAD_PASSES):
        await mirror.reconcile()
        passes.append(sorted(containers.inspected))
        containers.inspected.clear()
    assert all(len(one) == 3 for one in passes)
    assert [cid for one in passes[:8] for cid in one] == ids[:24]  # in turn
    assert passes[8] == ids[:2] + ids[24:]  # the turn wraps around: every one re-read
    assert passes[9] == ids[2:5]
    assert all(mirror.get(cid) is kept[cid] for cid in ids)
    assert mirror.version == version

    containers.engine[ids[5]]["State"] = {"Status": "exited"}
    containers.engine[ids[6]] = info(ids[6], "renamed")
    del containers.engine[ids[7]]
    containers.engine[A] = info(A, "new")
    await mirror.reconcile()
    assert sorted(containers.inspected) == sorted([ids[5], ids[6], A, *ids[8:11]])
    assert (mirror.get(ids[5]) or {})["State"] == {"Status": "exited"}
    assert (mirror.get("renamed") or {}).get("Id") == ids[6]
    assert mirror.get("web6") is None
    assert mirror.get(ids[7]) is None
    assert (mirror.get("new") or {}).get("Id") == A
    assert mirror.get(ids[0]) is kept[ids[0]]


async def test_a_container_gone_from_the_list_is_dropped_without_an_inspect() -> None:
    containers = CountingContainers({A: info(A, "a"), B: info(B, "b")})
    docker: Any = Engine({})
    docker.containers = containers
    mirror = ContainerMirror(docker)
    await mirror.resync()
    del containers.engine[B]
    containers.inspected.clear()
    await mirror.reconcile()
    assert mirror.get(B) is None and mirror.get("b") is None
    assert containers.inspected == [A]  # (its turn: one of one, 1/REREAD_PASSES rounded up)


class DownEngine:
    """An engine that refuses every call (not started yet)."""

    def __init__(self) -> None:
        self.containers = self
        self.events = self
        self.lists = 0

    async def list(self, **_: Any) -> list[dict[str, Any]]:
        self.lists += 1
        raise docker_api.EngineUnreachable("connection to /run/docker.sock failed: refused")

    async def watch(self, **_: Any) -> Any:
        await asyncio.Event().wait()
        yield  # pragma: no cover  (never reached: an async generator that waits for ever)


async def test_an_engine_down_at_start_is_said_once_not_at_every_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = DownEngine()
    docker: Any = engine
    mirror = ContainerMirror(docker, retry_delay_s=0.01)
    with caplog.at_level(logging.WARNING, logger="dockerlink.mirror"):
        following = asyncio.create_task(mirror.run())
        while engine.lists < 10:
            await asyncio.sleep(0.01)
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
    stale = [r.getMessage() for r in caplog.records if "stale" in r.getMessage()]
    assert stale == ["container mirror stale: connection to /run/docker.sock failed: refused"]
