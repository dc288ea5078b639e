"""``/metrics`` and ``/`` without an engine: the text format (read back with prometheus-client's
parser), the sampler's cumulative figures and failure counts, auth, and the dashboard's policy."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import resource
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sanic_testing.testing import SanicASGITestClient

import docker_api
from docker_api import DockerClient
from dockerlink.app import create_app
from dockerlink.mirror import ContainerMirror
from dockerlink.prometheus import CONTAINER_STATES, ServiceMetrics, render_metrics
from dockerlink.settings import Settings
from dockerlink.stats import Sample
from dockerlink.stats.sampler import Usage
from dockerlink.stats.store import HistoryStore

from ..conftest import wait_for
from .clock import Clock
from .test_stats_sampler import GIB, MIB, SECOND_NS, FakeContainer, FakeDockerClient, make_sampler

TOKEN = "unit-test-token-0123456789"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Family types by name, and every sample by (name, sorted labels), via the real parser."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
    return types, samples


def labels(**given: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(given.items()))


# -- the format ----------------------------------------------------------------------------------


class FakeHistory:
    def __init__(self, samples: dict[str, Sample]) -> None:
        self.samples = samples
        self.open_files = 7

    def last(self, container_id: str) -> Sample | None:
        return self.samples.get(container_id)


class FakeSampler:
    def __init__(self, usage: dict[str, Usage], errors: int = 0) -> None:
        self.usage, self.errors = usage, errors
        self.ticks, self.late_ticks, self.max_lateness_s = 40, 1, 1.25
        self.open_files = 10


def inspect_of(n: int, name: str, status: str, **host_config: Any) -> dict[str, Any]:
    return {
        "Id": f"{n:02x}" * 32,
        "Name": f"/{name}",
        "State": {"Status": status},
        "HostConfig": host_config,
    }


def engine_answering(infos: list[dict[str, Any]] | None) -> DockerClient:
    """A client whose engine lists and inspects ``infos``, or refuses every call when None."""

    def answer(request: httpx.Request) -> httpx.Response:
        if infos is None:
            raise httpx.ConnectError("connection refused")
        path = request.url.path
        if path == "/_ping":
            return httpx.Response(200, text="OK", headers={"Api-Version": "1.41"})
        if path.endswith("/version"):
            return httpx.Response(200, json={"Version": "20.10.24", "MinAPIVersion": "1.12"})
        if path.endswith("/containers/json"):
            return httpx.Response(200, json=[{"Id": info["Id"]} for info in infos])
        for info in infos:
            if path.endswith(f"/containers/{info['Id']}/json"):
                return httpx.Response(200, json=info)
        return httpx.Response(404, json={"message": "not found"})

    return DockerClient("/fake.sock", timeout=2, transport=httpx.MockTransport(answer))


async def scrape(
    infos: list[dict[str, Any]] | None,
    history: dict[str, Sample],
    usage: dict[str, Usage],
    service: ServiceMetrics,
    errors: int = 0,
) -> str:
    async with engine_answering(infos) as docker:
        fake_history: Any = FakeHistory(history)
        fake_sampler: Any = FakeSampler(usage, errors)
        return await render_metrics(
            docker=docker,
            mirror=ContainerMirror(docker),  # not following the engine: it lists and inspects
            history=fake_history,
            sampler=fake_sampler,
            service=service,
        )


async def test_container_figures_and_own_instruments_read_back_exactly() -> None:
    web = inspect_of(1, "web1", "running", Memory=256 * MIB, CpuPeriod=10_000, CpuQuota=15_000)
    odd = inspect_of(2, 'odd"name\\x', "weird-state", Memory=0, NanoCpus=0)
    stopped = inspect_of(3, "stopped", "exited", Memory=GIB, NanoCpus=2_000_000_000)
    history = {
        web["Id"]: Sample(1, 51_200, 256 * MIB, 4200, 15_000, 3, 9, 1, 1),
        stopped["Id"]: Sample(1, 0, GIB, 0, 20_000, 0, 0, 0, 0),
    }
    usage = {web["Id"]: Usage(cpu_ns=12_345_678_901, rx_bytes=9_999, tx_bytes=3_001)}
    service = ServiceMetrics()
    service.observe_requests([("GET", "/v1/container", 200, 0.003)])
    service.observe_requests([("GET", "/v1/container", 200, 0.2)])
    service.observe_requests([("GET", "/v1/container", 503, 31.0)])
    service.observe_requests([("PUT", 'we"ird\\\nroute', 400, 1000.0)])
    service.observe_tick(0.9)
    service.observe_tick(1.2)

    types, samples = parse(await scrape([web, odd, stopped], history, usage, service, errors=4))

    web_labels = {"id": web["Id"], "name": "web1"}
    assert types["dockerlink_container_memory_used_bytes"] == "gauge"
    assert types["dockerlink_container_cpu_seconds"] == "counter"
    assert samples["dockerlink_container_memory_used_bytes", labels(**web_labels)] == 51_200 * 1024
    assert samples["dockerlink_container_memory_limit_bytes", labels(**web_labels)] == 256 * MIB
    assert samples["dockerlink_container_cpu_limit_cores", labels(**web_labels)] == 1.5
    assert samples["dockerlink_container_cpu_seconds_total", labels(**web_labels)] == 12.345678901
    assert samples["dockerlink_container_network_receive_bytes_total", labels(**web_labels)] == 9999
    assert (
        samples["dockerlink_container_network_transmit_bytes_total", labels(**web_labels)] == 3001
    )
    for state in CONTAINER_STATES:
        key = ("dockerlink_container_state", labels(**web_labels, state=state))
        assert samples[key] == (1 if state == "running" else 0)
    # A name that needs escaping, a state the engine may add one day, no limits, never sampled.
    odd_labels = {"id": odd["Id"], "name": 'odd"name\\x'}
    assert samples["dockerlink_container_state", labels(**odd_labels, state="weird-state")] == 1
    assert samples["dockerlink_container_state", labels(**odd_labels, state="running")] == 0
    assert samples["dockerlink_container_memory_limit_bytes", labels(**odd_labels)] == 0
    assert samples["dockerlink_container_cpu_limit_cores", labels(**odd_labels)] == 0
    assert ("dockerlink_container_memory_used_bytes", labels(**odd_labels)) not in samples
    assert ("dockerlink_container_cpu_seconds_total", labels(**odd_labels)) not in samples
    stopped_labels = labels(id=stopped["Id"], name="stopped")
    assert samples["dockerlink_container_cpu_limit_cores", stopped_labels] == 2
    assert samples["dockerlink_container_memory_used_bytes", stopped_labels] == 0

    get = {"method": "GET", "route": "/v1/container"}
    assert types["dockerlink_http_requests"] == "counter"
    assert samples["dockerlink_http_requests_total", labels(**get, status="200")] == 2
    assert samples["dockerlink_http_requests_total", labels(**get, status="503")] == 1
    weird = {"method": "PUT", "route": 'we"ird\\\nroute'}
    assert samples["dockerlink_http_requests_total", labels(**weird, status="400")] == 1
    assert types["dockerlink_http_request_duration_seconds"] == "histogram"
    bucket = "dockerlink_http_request_duration_seconds_bucket"
    assert samples[bucket, labels(**get, le="0.005")] == 1
    assert samples[bucket, labels(**get, le="0.25")] == 2
    assert samples[bucket, labels(**get, le="30.0")] == 2
    assert samples[bucket, labels(**get, le="60.0")] == 3
    assert samples[bucket, labels(**get, le="+Inf")] == 3
    assert samples[bucket, labels(**weird, le="300.0")] == 0
    assert samples[bucket, labels(**weird, le="+Inf")] == 1
    assert samples["dockerlink_http_request_duration_seconds_count", labels(**get)] == 3
    assert samples["dockerlink_http_request_duration_seconds_sum", labels(**get)] == 31.203
    tick = "dockerlink_sampler_tick_duration_seconds"
    assert samples[f"{tick}_bucket", labels(le="1.0")] == 1
    assert samples[f"{tick}_bucket", labels(le="2.0")] == 2
    assert samples[f"{tick}_count", ()] == 2
    assert samples["dockerlink_sampler_errors_total", ()] == 4
    assert samples["dockerlink_sampler_ticks_total", ()] == 40
    assert samples["dockerlink_sampler_late_ticks_total", ()] == 1
    assert samples["dockerlink_sampler_max_lateness_seconds", ()] == 1.25
    assert samples["dockerlink_engine_up", ()] == 1
    assert samples["dockerlink_stats_open_files", labels(holder="cgroups")] == 10
    assert samples["dockerlink_stats_open_files", labels(holder="history")] == 7
    assert types["process_open_fds"] == types["process_max_fds"] == "gauge"
    assert 3 <= samples["process_open_fds", ()] <= samples["process_max_fds", ()]
    assert samples["process_max_fds", ()] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def test_an_unreachable_engine_is_engine_up_0_and_no_container_series() -> None:
    service = ServiceMetrics()
    service.observe_requests([("GET", "/health", 503, 0.01)])
    text = await scrape(None, {}, {"x": Usage(1, 2, 3)}, service)
    types, samples = parse(text)
    assert samples["dockerlink_engine_up", ()] == 0
    assert not [key for key in samples if key[0].startswith("dockerlink_container_")]
    assert "dockerlink_container_state" in types  # the families are still described
    assert (
        samples[
            "dockerlink_http_requests_total", labels(method="GET", route="/health", status="503")
        ]
        == 1
    )


# -- the sampler's side ----------------------------------------------------------------------------


async def test_the_sampler_keeps_exact_cumulative_figures(
    store: HistoryStore, clock: Clock
) -> None:
    box = FakeContainer(1)
    box.advance(100, cpus=0.25, tx=1_500, rx=70_001)  # not whole KiB: the history rounds, this not
    engine = FakeDockerClient(box)
    sampler = make_sampler(engine, store, clock)
    await sampler.tick()
    assert sampler.usage[box.id] == Usage(cpu_ns=25 * SECOND_NS, rx_bytes=70_001, tx_bytes=1_500)

    box.running = False
    clock.now += 15
    await sampler.tick()
    assert sampler.usage[box.id] == Usage(0, 0, 0)  # as the history: no usage while stopped

    del engine.boxes[box.id]
    clock.now += 15
    await sampler.tick()
    assert box.id not in sampler.usage
    engine.boxes[box.id] = box
    await sampler.tick()
    await sampler.forget(box.id)
    assert box.id not in sampler.usage


async def test_the_sampler_counts_failures_and_reports_every_tick(
    store: HistoryStore, clock: Clock
) -> None:
    good, bad = FakeContainer(1), FakeContainer(2)
    engine = FakeDockerClient(good, bad)
    engine.list_failures = 1  # the first tick cannot list
    engine.broken[bad.id] = docker_api.EngineTimeout("too slow")  # every tick fails on this one
    sampler = make_sampler(engine, store, clock, interval_s=0.01)
    durations: list[float] = []
    sampler.tick_hooks.append(durations.append)
    task = asyncio.create_task(sampler.run())
    try:
        await wait_for(lambda: sampler.ticks >= 3, timeout=5, interval=0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(durations) >= sampler.ticks + 1  # the failed tick is reported too
    assert all(0 <= d < 5 for d in durations)
    assert sampler.errors == 1 + sampler.ticks  # one list failure, then one container a tick


# -- the routes ------------------------------------------------------------------------------------


def serving(settings: Settings) -> SanicASGITestClient:
    return SanicASGITestClient(create_app(settings, docker=engine_answering([])))


async def test_metrics_need_the_token_unless_metrics_public(tmp_path: Path) -> None:
    settings = Settings(docker_sock="/fake.sock", api_token=TOKEN, data_dir=tmp_path)
    client = serving(settings)
    _, refused = await client.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    await client.get("/v1/env", headers=auth)
    await client.get("/v1/nothing/here", headers=auth)
    _, answer = await client.get("/metrics", headers=auth)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    _, samples = parse(answer.text)
    requests = "dockerlink_http_requests_total"
    assert samples[requests, labels(method="GET", route="/metrics", status="401")] == 1
    assert samples[requests, labels(method="GET", route="/v1/env", status="200")] == 1
    assert samples[requests, labels(method="GET", route="unmatched", status="404")] == 1
    assert samples["dockerlink_engine_up", ()] == 1

    public = serving(replace(settings, metrics_public=True))
    _, open_answer = await public.get("/metrics")
    assert open_answer.status_code == 200
    _, still_closed = await public.get("/v1/env")
    assert still_closed.status_code == 401


async def test_the_dashboard_is_public_self_contained_and_locked_down(tmp_path: Path) -> None:
    client = serving(Settings(docker_sock="/fake.sock", api_token=TOKEN, data_dir=tmp_path))
    _, page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    html = page.text
    policy = dict(
        part.split(" ", 1) for part in page.headers["content-security-policy"].split("; ")
    )
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    (script,) = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    (style,) = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    for source, directive in ((script, "script-src"), (style, "style-src")):
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert policy[directive] == f"'sha256-{digest}'"
    assert "http" not in page.headers["content-security-policy"]
    # Nothing is loaded from anywhere: no src= at all, and href= only to data: or an anchor.
    assert not re.search(r"\bsrc\s*=", html)
    assert set(re.findall(r"href=\"([^\"]*)\"", html)) == {"data:,"}
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"]  # a namespace


def test_requests_are_counted_in_the_buckets_their_durations_fall_in() -> None:
    """Request metrics keep each label set's series at hand: the same counts as looking each
    one up, every duration in the first bucket whose bound it does not exceed (+Inf above)."""
    service = ServiceMetrics()  # one request a call
    bounds = service.http_duration.bounds
    durations = [0.0, 0.001, *bounds, *(b * 1.0001 for b in bounds), 1e9, float("inf")]
    asked = [
        (method, route, status)
        for method in ("GET", "PUT", "BREW")
        for route in ("/v1/container", "unmatched")
        for status in (200, 404)
    ]
    expected_counts: dict[tuple[str, ...], float] = {}
    expected_series: dict[tuple[str, ...], tuple[list[int], float]] = {}
    at_once = ServiceMetrics()  # the same requests, counted in one call
    observed = []
    for n, (method, route, status) in enumerate(asked * 3):
        duration = durations[n % len(durations)]
        service.observe_requests([(method, route, status, duration)])
        observed.append((method, route, status, duration))
        label = method if method != "BREW" else "other"
        key = (label, route, str(status))
        expected_counts[key] = expected_counts.get(key, 0.0) + 1
        counts, total = expected_series.get((label, route), ([0] * (len(bounds) + 1), 0.0))
        counts[next((i for i, b in enumerate(bounds) if duration <= b), len(bounds))] += 1
        expected_series[label, route] = (counts, total + duration)
    at_once.observe_requests(observed)
    for metrics in (service, at_once):
        assert metrics.http_requests.values == expected_counts
        assert {
            labels: (counts, total[0])
            for labels, (counts, total) in metrics.http_duration.series.items()
        } == expected_series


def test_every_unknown_method_is_kept_in_the_one_series_of_other() -> None:
    """However many methods outside the standard ones clients send, the request metrics keep
    one series for them (a client cannot grow the service's memory with made-up methods)."""
    service = ServiceMetrics()
    for method in ("BREW", "WHEN", "PROPFIND", "other", "BREW"):
        service.observe_requests([(method, "/v1/container", 405, 0.001)])
    assert service.http_requests.values == {("other", "/v1/container", "405"): 5.0}
    assert len(service._request_series) == 1
