"""``GET /v1/container/stats`` against the real engine, sampled every second (engine_settings).

Figures are checked against work of a known size done inside test containers: a busy loop under
a half-CPU quota, 64 MiB written to ``/dev/shm``, 10 MiB sent from one container to another.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import wait_for

MIB_IN_GIB = 1 / 1024
KIB_10_MIB = 10 * 1024
Series = list[tuple[int, dict[str, Any]]]


async def history(api: httpx.AsyncClient, ref: str, **params: Any) -> Series:
    """The answer as (timestamp, point) pairs, checked to be oldest first."""
    response = await api.get("/v1/container/stats", params={"id": ref, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = orjson.loads(response.content)
    points = [(int(key), value) for key, value in body.items()]
    assert [t for t, _ in points] == sorted(t for t, _ in points)
    return points


async def samples_after(api: httpx.AsyncClient, ref: str, t: float, count: int) -> Series:
    """Wait for at least ``count`` samples taken after ``t``; returns them."""

    async def enough() -> Series | None:
        points = [p for p in await history(api, ref) if p[0] > t]
        return points if len(points) >= count else None

    result: Series = await wait_for(enough, timeout=30, interval=0.5)
    return result


async def start(api: httpx.AsyncClient, container_id: str) -> float:
    """Start through the API; returns the time just before (unix seconds)."""
    before = time.time()
    response = await api.post("/v1/container/start", params={"id": container_id})
    assert response.status_code == 204, response.text
    return before


async def test_cpu_under_a_half_cpu_limit(
    api: httpx.AsyncClient, make_container: Callable[..., Any]
) -> None:
    container_id = await make_container(cpulimit=0.5, commands=["{ while :; do :; done & }"])
    started = await start(api, container_id)
    points = await samples_after(api, container_id, started + 2, 6)
    percents = [point["cpu"]["usage_percent"] for _, point in points[-5:]]
    assert 40 <= statistics.median(percents) <= 60, percents
    assert {point["cpu"]["limit"] for _, point in points} == {50.0}


async def test_memory_written_to_dev_shm(
    api: httpx.AsyncClient, make_container: Callable[..., Any]
) -> None:
    container_id = await make_container(
        memory=0.25, commands=["dd if=/dev/zero of=/dev/shm/fill bs=1M count=64"]
    )
    started = await start(api, container_id)

    async def filled() -> bool:
        points = await history(api, container_id, since=int(started))
        return any(point["memory"]["used"] >= 50 * MIB_IN_GIB for _, point in points)

    await wait_for(filled, timeout=30, interval=0.5)
    points = await samples_after(api, container_id, time.time(), 3)
    for _, point in points:
        assert abs(point["memory"]["used"] - 64 * MIB_IN_GIB) <= 6.4 * MIB_IN_GIB, point
        assert point["memory"]["limit"] == 0.25


async def test_ten_mib_between_two_containers(
    api: httpx.AsyncClient, make_container: Callable[..., Any], docker: DockerClient
) -> None:
    sender = await make_container(
        commands=[
            "mkdir -p /tmp/www",
            "dd if=/dev/zero of=/tmp/www/blob bs=1M count=10",
            "httpd -p 8080 -h /tmp/www",
        ]
    )
    receiver = await make_container()
    started = max([await start(api, sender), await start(api, receiver)])
    info = await docker.containers.inspect(sender)
    address = next(iter(info["NetworkSettings"]["Networks"].values()))["IPAddress"]
    assert address

    before_sender = (await samples_after(api, sender, started + 1, 1))[-1]
    before_receiver = (await samples_after(api, receiver, started + 1, 1))[-1]
    result = await docker.execs.run(
        receiver, ["wget", "-q", "-O", "/dev/null", f"http://{address}:8080/blob"], timeout=60
    )
    assert result.exit_code == 0, result.text()
    done = time.time()
    after_sender = (await samples_after(api, sender, done + 1, 1))[-1]
    after_receiver = (await samples_after(api, receiver, done + 1, 1))[-1]

    sent = after_sender[1]["net"]["up"] - before_sender[1]["net"]["up"]
    received = after_receiver[1]["net"]["down"] - before_receiver[1]["net"]["down"]
    assert abs(sent - KIB_10_MIB) <= KIB_10_MIB / 10, sent
    assert abs(received - KIB_10_MIB) <= KIB_10_MIB / 10, received
    # The deltas of the samples in between add up to the same traffic.
    between = await history(api, sender, since=before_sender[0])
    assert sum(p["net"]["delta_up"] for t, p in between if t <= after_sender[0]) == sent
    between = await history(api, receiver, since=before_receiver[0])
    assert sum(p["net"]["delta_down"] for t, p in between if t <= after_receiver[0]) == received


async def test_a_stopped_container_gets_zero_samples_with_its_limits(
    api: httpx.AsyncClient, make_container: Callable[..., Any]
) -> None:
    container_id = await make_container(memory=0.25, cpulimit=0.5)
    zero = {"memory": {"used": 0.0, "limit": 0.25}, "cpu": {"usage_percent": 0.0, "limit": 50.0}}
    zero_net = {"up": 0, "down": 0, "delta_up": 0, "delta_down": 0}
    # Never started: the first request gets a sample on the spot, then the sampler adds more.
    first = await history(api, container_id)
    assert len(first) >= 1
    points = await samples_after(api, container_id, first[-1][0], 2)
    for _, point in first + points:
        assert point == {**zero, "net": zero_net}

    started = await start(api, container_id)
    running = await samples_after(api, container_id, started + 1, 2)
    assert running[-1][1]["memory"]["used"] > 0
    stopping = time.time()
    response = await api.post("/v1/container/stop", params={"id": container_id, "t": 0})
    assert response.status_code == 204
    stopped = await samples_after(api, container_id, time.time() + 1, 2)
    for _, point in stopped:
        assert point == {**zero, "net": zero_net}
    # Stopping keeps the history taken while it ran.
    kept = {t for t, _ in await history(api, container_id)}
    assert {t for t, _ in running} <= kept
    assert any(t < stopping for t in kept)


async def test_since_and_scale(api: httpx.AsyncClient, make_container: Callable[..., Any]) -> None:
    container_id = await make_container()
    started = await start(api, container_id)
    await samples_after(api, container_id, started, 5)
    instant = await history(api, container_id)
    middle = instant[len(instant) // 2][0]

    later = await history(api, container_id, since=middle)
    assert later
    assert all(t > middle for t, _ in later)
    expected = [p for p in instant if p[0] > middle]
    assert later[: len(expected)] == expected

    for other in ("hour", "4hours", "instant", "nonsense"):
        answer = await history(api, container_id, scale=other)
        assert answer[: len(instant)] == instant, other

    day = await history(api, container_id, scale="day")
    week = await history(api, container_id, scale="week")
    assert day
    assert week
    assert len({t // 120 for t, _ in day}) == len(day)
    assert len({t // 1200 for t, _ in week}) == len(week)
    assert day[-1][0] >= instant[-1][0]  # the open bucket ends with the latest sample
    newer = await history(api, container_id, scale="week", since=week[-1][0])
    assert all(t > week[-1][0] for t, _ in newer)


async def test_bad_requests(api: httpx.AsyncClient, make_container: Callable[..., Any]) -> None:
    response = await api.get("/v1/container/stats")
    assert response.status_code == 400
    assert "id" in response.text
    container_id = await make_container()
    response = await api.get("/v1/container/stats", params={"id": container_id, "since": "x"})
    assert response.status_code == 400
    assert "since" in response.text
    response = await api.get("/v1/container/stats", params={"id": "dltest-no-such-container"})
    assert response.status_code == 404
    assert response.text == "no such container: dltest-no-such-container\n"


async def test_delete_through_the_api_deletes_the_history_removal_behind_our_back_keeps_it(
    api: httpx.AsyncClient,
    make_container: Callable[..., Any],
    docker: DockerClient,
    engine_settings: Settings,
) -> None:
    deleted = await make_container()
    removed = await make_container()
    await samples_after(api, deleted, 0, 2)
    kept = await samples_after(api, removed, 0, 2)
    stats_dir = Path(engine_settings.data_dir) / "stats"
    assert (stats_dir / deleted).is_dir()

    response = await api.delete("/v1/container", params={"id": deleted})
    assert response.status_code == 204
    response = await api.get("/v1/container/stats", params={"id": deleted})
    assert response.status_code == 404

    async def history_gone() -> bool:
        return not (stats_dir / deleted).exists()

    # The store's one writer thread removes the files, off the event loop.
    assert await wait_for(history_gone, timeout=10)

    await docker.containers.remove(removed, force=True)
    served = await history(api, removed)
    assert [t for t, _ in kept] == [t for t, _ in served[: len(kept)]]
    assert await history(api, removed[:16]) == served  # a unique prefix finds it too
    assert (stats_dir / removed).is_dir()
