"""Webhooks against a real HTTP receiver on loopback: every event once, in order, signed; nothing
lost while the receiver is down, nor when ``dockerlink serve`` is killed with deliveries pending;
``dockerlink check`` tries the URL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import TEST_IMAGE, create_container, serve_app, wait_for
from ..dockerlink_process import DockerlinkProcess
from ..unit.test_cli import run_cli
from ..webhook_receiver import WebhookReceiver
from .test_events import events_of, until_event
from .test_metrics import of, scrape

SECRET = "webhook-secret-for-tests-0123456789"
#: How long the receiver stays down (the deliveries meanwhile fail and are retried).
DOWN_S = 6.0


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()


def received_for(receiver: WebhookReceiver, container_id: str) -> list[str]:
    return [str(e["event_id"]) for e in receiver.events() if e["id"] == container_id]


async def until_received(
    receiver: WebhookReceiver, container_id: str, expected: list[str], timeout: float = 30
) -> None:
    """Wait until every expected event of the container arrived; then each came once, in order."""
    await wait_for(
        lambda: set(expected) <= set(received_for(receiver, container_id)),
        timeout=timeout,
        interval=0.05,
    )
    assert received_for(receiver, container_id) == expected
    every = receiver.event_ids()
    assert len(every) == len(set(every)), "an event was delivered twice"
    receiver.check_signatures(SECRET)


async def test_events_arrive_once_in_order_signed_and_survive_a_receiver_outage(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    receiver: WebhookReceiver,
) -> None:
    receiver.start()
    settings = replace(
        engine_settings,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        webhook_retry_delay=0.2,
        webhook_timeout=5,
    )
    async with serve_app(settings) as (app, api):
        assert await app.ctx.mirror.wait_fresh(timeout=10)
        container_id = await create_container(api, docker, cleanup, unique_name("hook"))
        for action in ("start", "restart", "stop"):
            answer = await api.post(
                f"/v1/container/{action}", params={"id": container_id, "t": "0"}
            )
            assert answer.status_code == 204, answer.text
        events = await until_event(api, container_id, "stop", count=2)
        kinds = [event["type"] for event in events]
        assert kinds == ["create", "start", "die", "stop", "start", "restart", "die", "stop"]
        await until_received(receiver, container_id, [e["event_id"] for e in events])
        first = receiver.events()[-1]
        assert set(first) >= {"time", "id", "name", "type", "event_id"}

        # The receiver goes down; events keep happening and their deliveries fail.
        receiver.stop()
        outbox = app.ctx.lifecycle.outbox
        failures_before = outbox.failures
        down_since = asyncio.get_running_loop().time()
        started = await api.post("/v1/container/start", params={"id": container_id})
        assert started.status_code == 204, started.text
        stopped = await api.post("/v1/container/stop", params={"id": container_id, "t": "0"})
        assert stopped.status_code == 204, stopped.text
        events = await until_event(api, container_id, "stop", count=3)
        await wait_for(
            lambda: (
                outbox.failures >= failures_before + 3
                and asyncio.get_running_loop().time() - down_since >= DOWN_S
            ),
            timeout=DOWN_S + 30,
        )
        assert outbox.pending >= 3  # start, die, stop (and anything else on the engine) wait
        samples = await scrape(api)
        assert (of(samples, "dockerlink_webhook_failures_total") or 0) >= 3
        receiver.start()
        await until_received(receiver, container_id, [e["event_id"] for e in events])
        await wait_for(lambda: outbox.pending == 0, timeout=30)
        samples = await scrape(api)
        assert of(samples, "dockerlink_webhook_queue_length") == 0
        assert (of(samples, "dockerlink_webhook_deliveries_total") or 0) >= len(events)


async def test_deliveries_pending_at_a_kill_9_arrive_after_the_restart(
    engine_sock: str,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    server = DockerlinkProcess(
        tmp_path,
        {
            "docker_sock": engine_sock,
            "base_image": TEST_IMAGE,
            "data_dir": str(tmp_path / "data"),
            "webhook_url": receiver.url,  # not listening yet
            "webhook_secret": SECRET,
            "webhook_retry_delay": "0.2",
        },
    )
    try:
        server.start()
        await server.until_healthy()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
            container_id = await create_container(api, docker, cleanup, unique_name("kill9"))
            started = await api.post("/v1/container/start", params={"id": container_id})
            assert started.status_code == 204, started.text
            events = await until_event(api, container_id, "start")

            async def queued() -> bool:
                return (of(await scrape(api), "dockerlink_webhook_queue_length") or 0) >= 2

            await wait_for(queued, timeout=10)
            server.kill()
            receiver.start()
            server.start()
            await server.until_healthy()
            await until_received(receiver, container_id, [e["event_id"] for e in events])
            assert await events_of(api, container_id) == events  # nothing recorded twice
    finally:
        server.stop()
    assert "queued before the restart to deliver" in server.log_text()


def test_check_posts_a_signed_test_event(
    engine_sock: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    # A receiver behind basic authentication: its password is never shown.
    password = "hook-password-0123"
    url = receiver.url.replace("http://", f"http://panel:{password}@", 1)
    shown = receiver.url.replace("http://", "http://panel:***@", 1)
    env = {
        "DOCKERLINK_DOCKER_SOCK": engine_sock,
        "DOCKERLINK_DATA_DIR": str(tmp_path),
        "DOCKERLINK_WEBHOOK_URL": url,
        "DOCKERLINK_WEBHOOK_SECRET": SECRET,
    }
    down = run_cli("check", cwd=tmp_path, env=env)
    assert down.returncode == 1, down.stdout
    assert f"webhook: PROBLEM: {shown} is unreachable" in down.stdout
    assert "  webhook_secret = (set, hidden)" in down.stdout
    assert f"  webhook_url = {shown}" in down.stdout
    assert SECRET not in down.stdout + down.stderr
    assert password not in down.stdout + down.stderr

    receiver.start()
    up = run_cli("check", cwd=tmp_path, env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"webhook: ok: {shown} answered 204 to a signed test event" in up.stdout
    assert password not in up.stdout + up.stderr
    [test_event] = receiver.events()
    assert test_event["type"] == "test"
    receiver.check_signatures(SECRET)
