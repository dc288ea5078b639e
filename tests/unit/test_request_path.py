"""The request path's cheap parts: the query string split, log lines written per loop turn, ids."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from urllib.parse import parse_qs

import pytest
from sanic.request import RequestParameters

import dockerlink.app as app_module
from dockerlink.logs import LoopBatchingHandler
from dockerlink.routes._common import query

from .log_writes import WriteRecorder, log_request, messages, service_logging

QUERIES = [
    "",
    "id=web1",
    "id=a&id=b",
    "id=",
    "id",
    "&&id=a&",
    "a=b=c",
    "=x",
    "id=a;b",
    "t=&id=x&t=5",
    "id=%2Fweb1",
    "branch=feature+x",
    "id=%ZZ",
    "é=ü",
]


class _Request:
    """What ``query`` reads of a Sanic request; ``get_args`` as Sanic computes it."""

    def __init__(self, query_string: str) -> None:
        self.query_string = query_string

    def get_args(self, *, keep_blank_values: bool) -> RequestParameters:
        return RequestParameters(parse_qs(self.query_string, keep_blank_values=keep_blank_values))


@pytest.mark.parametrize("text", QUERIES)
def test_query_is_what_sanic_parses(text: str) -> None:
    assert query(_Request(text)) == _Request(text).get_args(keep_blank_values=True)  # type: ignore[arg-type]


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("dockerlink.request", logging.INFO, "", 0, message, None, None)


async def test_lines_logged_in_one_loop_turn_are_written_together() -> None:
    stream = WriteRecorder()
    handler = LoopBatchingHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(_record("one"))
    handler.handle(_record("two"))
    assert stream.writes == []  # not before the loop turns
    await asyncio.sleep(0)
    assert stream.writes == ["one\ntwo\n"]
    handler.handle(_record("three"))
    handler.flush()  # what logging.shutdown does: nothing waits
    assert stream.writes == ["one\ntwo\n", "three\n"]


def test_lines_logged_outside_a_loop_are_written_at_once() -> None:
    stream = WriteRecorder()
    handler = LoopBatchingHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(_record("start"))
    assert stream.writes == ["start\n"]


@pytest.mark.usefixtures("restore_logging")
async def test_request_lines_wait_in_their_place_among_the_turns_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request line is made when its turn's lines are written, in the place it was logged in
    (the service's lines of that turn before and after it), and exactly as a record's would be."""
    stream = service_logging(monkeypatch)
    other = logging.getLogger("dockerlink.hooks")
    other.warning("before")
    log_request("req-1", "GET", "/v1/container?token=turn-secret", 200, 1.25)
    other.warning("between")
    log_request("req-2", "POST", "/v1/a\x1bb", 404, 0.04)
    other.warning("after")
    assert stream.writes == []
    await asyncio.sleep(0)
    assert len(stream.writes) == 1
    assert messages(stream.writes[0]) == [
        "before",
        "[req-1] GET /v1/container?token=[redacted] 200 1.2 ms",
        "between",
        "[req-2] POST /v1/a\\x1bb 404 0 ms",
        "after",
    ]
    log_request("req-3", "GET", "/health", 200, 0.5)  # the next turn's
    await asyncio.sleep(0)
    assert messages(stream.writes[1]) == ["[req-3] GET /health 200 0.5 ms"]


@pytest.mark.usefixtures("restore_logging")
def test_request_lines_left_by_a_loop_that_stopped_are_written_with_the_next_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loop closed before the end of its turn leaves its lines queued: the next line, logged
    outside any loop or on a new one, writes them first."""
    stream = service_logging(monkeypatch)

    async def log_and_stop(request_id: str) -> None:
        log_request(request_id, "GET", "/health", 200, 0.5)
        asyncio.get_running_loop().stop()  # the turn's write never runs

    for request_id in ("req-1", "req-2"):
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(log_and_stop(request_id))
            loop.run_forever()
            assert task.done()
        finally:
            loop.close()
    assert stream.writes == []
    log_request("req-3", "GET", "/health", 200, 0.5)  # no loop runs: written at once
    assert [messages(text) for text in stream.writes] == [
        [
            "[req-1] GET /health 200 0.5 ms",
            "[req-2] GET /health 200 0.5 ms",
            "[req-3] GET /health 200 0.5 ms",
        ]
    ]


@pytest.mark.usefixtures("restore_logging")
async def test_lines_from_another_thread_are_written_at_once_while_the_loop_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker thread's line is written when it is logged; the loop's wait for its turn's end
    (the thread does not take them)."""
    stream = service_logging(monkeypatch)
    log_request("req-1", "GET", "/health", 200, 0.5)
    worker = threading.Thread(
        target=logging.getLogger("dockerlink.stats").warning, args=("from a thread",)
    )
    worker.start()
    worker.join()  # (the loop's turn has not ended)
    assert [messages(text) for text in stream.writes] == [["from a thread"]]
    await asyncio.sleep(0)
    assert messages(stream.writes[-1]) == ["[req-1] GET /health 200 0.5 ms"]


@pytest.mark.parametrize("start", [0, 4090, 16**5 - 3, 16**16 - 2])
def test_request_ids_are_the_prefix_and_the_counter_in_16_hex_digits(
    monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    monkeypatch.setattr(app_module, "_id_counter", itertools.count(start))
    made = [app_module._new_request_id(None) for _ in range(12)]
    prefix = app_module._ID_PREFIX
    assert made == [f"{prefix}{n:016x}" for n in range(start, start + 12)]
    assert app_module._new_request_id("client-id.1") == "client-id.1"
    assert app_module._new_request_id("not sane") == f"{prefix}{start + 12:016x}"
