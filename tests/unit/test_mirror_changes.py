"""The container mirror when changes cross: a re-read that spans events, a name that moved to
another container. (Orders a real engine cannot be made to produce on demand.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

import docker_api
from dockerlink.mirror import ContainerMirror

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


async def test_what_events_changed_during_a_re_read_is_kept() -> None:
    """A re-read lists and inspects A; meanwhile A is destroyed and B created, and the events
    are applied. The re-read must not bring A back nor drop B."""
    engine = Engine({A: info(A, "old")})
    docker: Any = engine
    mirror = ContainerMirror(docker)
    await mirror.resync()
    engine.containers.answer.clear()
    reread = asyncio.create_task(mirror.resync())
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
