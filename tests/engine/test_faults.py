"""Engine faults: stop the engine under a serving dockerlink, then start it again.

While the engine is down every route that needs it answers 503 within ``docker_timeout`` (no
hang), /health says degraded, and the background tasks (sampler, mirror) log and carry on. When
the engine is back, everything recovers without restarting dockerlink. A second, private engine
is used (tests/engines.py), so the shared test engine is never stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from dockerlink.settings import Settings

from ..conftest import TEST_IMAGE, serve_app, wait_for
from ..engines import SecondEngine, require_second_engine

DOCKER_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def second_engine(engine_sock: str) -> Iterator[SecondEngine]:
    require_second_engine()
    engine = SecondEngine("fault")
    try:
        engine.start()
        engine.load_image(TEST_IMAGE, engine_sock)
        yield engine
    finally:
        engine.destroy()


def requests_for(container_id: str, name: str) -> list[tuple[str, str, dict[str, str], Any]]:
    """One request for every route that needs the engine."""
    target = {"id": name}
    return [
        ("GET", "/v1/container", {}, None),
        ("GET", "/v1/container", target, None),
        (
            "PUT",
            "/v1/container",
            {},
            {"name": "dltest-fault-new", "host_port_root": 40000, "memory": 0.25, "cpulimit": 0.5},
        ),
        ("PATCH", "/v1/container", target, {"memory": 0.5}),
        ("DELETE", "/v1/container", target, None),
        ("POST", "/v1/container/start", target, None),
        ("POST", "/v1/container/stop", target, None),
        ("POST", "/v1/container/restart", target, None),
        ("GET", "/v1/container/stats", {"id": name}, None),
        ("GET", "/v1/git", target, None),
        ("PUT", "/v1/git", target, None),
        ("GET", "/v1/git/head", target, None),
        ("GET", "/v1/git/branches", target, None),
        ("GET", "/v1/git/branch", target, None),
        ("POST", "/v1/git/branch", {**target, "branch": "main"}, None),
    ]


async def test_engine_outage_and_recovery(
    second_engine: SecondEngine, engine_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = replace(
        engine_settings, docker_sock=second_engine.sock, docker_timeout=DOCKER_TIMEOUT_S
    )
    async with serve_app(settings) as (app, api):
        name = "dltest-fault"
        created = await api.put(
            "/v1/container",
            json={"name": name, "host_port_root": 30000, "memory": 0.25, "cpulimit": 0.5},
        )
        assert created.status_code == 200, created.text
        container_id = created.json()["Id"]
        assert (await api.post("/v1/container/start", params={"id": name})).status_code == 204

        async def sampled_since(moment: float) -> bool:
            response = await api.get("/v1/container/stats", params={"id": container_id})
            return response.status_code == 200 and any(int(ts) > moment for ts in response.json())

        await wait_for(lambda: sampled_since(time.time() - 1), timeout=15)

        # -- the engine goes away ---------------------------------------------------------------
        await asyncio.to_thread(second_engine.stop)
        for method, path, params, body in requests_for(container_id, name):
            started = time.monotonic()
            response = await api.request(method, path, params=params, json=body)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, (method, path, response.status_code, response.text)
            assert response.text.startswith("docker engine unavailable: "), (method, path)
            assert elapsed < DOCKER_TIMEOUT_S + 2, (method, path, elapsed)
        # History already on disk is still served by full id, without the engine.
        stored = await api.get("/v1/container/stats", params={"id": container_id})
        assert stored.status_code == 200
        assert len(stored.json()) >= 1
        health = await api.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
        assert health.json()["engine"] is None
        assert (await api.get("/v1/env")).status_code == 200  # needs no engine
        await asyncio.sleep(settings.sample_interval * 2)  # the sampler meets the outage
        for task in app.ctx.tasks.values():
            assert not task.done(), f"{task.get_name()} died during the outage"

        # -- the engine comes back ----------------------------------------------------------------
        await asyncio.to_thread(second_engine.start)
        back_at = time.time()

        async def healthy() -> bool:
            return (await api.get("/health")).status_code == 200

        await wait_for(healthy, timeout=20)
        await wait_for(lambda: app.ctx.mirror.fresh, timeout=20)
        listing = await api.get("/v1/container", params={"id": name})
        assert listing.status_code == 200
        # The engine's restart stopped the container; start it again through the API.
        assert listing.json()["success"][name]["state"] == "exited"
        assert (await api.post("/v1/container/start", params={"id": name})).status_code == 204
        await wait_for(lambda: sampled_since(back_at), timeout=20)
        for task in app.ctx.tasks.values():
            assert not task.done(), f"{task.get_name()} died during the outage"
        assert (
            await api.post("/v1/container/stop", params={"id": name, "t": "0"})
        ).status_code == 204
        assert (await api.delete("/v1/container", params={"id": name})).status_code == 204
    assert "stats sampler: cannot list containers" in caplog.text
    assert "stats sampler: the engine answers again" in caplog.text
