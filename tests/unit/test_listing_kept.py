"""``GET /v1/container?id=X`` answers kept as JSON text (:meth:`Hosting.cached_listing`): reused
only while the mirror is fresh and unchanged, and only when the mirror alone made them."""

from __future__ import annotations

from typing import Any

import orjson

import docker_api
from dockerlink import hosting as hosting_module
from dockerlink.hosting import Hosting
from dockerlink.mirror import ContainerMirror
from dockerlink.settings import Settings

A, B = "a" * 64, "b" * 64


def info(container_id: str, name: str, *, running: bool = True, memory: int = 0) -> dict[str, Any]:
    return {
        "Id": container_id,
        "Name": "/" + name,
        "State": {
            "Status": "running" if running else "exited",
            "Running": running,
            "StartedAt": "2026-11-27T05:07:58.67982636Z",
            "ExitCode": 0,
        },
        "Config": {"Labels": {"dockerlink": "v1.0.0"}},
        "HostConfig": {"Memory": memory},
    }


class Containers:
    def __init__(self, *infos: dict[str, Any]) -> None:
        self.engine = {i["Id"]: i for i in infos}
        self.inspected: list[str] = []

    async def list(self, **_: Any) -> list[dict[str, Any]]:
        return [{"Id": container_id} for container_id in self.engine]

    async def inspect(self, ref: str, timeout: float | None = None) -> dict[str, Any]:
        self.inspected.append(ref)
        found = self.engine.get(ref) or next(
            (i for i in self.engine.values() if i["Name"] == "/" + ref), None
        )
        if found is None:
            raise docker_api.NotFound(f"No such container: {ref}")
        return dict(found)


class Engine:
    def __init__(self, *infos: dict[str, Any]) -> None:
        self.containers = Containers(*infos)


async def fresh_mirror(engine: Engine) -> ContainerMirror:
    docker: Any = engine
    mirror = ContainerMirror(docker)
    await mirror.resync()
    mirror._fresh = True  # (as while it follows the engine's events)
    return mirror


async def asked(hosting: Hosting, query: str) -> bytes:
    """What the route answers for ``?query`` (ids only): kept, else made."""
    kept = hosting.cached_listing(query)
    if kept is not None:
        return kept
    refs = [field.partition("=")[2] for field in query.split("&")]
    return await hosting.listing_json({ref: ref for ref in refs}, None, key=query)


def hosting_on(engine: Engine, mirror: ContainerMirror) -> Hosting:
    docker: Any = engine
    return Hosting(docker, Settings(), mirror)


async def test_the_kept_answer_is_the_answer_and_follows_each_change() -> None:
    engine = Engine(info(A, "web1"))
    mirror = await fresh_mirror(engine)
    hosting = hosting_on(engine, mirror)

    async def check(query: str) -> bytes:
        body = await asked(hosting, query)
        refs = {ref: ref for ref in (f.partition("=")[2] for f in query.split("&"))}
        assert body == orjson.dumps(await hosting.list_containers(refs, None))
        return body

    first = await check("id=web1")
    assert hosting.cached_listing("id=web1") is first
    assert hosting.cached_listing("id=/web1") is None  # keyed by the query string as sent

    # Each change the mirror learns of: stopped, limits changed, renamed, another created.
    changes = [
        info(A, "web1", running=False),
        info(A, "web1", running=False, memory=1 << 30),
        info(A, "web2", running=False, memory=1 << 30),
    ]
    before = first
    for changed in changes:
        engine.containers.engine[A] = changed
        await mirror.refresh(A)
        assert hosting.cached_listing("id=web1") is None
        after = await check("id=web1")
        assert after != before
        before = after
    assert orjson.loads(before)["error"] == {"web1": "no such container: web1"}  # renamed
    assert orjson.loads(await check(f"id={A}"))["success"][A]["name"] == "/web2"

    engine.containers.engine[B] = info(B, "web1")
    await mirror.refresh(B)
    assert orjson.loads(await check("id=web1"))["success"]["web1"]["name"] == "/web1"

    # Deleted; then a re-read of the whole engine.
    del engine.containers.engine[B]
    mirror.forget(B)
    assert hosting.cached_listing("id=web1") is None
    assert orjson.loads(await check("id=web1"))["success"] == {}
    kept = await check(f"id={A}")
    assert hosting.cached_listing(f"id={A}") is kept
    await mirror.resync()
    assert hosting.cached_listing(f"id={A}") is None


