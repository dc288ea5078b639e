"""The event log's files and the webhook queue's files: order, torn lines, retention, reloads.

Retention over 30 days and a thousand events, and torn lines, cannot be produced quickly with a
real engine; the engine tests (tests/engine/test_events*.py, test_webhooks.py) prove the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import random
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import docker_api
from dockerlink import webhooks
from dockerlink.events import (
    EVENTS_PER_FILE,
    MAX_PER_CONTAINER,
    RETENTION_S,
    EventLog,
    LifecycleEvents,
)
from dockerlink.settings import SettingsError, load_settings
from dockerlink.units import engine_time_ns
from dockerlink.webhooks import WebhookOutbox, send_test, sign
from tests.conftest import wait_for

CID = "a" * 64
OTHER = "b" * 64


def event(moment: float, kind: str = "start", container_id: str = CID) -> dict[str, Any]:
    return {
        "time": moment,
        "id": container_id,
        "name": "web1",
        "type": kind,
        "event_id": f"{container_id[:12]}-{int(moment * 1e9)}-{kind}",
    }


def record(log: EventLog, *events: dict[str, Any]) -> None:
    for one in events:
        log.add(one)()  # the disk work, run here instead of the writer thread


def reopened(root: Path, now: float = 10_000.0) -> EventLog:
    log = EventLog(root, clock=lambda: now)
    log.open()
    return log


def test_events_are_served_oldest_first_by_since_and_limit_and_reload(tmp_path: Path) -> None:
    log = reopened(tmp_path)
    record(log, event(100.5), event(101.5, "die"), event(102.0, "create", OTHER), event(103.25))
    assert [e["time"] for e in orjson.loads(log.query(CID))] == [100.5, 101.5, 103.25]
    assert [e["time"] for e in orjson.loads(log.query(CID, since=100.5))] == [101.5, 103.25]
    assert [e["time"] for e in orjson.loads(log.query(CID, limit=1))] == [103.25]
    assert [e["time"] for e in orjson.loads(log.query(None, limit=3))] == [101.5, 102.0, 103.25]
    log.close()
    again = reopened(tmp_path)
    assert again.query(CID) == log_query_of(tmp_path, CID)
    assert again.events(CID) == [event(100.5), event(101.5, "die"), event(103.25)]
    assert again.last_time() == 103.25
    assert again.resolve("aaaa") == CID
    assert again.resolve("web1") is None  # two containers had that name
    again.close()


def test_the_newest_events_of_every_container_are_merged_in_time_order() -> None:
    """query(None) gives what sorting every container's events would give (ties included: same
    moment, in the containers' order, then in the order they came), looking at the newest only."""
    rng = random.Random(15)
    log = EventLog(None, clock=lambda: 10_000.0)
    ids = [f"{n:02x}" * 32 for n in range(1, 41)]
    moments = sorted(1000 + rng.randrange(400) / 4 for _ in range(1500))  # many of a moment
    recorded: list[dict[str, Any]] = []
    for n, moment in enumerate(moments):  # each container's events come in time order
        one = event(moment, rng.choice(["start", "die", "oom"]), rng.choice(ids))
        one["event_id"] += f"-{n}"
        log.add(one)
        recorded.append(one)
    order = list(dict.fromkeys(e["id"] for e in recorded))  # the containers' order: first seen
    for since in (0.0, 1050.0, 1099.75, 2000.0):
        for limit in (1, 7, 100, 1000):
            expected: list[dict[str, Any]] = []
            for container_id in order:
                mine = [e for e in recorded if e["id"] == container_id and e["time"] > since]
                expected.extend(mine[-limit:])
            expected.sort(key=lambda e: e["time"])  # stable: containers' order, then arrival
            assert orjson.loads(log.query(None, since=since, limit=limit)) == expected[-limit:]


def log_query_of(root: Path, container_id: str) -> bytes:
    lines = b"".join(p.read_bytes() for p in sorted((root / container_id).glob("*.jsonl")))
    return b"[" + b",".join(line for line in lines.split(b"\n") if line) + b"]"


