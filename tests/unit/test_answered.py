"""Answered requests: logged and counted together at the end of their loop turn."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import pytest

from dockerlink.answered import AnsweredRequests
from dockerlink.prometheus import ServiceMetrics

from .log_writes import messages, service_logging


@dataclass
class _Route:
    path: str


@dataclass
class _Request:
    """What is read of an answered request."""

    request_id: str
    method: str = "GET"
    path: str = "/v1/container"
    query_string: str = ""
    bad_url: str | None = None
    route: _Route | None = field(default_factory=lambda: _Route("v1/container/"))
    started_s: float = field(default_factory=time.monotonic)


async def _turns_end() -> None:
    """Until the lines of requests answered in this turn are written: they are logged at its
    end, and the handler writes the lines logged then at the end of the next turn."""
    for _ in range(2):
        await asyncio.sleep(0)


def _durations_ms(text: str) -> list[float]:
    return [float(m.split()[-2]) for m in messages(text) if m.startswith("[")]


@pytest.mark.usefixtures("restore_logging")
async def test_a_turns_requests_are_logged_and_counted_at_its_end_in_their_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = service_logging(monkeypatch)
    metrics = ServiceMetrics()
    answered = AnsweredRequests(metrics)
    slow = _Request(
        "req-1", query_string="id=web1&token=turn-secret", started_s=time.monotonic() - 0.25
    )
    answered.add(slow, 200)
    other = logging.getLogger("dockerlink.hooks")
    other.warning("between")
    answered.add(_Request("req-2", method="BREW", path="/nowhere", route=None), 405)
    answered.add(_Request("req-3", bad_url="/\\x00", route=None), 400)
    answered.add(_Request("req-4", method="PUT", query_string=""), 503)
    assert stream.writes == [] and metrics.http_requests.values == {}  # not before the turn ends
    await _turns_end()
    assert len(stream.writes) == 1  # the turn's lines, in one write
    assert [m.rsplit(" ", 2)[0] for m in messages(stream.writes[0])] == [
        "between",  # (logged before the turn's end; the request lines at it)
        "[req-1] GET /v1/container?id=web1&token=[redacted] 200",
        "[req-2] other /nowhere 405",
        "[req-3] GET /\\x00 400",
        "[req-4] PUT /v1/container 503",
    ]
    assert 250 <= _durations_ms(stream.writes[0])[0] < 1000
    assert metrics.http_requests.values == {
        ("GET", "/v1/container", "200"): 1.0,
        ("other", "unmatched", "405"): 1.0,
        ("GET", "unmatched", "400"): 1.0,
        ("PUT", "/v1/container", "503"): 1.0,
    }
    _, total = metrics.http_duration.series[("GET", "/v1/container")]
    assert 0.25 <= total[0] < 1.0
    answered.add(_Request("req-5"), 200)  # a later turn's
    await _turns_end()
    assert len(stream.writes) == 2
    assert metrics.http_requests.values[("GET", "/v1/container", "200")] == 2.0


@pytest.mark.usefixtures("restore_logging")
def test_requests_left_by_a_loop_that_stopped_are_logged_with_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loop stopped before its turn's end leaves its requests noted: the next request, on a
    new loop or outside any, logs and counts them with its own."""
    stream = service_logging(monkeypatch)
    metrics = ServiceMetrics()
    answered = AnsweredRequests(metrics)

    async def answer_and_stop(request_id: str) -> None:
        answered.add(_Request(request_id), 200)
        asyncio.get_running_loop().stop()  # the turn's end never comes

    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(answer_and_stop("req-1"))
        loop.run_forever()
        assert task.done()
    finally:
        loop.close()
    assert stream.writes == [] and metrics.http_requests.values == {}

    async def answer(request_id: str) -> None:
        answered.add(_Request(request_id), 200)

    asyncio.run(answer("req-2"))
    assert [m.split()[0] for m in messages("".join(stream.writes))] == ["[req-1]", "[req-2]"]
    answered.add(_Request("req-3"), 200)  # no loop runs: at once
    assert [m.split()[0] for m in messages(stream.writes[-1])] == ["[req-3]"]
    assert metrics.http_requests.values == {("GET", "/v1/container", "200"): 3.0}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.usefixtures("restore_logging")
async def test_with_another_handler_each_line_is_a_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another handler on the way (an embedding application's...) gets each request line as a
    record; the service's handler writes it too."""
    stream = service_logging(monkeypatch)
    answered = AnsweredRequests(ServiceMetrics())
    extra = _Records()
    logging.getLogger("dockerlink").addHandler(extra)
    try:
        answered.add(_Request("req-1"), 200)
        answered.add(_Request("req-2", path="/health", route=_Route("health")), 200)
        await _turns_end()
    finally:
        logging.getLogger("dockerlink").removeHandler(extra)
    assert [(r.name, r.getMessage().rsplit(" ", 2)[0]) for r in extra.records] == [
        ("dockerlink.request", "[req-1] GET /v1/container 200"),
        ("dockerlink.request", "[req-2] GET /health 200"),
    ]
    assert [getattr(r, "request_id", None) for r in extra.records] == ["req-1", "req-2"]
    assert [m.rsplit(" ", 2)[0] for m in messages("".join(stream.writes))] == [
        "[req-1] GET /v1/container 200",
        "[req-2] GET /health 200",
    ]