async def test_only_answers_the_mirror_made_alone_are_kept() -> None:
    engine = Engine(info(A, "web1"))
    mirror = await fresh_mirror(engine)
    hosting = hosting_on(engine, mirror)
    engine.containers.inspected.clear()

    # Unknown to the mirror: asked of the engine, which may know it already; not kept.
    await asked(hosting, "id=web1&id=missing")
    assert engine.containers.inspected == ["missing"]
    assert hosting.cached_listing("id=web1&id=missing") is None
    engine.containers.engine[B] = info(B, "late")  # the engine has it, the mirror not yet
    body = orjson.loads(await asked(hosting, "id=late"))
    assert body["success"]["late"]["name"] == "/late"
    assert hosting.cached_listing("id=late") is None

    # Not fresh (the event stream broke): the engine answers, nothing kept or reused.
    await asked(hosting, "id=web1")
    assert hosting.cached_listing("id=web1") is not None
    mirror._fresh = False
    assert hosting.cached_listing("id=web1") is None
    hosting._listings.clear()
    engine.containers.inspected.clear()
    await asked(hosting, "id=web1")
    assert engine.containers.inspected == ["web1"]
    assert hosting.cached_listing("id=web1") is None


async def test_the_kept_answers_are_bounded() -> None:
    engine = Engine(info(A, "web1"))
    mirror = await fresh_mirror(engine)
    hosting = hosting_on(engine, mirror)
    for n in range(hosting_module.LISTINGS_KEPT + 10):
        await asked(hosting, f"id=web1&id={'web1' * (n % 3)}x{n}")  # x<n>: not found, not kept
        await asked(hosting, f"id=web1&id=/web1&id={A[: 12 + n % 40]}" + "&id=web1" * n)
    assert len(hosting._listings) == hosting_module.LISTINGS_KEPT  # the oldest went
    many = "&".join(f"id={A[:12]}{'/' * n}" for n in range(40))  # (an answer too long to keep)
    await asked(hosting, "id=web1&" + "&".join(f"id=/{'/' * n}web1" for n in range(40)))
    await asked(hosting, many)
    assert all(
        len(key) + len(body) <= hosting_module.LISTING_KEPT_MAX_BYTES
        for key, (_, body) in hosting._listings.items()
    )


async def test_every_containers_listing_is_kept_until_the_mirror_changes() -> None:
    engine = Engine(info(A, "web1"), info(B, "web2", running=False))
    mirror = await fresh_mirror(engine)
    hosting = hosting_on(engine, mirror)

    async def check(running: bool | None) -> bytes:
        body = await hosting.full_listing_json(running)
        assert body == orjson.dumps(await hosting.list_containers(None, running))
        return body

    every, only_running = await check(None), await check(True)
    assert set(orjson.loads(every)["success"]) == {A, B}
    assert set(orjson.loads(only_running)["success"]) == {A}
    assert await hosting.full_listing_json(None) is every  # kept: the same bytes
    assert await hosting.full_listing_json(True) is only_running

    engine.containers.engine[B] = info(B, "web2", running=True)
    await mirror.refresh(B)
    assert set(orjson.loads(await check(True))["success"]) == {A, B}
    assert await hosting.full_listing_json(None) is not every

    # A mirror that is not fresh (the engine is read instead): nothing is kept.
    mirror._fresh = False
    made = await check(None)
    assert await hosting.full_listing_json(None) is not made