def test_a_torn_last_line_is_skipped_then_cut_before_the_next_append(tmp_path: Path) -> None:
    log = reopened(tmp_path)
    record(log, event(100.0), event(101.0))
    log.close()
    [path] = (tmp_path / CID).glob("*.jsonl")
    with path.open("ab") as file:
        file.write(b'{"time":102.0,"id":"' + CID.encode() + b'","na')  # killed mid-write
    again = reopened(tmp_path)
    assert [e["time"] for e in again.events(CID)] == [100.0, 101.0]
    record(again, event(103.0))
    again.close()
    assert path.read_bytes().count(b"\n") == 3
    assert [e["time"] for e in reopened(tmp_path).events(CID)] == [100.0, 101.0, 103.0]


def test_an_event_whole_but_for_its_line_break_is_kept(tmp_path: Path) -> None:
    """A write torn just before its ``\\n``: the event was loaded and served, so the next
    append ends the line instead of cutting it, and it is still there after another restart."""
    (tmp_path / CID).mkdir()
    (tmp_path / CID / "0000000001.jsonl").write_bytes(
        orjson.dumps(event(1.0)) + b"\n" + orjson.dumps(event(2.0, "die"))
    )
    log = reopened(tmp_path)
    assert [e["type"] for e in log.events(CID)] == ["start", "die"]
    record(log, event(3.0))
    log.close()
    again = reopened(tmp_path)
    assert [e["type"] for e in again.events(CID)] == ["start", "die", "start"]
    again.close()


def test_at_most_a_thousand_events_per_container_by_whole_files(tmp_path: Path) -> None:
    log = reopened(tmp_path)
    total = MAX_PER_CONTAINER + EVENTS_PER_FILE // 2
    record(log, *(event(1000.0 + i) for i in range(total)))
    kept = log.events(CID)
    assert MAX_PER_CONTAINER - EVENTS_PER_FILE < len(kept) <= MAX_PER_CONTAINER
    assert kept[-1]["time"] == 1000.0 + total - 1  # the newest are kept
    on_disk = sum(p.read_bytes().count(b"\n") for p in (tmp_path / CID).glob("*.jsonl"))
    assert on_disk == len(kept)
    log.close()
    assert len(reopened(tmp_path).events(CID)) == len(kept)


def test_files_older_than_thirty_days_are_deleted(tmp_path: Path) -> None:
    now = 2_000_000_000.0
    log = reopened(tmp_path, now)
    old = now - RETENTION_S - 3 * 86400
    record(log, event(old), event(old + 1), event(now - 10), event(now - 5, container_id=OTHER))
    expired = log.maintain()
    assert [e["time"] for e in log.events(CID)] == [now - 10]
    assert len(expired) == 1 and expired[0].parent.name == CID
    log.close()
    later = reopened(tmp_path, now + RETENTION_S)  # everything has expired by then
    assert later.last_time() is None
    assert not (tmp_path / CID).exists() and not (tmp_path / OTHER).exists()


def test_an_event_after_its_container_folder_expired_is_written(tmp_path: Path) -> None:
    """A container quiet for 30 days has its folder deleted; its next event makes it again
    (the log had kept the old file as written, so the append failed and the event was lost)."""
    now = 2_000_000_000.0
    clock = [now]
    log = EventLog(tmp_path, clock=lambda: clock[0])
    log.open()
    record(log, event(now - 5))
    clock[0] = now + RETENTION_S + 60
    log.remove(log.maintain())
    assert not (tmp_path / CID).exists()
    record(log, event(clock[0] - 1, "restart"))
    log.close()
    assert [e["type"] for e in reopened(tmp_path, clock[0]).events(CID)] == ["restart"]


def test_engine_times_are_read_to_the_nanosecond() -> None:
    assert engine_time_ns("2026-11-30T23:42:32.879607146Z") == 1796082152879607146
    assert engine_time_ns("2026-11-30T23:42:32Z") == 1796082152000000000
    assert engine_time_ns("0001-01-01T00:00:00Z") is None
    assert engine_time_ns("yesterday") is None


def test_the_webhook_queue_survives_a_restart_and_forgets_what_was_delivered(
    tmp_path: Path,
) -> None:
    outbox = WebhookOutbox(tmp_path, "http://127.0.0.1:9/hook", "s3cret")
    outbox.open()
    for i in range(3):
        outbox.add(event(100.0 + i))()
    head = outbox._pending[0]
    outbox.close()

    again = WebhookOutbox(tmp_path, "http://127.0.0.1:9/hook", "s3cret")
    again.open()
    assert [p.body for p in again._pending] == [orjson.dumps(event(100.0 + i)) for i in range(3)]
    assert again._pending[0].seq == head.seq
    again._done(again._pending.popleft().seq)()  # the first was delivered
    again.add(event(200.0))()
    with (tmp_path / "queue-000000000001.jsonl").open("ab") as file:
        file.write(b'{"seq":9,"que')  # a torn line is skipped
    again.close()

    third = WebhookOutbox(tmp_path, "http://127.0.0.1:9/hook", "s3cret")
    third.open()
    assert [orjson.loads(p.body)["time"] for p in third._pending] == [101.0, 102.0, 200.0]
    assert third._next_seq == 5
    third.close()


