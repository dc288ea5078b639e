"""The request path's cheap parts: the query string split, log lines written per loop turn, ids."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
from urllib.parse import parse_qs

import pytest
from sanic.request import RequestParameters

import dockerlink.app as app_module
from dockerlink.logs import LoopBatchingHandler
from dockerlink.routes._common import query

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


class _Stream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("dockerlink.request", logging.INFO, "", 0, message, None, None)


async def test_lines_logged_in_one_loop_turn_are_written_together() -> None:
    stream = _Stream()
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
    stream = _Stream()
    handler = LoopBatchingHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(_record("start"))
    assert stream.writes == ["start\n"]


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
