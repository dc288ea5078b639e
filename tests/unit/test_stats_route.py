"""``GET /v1/container/stats`` over HTTP, with a fake engine and a history written beforehand."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dockerlink.settings import Settings
from dockerlink.stats.series import Sample
from dockerlink.stats.store import HistoryStore
from tests.conftest import serve

from .fakes import fake_engine_client

GIB = 1 << 30
GONE = "9" * 64  # removed behind dockerlink's back: only its history is left
KNOWN = "4" * 64  # known to the engine, stopped, nothing stored


class OneStoppedContainerEngine:
    """Knows one stopped container (``KNOWN``, named ``web1``), lists nothing."""

    def __init__(self) -> None:
        self.inspects: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/containers/json"):
            return httpx.Response(200, json=[])
        if path.startswith("/v1.41/containers/") and path.endswith("/json"):
            ref = path.split("/")[3]
            self.inspects.append(ref)
            if ref == "web1" or (len(ref) >= 3 and KNOWN.startswith(ref)):
                return httpx.Response(200, json=self.known())
            return httpx.Response(404, json={"message": f"No such container: {ref}"})
        if path.endswith("/stats"):
            return httpx.Response(200, json={"read": "0001-01-01T00:00:00Z"})
        return httpx.Response(404, json={"message": "not here"})

    @staticmethod
    def known() -> dict[str, Any]:
        return {
            "Id": KNOWN,
            "Name": "/web1",
            "State": {"Running": False, "Status": "exited"},
            "HostConfig": {"Memory": GIB // 2, "CpuPeriod": 100_000, "CpuQuota": 150_000},
            "Config": {"Labels": {"dockerlink": "v1.0.0", "ports": "10000"}},
        }


def sample(t: int, i: int) -> Sample:
    return Sample(t, 1024 * (100 + i % 7), 2 * GIB, 1234 + i % 100, 15000, 10 * i, 20 * i, 10, 20)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(docker_sock="/fake.sock", data_dir=tmp_path / "data", sample_interval=3600)


@pytest.fixture
def now() -> int:
    return int(time.time())


@pytest.fixture
def stored(settings: Settings, now: int) -> list[Sample]:
    """Five hours of 15-second samples of GONE, ending now."""
    store = HistoryStore(settings.data_dir / "stats")
    store.open()
    samples = [sample(now - 5 * 3600 + 15 * i, i) for i in range(1, 5 * 240 + 1)]
    for s in samples:
        assert store.append(GONE, s)
    store.close()
    return samples


@pytest.fixture
def engine() -> OneStoppedContainerEngine:
    return OneStoppedContainerEngine()


@pytest.fixture
async def client(
    settings: Settings, engine: OneStoppedContainerEngine
) -> AsyncIterator[httpx.AsyncClient]:
    docker = fake_engine_client(engine)
    async with serve(settings, docker=docker) as http:
        yield http
    await docker.close()


async def get_stats(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/container/stats", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = orjson.loads(response.content)
    return body


async def test_id_is_required(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/container/stats")
    assert response.status_code == 400
    assert response.text == "id is required\n"


@pytest.mark.parametrize("since", ["abc", "-5", "1e9", "nan", "1.2.3", " 5", "0x10"])
async def test_a_bad_since_is_400(client: httpx.AsyncClient, since: str) -> None:
    response = await client.get("/v1/container/stats", params={"id": KNOWN, "since": since})
    assert response.status_code == 400
    assert response.text.startswith("since must be")


async def test_unknown_container_without_history_is_404(
    client: httpx.AsyncClient, engine: OneStoppedContainerEngine
) -> None:
    response = await client.get("/v1/container/stats", params={"id": "nope"})
    assert response.status_code == 404
    assert response.text == "no such container: nope\n"
    response = await client.get("/v1/container/stats", params={"id": "8" * 64})
    assert response.status_code == 404


async def test_a_known_container_without_history_gets_a_sample_on_the_spot(
    client: httpx.AsyncClient,
) -> None:
    for ref in ("web1", KNOWN[:12], KNOWN):
        body = await get_stats(client, id=ref, scale="week")
        assert len(body) == 1, ref
        (point,) = body.values()
        # Stopped: zero usage, but the configured limits (0.5 GiB, 1.5 CPU).
        assert point == {
            "memory": {"used": 0.0, "limit": 0.5},
            "cpu": {"usage_percent": 0.0, "limit": 150.0},
            "net": {"up": 0, "down": 0, "delta_up": 0, "delta_down": 0},
        }


async def test_history_of_a_removed_container_is_served_by_id_and_prefix(
    stored: list[Sample], client: httpx.AsyncClient, now: int
) -> None:
    by_id = await get_stats(client, id=GONE)
    assert list(by_id) == [str(s.t) for s in stored if s.t > now - 4 * 3600]
    assert await get_stats(client, id=GONE[:10]) == by_id
    first = stored[-1]
    assert by_id[str(first.t)] == {
        "memory": {"used": round(first.mem_used_kib / 2**20, 6), "limit": 2.0},
        "cpu": {"usage_percent": first.cpu_centi / 100, "limit": 150.0},
        "net": {"up": first.up_kib, "down": first.down_kib, "delta_up": 10, "delta_down": 20},
    }


async def test_a_full_id_with_history_does_not_ask_the_engine(
    stored: list[Sample], client: httpx.AsyncClient, engine: OneStoppedContainerEngine
) -> None:
    await get_stats(client, id=GONE)
    assert engine.inspects == []


async def test_instant_is_the_last_four_hours_oldest_first(
    stored: list[Sample], client: httpx.AsyncClient, now: int
) -> None:
    for scale in (None, "instant", "hour", "4hours", "whatever"):
        params = {"id": GONE} if scale is None else {"id": GONE, "scale": scale}
        body = await get_stats(client, **params)
        keys = [int(k) for k in body]
        assert keys == sorted(keys)
        assert keys == [s.t for s in stored if s.t > now - 4 * 3600], scale
        assert 959 <= len(keys) <= 960


async def test_since_keeps_only_newer_samples(
    stored: list[Sample], client: httpx.AsyncClient
) -> None:
    middle = stored[-10].t
    body = await get_stats(client, id=GONE, since=middle)
    assert [int(k) for k in body] == [s.t for s in stored[-9:]]
    assert await get_stats(client, id=GONE, since=f"{middle}.5") == body
    assert await get_stats(client, id=GONE, since=stored[-1].t) == {}
    assert await get_stats(client, id=GONE, since="") == await get_stats(client, id=GONE)


async def test_day_and_week_are_time_bucket_points(
    stored: list[Sample], client: httpx.AsyncClient
) -> None:
    day = await get_stats(client, id=GONE, scale="day")
    week = await get_stats(client, id=GONE, scale="week")
    assert len({int(k) // 120 for k in day}) == len(day)
    assert len({int(k) // 1200 for k in week}) == len(week)
    assert 5 * 30 <= len(day) <= 5 * 30 + 1  # five hours of 2-minute points
    assert 5 * 3 <= len(week) <= 5 * 3 + 1
    # Network deltas add up across points: the totals' growth over the day.
    keys = list(day)
    grown = day[keys[-1]]["net"]["up"] - day[keys[0]]["net"]["up"]
    assert sum(day[k]["net"]["delta_up"] for k in keys[1:]) == grown
    since = int(keys[-3])
    assert list(await get_stats(client, id=GONE, scale="day", since=since)) == keys[-2:]


async def test_trailing_slash_and_wrong_method(
    stored: list[Sample], client: httpx.AsyncClient
) -> None:
    response = await client.get("/v1/container/stats/", params={"id": GONE})
    assert response.status_code == 200
    response = await client.post("/v1/container/stats", params={"id": GONE})
    assert response.status_code == 405


async def test_latest_is_every_recent_container_newest_sample_in_one_answer(
    stored: list[Sample], client: httpx.AsyncClient, settings: Settings
) -> None:
    """GONE's newest sample, shaped as a history entry plus its time; KNOWN (never sampled) is
    not there, and a container whose newest sample is older than 4 hours neither."""
    response = await client.get("/v1/container/stats/latest")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = orjson.loads(response.content)
    assert body["sample_interval"] == settings.sample_interval
    newest = stored[-1]
    history = await get_stats(client, id=GONE, since=stored[-2].t)
    assert body["latest"] == {GONE: {"t": newest.t, **history[str(newest.t)]}}


STALE = "5" * 64  # last sampled a little over 4 hours ago


@pytest.fixture
def stale(settings: Settings, now: int) -> None:
    store = HistoryStore(settings.data_dir / "stats")
    store.open()
    for i in range(1, 11):
        assert store.append(STALE, sample(now - 4 * 3600 - 600 + 15 * i, i))
    store.close()


async def test_latest_leaves_out_containers_not_sampled_for_four_hours(
    stale: None, stored: list[Sample], client: httpx.AsyncClient
) -> None:
    body = (await client.get("/v1/container/stats/latest")).json()
    assert list(body["latest"]) == [GONE]
    assert (await client.get("/v1/container/stats", params={"id": STALE, "scale": "day"})).json()