def test_the_signature_is_the_readmes_hmac_over_the_exact_body() -> None:
    body = orjson.dumps(event(100.0))
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert sign(body, "s3cret") == expected
    assert sign(body + b" ", "s3cret") != expected


#: A webhook_secret.
SECRET = "0123456789abcdef"


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"webhook_url": "ftp://panel.example/hook", "webhook_secret": SECRET}, "webhook_url"),
        ({"webhook_url": "https:///nohost", "webhook_secret": SECRET}, "webhook_url"),
        ({"webhook_url": "https://panel.example/hook"}, "webhook_secret"),
        ({"webhook_url": "https://p.example/", "webhook_secret": " " * 20}, "webhook_secret"),
        ({"webhook_timeout": "0"}, "webhook_timeout"),
    ],
)
def test_webhook_settings_are_checked(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ, env_file=None)
    assert raised.value.name == problem


def test_a_webhook_url_with_a_secret_is_accepted() -> None:
    settings = load_settings(
        {"webhook_url": "https://panel.example/hook", "webhook_secret": SECRET}, env_file=None
    )
    assert (settings.webhook_url, settings.webhook_secret) == (
        "https://panel.example/hook",
        SECRET,
    )


class _NoReplay:
    """The engine's event replay, here with nothing in it (its 256-event buffer moved on)."""

    async def stream(self, **_: Any) -> AsyncIterator[dict[str, Any]]:
        replayed: list[dict[str, Any]] = []
        for event in replayed:
            yield event


class _Engine:
    events = _NoReplay()


class _Mirror:
    def __init__(self, infos: list[dict[str, Any]]) -> None:
        self.infos = infos

    async def every_container(self, **_: Any) -> list[dict[str, Any]]:
        return self.infos


def inspect_of(container_id: str, finished: str, exit_code: int, oom: bool) -> dict[str, Any]:
    return {
        "Id": container_id,
        "Name": "/web1",
        "Config": {"Labels": {"dockerlink": "v1.0.0"}},
        "State": {"FinishedAt": finished, "ExitCode": exit_code, "OOMKilled": oom},
    }


async def test_a_death_only_inspect_shows_is_recorded_once_and_not_called_a_crash(
    tmp_path: Path,
) -> None:
    """When the engine's replay no longer has the ``die`` (over 256 events ago, or the engine
    restarted), the death is recorded from ``State.FinishedAt``: once, crash unknown (null) unless
    an OOM kill proves it. A container not seen dying after the last record gets nothing."""
    log = reopened(tmp_path, now=1_800_000_000.0)
    record(log, event(1_796_082_100.0), event(1_796_082_100.0, "start", OTHER))
    infos = [
        inspect_of(CID, "2026-11-30T23:42:32.879607146Z", 3, False),  # 1796082152.88: unseen
        inspect_of(OTHER, "2026-11-30T23:42:34.427452896Z", 137, True),
        inspect_of("c" * 64, "0001-01-01T00:00:00Z", 0, False),  # never ran
        inspect_of("d" * 64, "2026-11-30T23:30:00Z", 0, False),  # before anything recorded
    ]
    engine: Any = _Engine()
    mirror: Any = _Mirror(infos)
    lifecycle = LifecycleEvents(engine, log, mirror=mirror)
    try:
        for _ in range(2):  # a second catch-up finds nothing new
            await lifecycle.catch_up()
        died = log.events(CID)[-1]
        assert [e["type"] for e in log.events(CID)] == ["start", "die"]
        assert died["time"] == 1796082152879607146 / 1e9  # FinishedAt
        assert (died["exit_code"], died["oom_killed"], died["crash"], died["source"]) == (
            3,
            False,
            None,
            "inspect",
        )
        oom = log.events(OTHER)[-1]
        assert (oom["type"], oom["oom_killed"], oom["crash"]) == ("die", True, True)
        assert "c" * 64 not in log and "d" * 64 not in log
        assert lifecycle.crashes.values == {(OTHER, "web1"): 1.0}
        assert lifecycle.oom_kills.values == {(OTHER, "web1"): 1.0}
        # The engine's own die for that death, if it shows up later, is not recorded again.
        await lifecycle.handle(
            {
                "Type": "container",
                "Action": "die",
                "Actor": {"ID": CID, "Attributes": {"dockerlink": "v1.0.0", "exitCode": "3"}},
                "timeNano": 1796082152964359753,
            }
        )
        assert [e["type"] for e in log.events(CID)] == ["start", "die"]
        # Removed: its series go, so that /metrics does not grow with every container made.
        await lifecycle.handle(
            {
                "Type": "container",
                "Action": "destroy",
                "Actor": {"ID": OTHER, "Attributes": {"dockerlink": "v1.0.0", "name": "web1"}},
                "timeNano": 1796082200000000000,
            }
        )
        assert lifecycle.crashes.values == {}
        assert lifecycle.oom_kills.values == {}
    finally:
        await asyncio.to_thread(lifecycle.close)


