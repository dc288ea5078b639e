"""``GET /metrics`` against the real engine, read with prometheus-client's own parser and checked
against the engine's figures for a container that holds 32 MiB in /dev/shm and burns CPU."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import TEST_TOKEN, serve_app, wait_for
from ._api import create_and_start

MIB = 1 << 20
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def of(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def memory_used(stats: dict[str, Any]) -> int:
    """What ``docker stats`` shows: usage minus the inactive file cache (cgroup v1 or v2)."""
    memory = stats["memory_stats"]
    inactive = memory["stats"].get("total_inactive_file", memory["stats"].get("inactive_file", 0))
    return int(memory["usage"]) - int(inactive)


def networks(stats: dict[str, Any]) -> tuple[int, int]:
    interfaces = (stats.get("networks") or {}).values()
    return sum(i["rx_bytes"] for i in interfaces), sum(i["tx_bytes"] for i in interfaces)


async def test_metrics_match_the_engines_own_figures(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    settings = replace(engine_settings, api_token=TEST_TOKEN)
    async with serve_app(settings) as (app, client):
        name = unique_name("metrics")
        container_id = await create_and_start(
            client,
            docker,
            cleanup,
            name,
            memory=0.25,
            cpulimit=0.5,
            commands=[
                "dd if=/dev/zero of=/dev/shm/fill bs=1M count=32",
                "{ while :; do :; done & }",
            ],
        )
        ids = {"id": container_id, "name": name}
        sampler = app.ctx.sampler

        async def filled() -> Samples | None:
            samples = await scrape(client)
            used = of(samples, "dockerlink_container_memory_used_bytes", **ids)
            cpu = of(samples, "dockerlink_container_cpu_seconds_total", **ids)
            return samples if used and used >= 32 * MIB and cpu else None

        await wait_for(filled, timeout=30, interval=0.5)

        # Engine figures before and after one whole tick of the sampler bracket its readings.
        before = await docker.containers.stats(container_id)
        ticks = sampler.ticks
        await wait_for(lambda: sampler.ticks >= ticks + 2, timeout=20)
        samples = await scrape(client)
        after = await docker.containers.stats(container_id)
        info = await docker.containers.inspect(container_id)

        host_config = info["HostConfig"]
        assert (
            of(samples, "dockerlink_container_memory_limit_bytes", **ids) == host_config["Memory"]
        )
        assert host_config["Memory"] == 256 * MIB
        cores = host_config["CpuQuota"] / host_config["CpuPeriod"]
        assert of(samples, "dockerlink_container_cpu_limit_cores", **ids) == cores == 0.5

        used = of(samples, "dockerlink_container_memory_used_bytes", **ids)
        assert used is not None
        engine_used = memory_used(after)
        assert abs(used - engine_used) <= engine_used / 10, (used, engine_used)

        cpu_s = of(samples, "dockerlink_container_cpu_seconds_total", **ids)
        assert cpu_s is not None
        cpu_before = before["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
        cpu_after = after["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
        assert 0 < cpu_before <= cpu_s <= cpu_after, (cpu_before, cpu_s, cpu_after)

        rx, tx = (
            of(samples, "dockerlink_container_network_receive_bytes_total", **ids),
            of(samples, "dockerlink_container_network_transmit_bytes_total", **ids),
        )
        assert rx is not None
        assert tx is not None
        (rx_before, tx_before), (rx_after, tx_after) = networks(before), networks(after)
        assert 0 <= rx_before <= rx <= rx_after
        assert 0 <= tx_before <= tx <= tx_after

        state = info["State"]["Status"]
        assert state == "running"
        assert of(samples, "dockerlink_container_state", **ids, state="running") == 1
        assert of(samples, "dockerlink_container_state", **ids, state="exited") == 0
        assert of(samples, "dockerlink_engine_up") == 1
        # The running container's five files kept open by the sampler, and its raw history file.
        assert (of(samples, "dockerlink_stats_open_files", holder="cgroups") or 0) >= 5
        assert (of(samples, "dockerlink_stats_open_files", holder="history") or 0) >= 1
        open_fds = of(samples, "process_open_fds")
        assert open_fds is not None
        assert open_fds >= 6

        # CPU time keeps adding up between two scrapes.
        async def more_cpu() -> bool:
            later = of(await scrape(client), "dockerlink_container_cpu_seconds_total", **ids)
            return later is not None and later > cpu_s

        await wait_for(more_cpu, timeout=20, interval=0.5)

        # Requests are counted by route pattern (the query string is not part of it).
        listing = {"method": "GET", "route": "/v1/container", "status": "200"}
        stats_route = {"method": "GET", "route": "/v1/container/stats", "status": "200"}
        first = await scrape(client)
        for _ in range(3):
            assert (await client.get("/v1/container")).status_code == 200
        response = await client.get("/v1/container/stats", params={"id": container_id})
        assert response.status_code == 200
        second = await scrape(client)
        requests = "dockerlink_http_requests_total"
        assert of(second, requests, **listing) == (of(first, requests, **listing) or 0) + 3
        assert of(second, requests, **stats_route) == (of(first, requests, **stats_route) or 0) + 1
        durations = "dockerlink_http_request_duration_seconds_count"
        route = {"method": "GET", "route": "/v1/container"}
        assert of(second, durations, **route) == (of(first, durations, **route) or 0) + 3
        assert (of(second, "dockerlink_sampler_tick_duration_seconds_count") or 0) >= 2
        assert of(second, "dockerlink_sampler_errors_total") is not None

        # The state follows the container.
        stopped = await client.post("/v1/container/stop", params={"id": container_id, "t": 0})
        assert stopped.status_code == 204

        async def exited() -> bool:
            samples = await scrape(client)
            return (
                of(samples, "dockerlink_container_state", **ids, state="exited") == 1
                and of(samples, "dockerlink_container_state", **ids, state="running") == 0
            )

        await wait_for(exited, timeout=20, interval=0.2)
        assert (await docker.containers.inspect(container_id))["State"]["Status"] == "exited"


async def test_metrics_need_the_token_unless_metrics_public(engine_settings: Settings) -> None:
    settings = replace(engine_settings, api_token=TEST_TOKEN)
    for public in (False, True):
        async with serve_app(replace(settings, metrics_public=public)) as (_app, client):
            async with httpx.AsyncClient(base_url=str(client.base_url)) as bare:
                response = await bare.get("/metrics")
                assert (await bare.get("/v1/container")).status_code == 401
            if public:
                assert response.status_code == 200
                samples = await scrape(client)  # with the token too
                assert of(samples, "dockerlink_engine_up") == 1
            else:
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == "Bearer"
                assert (await client.get("/metrics")).status_code == 200