async def test_a_death_after_the_replay_is_left_to_the_live_stream(tmp_path: Path) -> None:
    """A container starts and dies on its own just after the catch-up's replay ends, before the
    mirror's inspect is read: the live stream's ``start`` and ``die`` (queued behind the
    resync) are recorded, not an inspect ``die`` that would have them skipped."""
    last = 1_800_000_000.0
    until = last + 100.0
    labels = {"dockerlink": "v1.0.0"}

    def engine_event(action: str, moment: float, **attributes: str) -> dict[str, Any]:
        return {
            "Type": "container",
            "Action": action,
            "timeNano": int(moment * 1e9),
            "Actor": {"ID": CID, "Attributes": {**labels, "name": "web1", **attributes}},
        }

    log = reopened(tmp_path, now=until)
    record(log, event(last, "stop"))
    finished = datetime.datetime.fromtimestamp(until + 0.299, datetime.UTC)
    infos = [inspect_of(CID, finished.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), 1, False)]
    engine: Any = _Engine()
    mirror: Any = _Mirror(infos)
    lifecycle = LifecycleEvents(engine, log, mirror=mirror, clock=lambda: until)
    lifecycle.on_resync()
    lifecycle.on_event(engine_event("start", until + 0.05))
    lifecycle.on_event(engine_event("die", until + 0.30, exitCode="1"))
    running = asyncio.create_task(lifecycle.run())
    try:
        await wait_for(lambda: len(log.events(CID)) >= 3, timeout=5)
        recorded = log.events(CID)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(lifecycle.close)
    assert [e["type"] for e in recorded] == ["stop", "start", "die"]
    assert (recorded[-1]["crash"], recorded[-1]["exit_code"]) == (True, 1)
    assert "source" not in recorded[-1]
    assert lifecycle.crashes.values == {(CID, "web1"): 1}


async def test_an_oom_the_engine_reports_just_after_the_die_is_recorded_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load the engine's ``oom`` can come just after the ``die`` it caused (its two
    sources race). The ``die`` waits for it: the log reads ``oom`` then ``die`` (an OOM kill, a
    crash) at the ``die``'s time, and what came in between is recorded after, in order. A
    ``die`` of 137 whose ``oom`` never comes is recorded once the wait is over."""
    monkeypatch.setattr("dockerlink.events.OOM_AFTER_DIE_S", 0.2)
    start = 1_800_000_000.0
    labels = {"dockerlink": "v1.0.0", "name": "web1"}

    def engine_event(action: str, moment: float, container_id: str = CID, **extra: str) -> Any:
        return {
            "Type": "container",
            "Action": action,
            "timeNano": int(moment * 1e9),
            "Actor": {"ID": container_id, "Attributes": {**labels, **extra}},
        }

    log = reopened(tmp_path, now=start)
    engine: Any = _Engine()
    mirror: Any = _Mirror([])
    lifecycle = LifecycleEvents(engine, log, mirror=mirror)
    for item in (
        engine_event("start", start),
        engine_event("start", start, OTHER),
        engine_event("die", start + 1.0, exitCode="137"),
        engine_event("die", start + 1.01, OTHER, exitCode="3"),
        engine_event("oom", start + 1.02),
        engine_event("die", start + 2.0, OTHER, exitCode="137"),  # (killed by hand, no oom)
    ):
        lifecycle.on_event(item)
    running = asyncio.create_task(lifecycle.run())
    try:
        await wait_for(lambda: len(log.events(OTHER)) >= 3, timeout=5)
        mine, others = log.events(CID), log.events(OTHER)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(lifecycle.close)
    assert [e["type"] for e in mine] == ["start", "oom", "die"]
    assert mine[1]["time"] == mine[2]["time"] == start + 1.0
    assert (mine[2]["oom_killed"], mine[2]["crash"], mine[2]["exit_code"]) == (True, True, 137)
    assert [(e["type"], e["exit_code"], e["oom_killed"]) for e in others[1:]] == [
        ("die", 3, False),
        ("die", 137, False),
    ]
    assert lifecycle.oom_kills.values == {(CID, "web1"): 1.0}


async def test_a_tls_error_is_a_failed_delivery_not_a_crash(tmp_path: Path) -> None:
    """httpx lets an ssl.SSLError raised while reading through unwrapped."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] bad record mac")

    outbox = WebhookOutbox(tmp_path, "https://127.0.0.1:9/hook", "s3cret")
    outbox.open()
    outbox.add(event(100.0))()
    async with httpx.AsyncClient(transport=httpx.MockTransport(broken)) as client:
        reason = await outbox._post(client, outbox._pending[0])
    outbox.close()
    assert reason is not None and reason.startswith("SSLError: ")


async def test_a_receiver_that_trickles_its_answer_is_a_failed_delivery_within_the_timeout(
    tmp_path: Path,
) -> None:
    """httpx bounds each read, not the whole request: a receiver sending one byte every 0.2 s
    must not hold the queue up for longer than ``webhook_timeout``."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(50):
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.write(b"x")
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    outbox = WebhookOutbox(tmp_path, f"http://127.0.0.1:{port}/hook", "s3cret", timeout_s=0.5)
    outbox.open()
    outbox.add(event(100.0))()
    try:
        async with httpx.AsyncClient(timeout=0.5, trust_env=False) as client:
            started = time.monotonic()
            reason = await outbox._post(client, outbox._pending[0])
            took = time.monotonic() - started
        assert reason == "no whole answer within 0.5 s"
        assert took < 2.0
        problem, _ = await send_test(f"http://127.0.0.1:{port}/hook", "s3cret", timeout_s=0.5)
        assert problem == f"http://127.0.0.1:{port}/hook gave no whole answer within 0.5 s"
    finally:
        outbox.close()
        server.close()


class _ReplayDownOnce(_NoReplay):
    """The engine's replay: no answer the first time, then an empty one."""

    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, **_: Any) -> AsyncIterator[dict[str, Any]]:
        self.calls += 1
        if self.calls == 1:
            raise docker_api.EngineTimeout("no answer from the engine within 30 s")
        async for event in super().stream():
            yield event


async def test_a_failed_catch_up_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dockerlink.events.CATCH_UP_RETRY_S", 0.01)
    log = reopened(tmp_path, now=1_800_000_000.0)
    record(log, event(1_796_082_100.0))
    engine: Any = _Engine()
    engine.events = _ReplayDownOnce()
    mirror: Any = _Mirror([inspect_of(CID, "2026-11-30T23:42:32.879607146Z", 3, False)])
    lifecycle = LifecycleEvents(engine, log, mirror=mirror)
    running = asyncio.create_task(lifecycle.run())
    try:
        lifecycle.on_resync()
        async with asyncio.timeout(10):
            while lifecycle.catch_ups < 1:
                await asyncio.sleep(0.01)
        assert engine.events.calls == 2
        assert [e["type"] for e in log.events(CID)] == ["start", "die"]  # the gap's death
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(lifecycle.close)


def test_a_password_in_webhook_url_is_hidden_and_redacted_in_both_forms() -> None:
    url = "https://panel:p%3Aw%40rd@hooks.example:8443/in?x=1"
    assert webhooks.shown_url(url) == "https://panel:***@hooks.example:8443/in?x=1"
    assert webhooks.url_secrets(url) == [":p%3Aw%40rd@", ":p:w@rd@"]
    assert webhooks.url_secrets("https://hook:a@h.example/") == [":a@"]  # not every "a"
    assert webhooks.shown_url("https://hooks.example/in") == "https://hooks.example/in"
    assert webhooks.url_secrets("https://user@hooks.example/in") == []
