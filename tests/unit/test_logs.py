"""Logs: one line per request, engine errors with their cause, JSON lines, never the token."""

from __future__ import annotations

import asyncio
import io
import logging
import random
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from docker_api import DockerClient
from dockerlink.logs import (
    JsonFormatter,
    RedactingFormatter,
    TextFormatter,
    _milliseconds,
    configure_logging,
    describe_causes,
)
from dockerlink.settings import Settings

from ..conftest import serve
from .fakes import fake_engine_client
from .log_writes import log_request

TOKEN = "log-test-token-0123456789abcdef"


def fake_engine(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/containers/json"):
        return httpx.Response(200, json=[])
    if "/containers/down" in path:
        raise httpx.ConnectError("engine socket went away")
    return httpx.Response(404, json={"message": "No such container: x"})


def settings_for(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(
        docker_sock="/fake.sock", data_dir=tmp_path / "data", api_token=TOKEN, **changes
    )


def docker_client() -> DockerClient:
    return fake_engine_client(fake_engine)


async def test_one_line_per_request_with_id_method_path_status_and_duration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dockerlink")
    async with serve(settings_for(tmp_path), docker=docker_client()) as client:
        await client.get("/health", headers={"X-Request-Id": "req-health-1"})
        await client.get("/v1/container?id=nope", headers={"X-Request-Id": "req-404"})
        await client.get("/v1/container", headers={"Authorization": "Bearer wrong-token-xyz"})
        await client.get("/no/such/route", headers={"X-Request-Id": "req-unrouted"})
    lines = [r for r in caplog.records if r.name == "dockerlink.request"]
    assert len(lines) == 4
    health, lookup, unauthorized, unrouted = lines
    assert health.getMessage().startswith("[req-health-1] GET /health 200 ")
    assert health.getMessage().endswith(" ms")
    assert health.fields["status"] == 200  # type: ignore[attr-defined]
    assert health.fields["duration_ms"] >= 0  # type: ignore[attr-defined]
    assert lookup.getMessage().startswith("[req-404] GET /v1/container?id=nope 200 ")
    assert " GET /v1/container 401 " in unauthorized.getMessage()
    assert unrouted.getMessage().startswith("[req-unrouted] GET /no/such/route 404 ")
    everything = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert TOKEN not in everything
    assert "wrong-token-xyz" not in everything


async def test_engine_errors_are_logged_with_their_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dockerlink")
    async with serve(settings_for(tmp_path), docker=docker_client()) as client:
        response = await client.delete("/v1/container?id=down", headers={"X-Request-Id": "r-e"})
    assert response.status_code == 503
    errors = [r.getMessage() for r in caplog.records if "engine error" in r.getMessage()]
    assert len(errors) == 1
    assert errors[0].startswith("[r-e] DELETE /v1/container: engine error EngineUnreachable: ")
    assert "(cause: ConnectError: engine socket went away)" in errors[0]


@pytest.mark.usefixtures("restore_logging")
async def test_lines_logged_for_a_request_carry_its_id_as_json_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line logged on a request's behalf (not its request line) carries the request's id, a
    line logged outside any request none."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    async with serve(settings_for(tmp_path), docker=docker_client()) as client:
        configure_logging("INFO", "json", [TOKEN])  # (after the app is made, as serve does)
        made = await client.delete("/v1/container?id=down")
        given = await client.delete("/v1/container?id=down", headers={"X-Request-Id": "r-e2"})
        logging.getLogger("dockerlink.stats").warning("outside")
        await asyncio.sleep(0)  # (the turn's lines written)
    assert (made.status_code, given.status_code) == (503, 503)
    entries = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    errors = [e for e in entries if "engine error" in e["message"]]
    assert [e.get("request_id") for e in errors] == [made.headers["x-request-id"], "r-e2"]
    (outside,) = [e for e in entries if e["message"] == "outside"]
    assert "request_id" not in outside


def test_describe_causes_walks_the_chain() -> None:
    middle = httpx.ConnectError("connect failed")
    middle.__cause__ = ConnectionRefusedError(111, "Connection refused")
    top = RuntimeError("top")
    top.__cause__ = middle
    assert describe_causes(top) == (
        "ConnectError: connect failed <- ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert describe_causes(ValueError("alone")) == ""


def test_json_lines_carry_the_fields() -> None:
    record = logging.LogRecord(
        "dockerlink.request", logging.INFO, __file__, 1, "x %s", ("y",), None
    )
    record.request_id = "abc"
    record.fields = {"status": 204, "path": "/v1/container/start?id=web1"}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["message"] == "x y"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "dockerlink.request"
    assert entry["request_id"] == "abc"
    assert entry["status"] == 204
    assert entry["time"].endswith("+00:00")


@pytest.mark.usefixtures("restore_logging")
def test_json_format_covers_sanic_own_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    logging.getLogger("sanic.error").addHandler(logging.StreamHandler(io.StringIO()))
    configure_logging("INFO", "json")
    logging.getLogger("sanic.error").warning("from sanic")
    logging.getLogger("dockerlink").info("from us")
    logging.getLogger("dockerlink").debug("too verbose")
    entries = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["logger"], e["message"]) for e in entries] == [
        ("sanic.error", "from sanic"),
        ("dockerlink", "from us"),
    ]
    assert logging.getLogger("sanic.error").handlers == []
    assert logging.getLogger("httpx").level == logging.WARNING  # one line per engine call: no
    configure_logging("DEBUG", "text")
    assert logging.getLogger("httpx").level == logging.DEBUG


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_request_lines_written_directly_are_the_lines_records_make(
    monkeypatch: pytest.MonkeyPatch, log_format: str
) -> None:
    """The service writes request lines without a log record; they must be the same lines."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr("time.time", lambda: 1764561600.25)
    configure_logging("INFO", log_format, [TOKEN])
    request_log = logging.getLogger("dockerlink.request")

    def no_record(*args: object, **kwargs: object) -> logging.LogRecord:
        raise AssertionError("a log record was made")

    monkeypatch.setattr(request_log, "makeRecord", no_record)
    path = f"/v1/container?id=web1&token={TOKEN}"
    log_request("req-7", "GET", path, 200, 0.3)
    direct = stream.getvalue()
    monkeypatch.undo()  # makeRecord back; then a second handler forces the record path
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr("time.time", lambda: 1764561600.25)
    captured = log_request_as_a_record("req-7", "GET", path, 200, 0.3)
    assert "[req-7] GET /v1/container?id=web1&token=" in captured
    assert stream.getvalue() == direct * 2
    assert TOKEN not in direct
    assert direct.count("\n") == 1
    if log_format == "text":
        assert direct.endswith(  # the date and time are local
            ":00,250 INFO dockerlink.request: "
            "[req-7] GET /v1/container?id=web1&token=[redacted] 200 0.3 ms\n"
        )
    else:
        entry = orjson.loads(direct)
        assert entry["time"] == "2025-12-01T04:00:00.250+00:00"
        assert entry["request_id"] == "req-7"
        assert entry["path"] == "/v1/container?id=web1&token=[redacted]"
        assert (entry["method"], entry["status"], entry["duration_ms"]) == ("GET", 200, 0.3)


def log_request_as_a_record(
    request_id: str, method: str, path: str, status: int, duration_ms: float
) -> str:
    """:func:`log_request` with a second handler on the way, which makes the line a log record
    like any other; what that handler got."""
    capture = io.StringIO()
    extra = logging.StreamHandler(capture)
    logging.getLogger("dockerlink").addHandler(extra)
    try:
        log_request(request_id, method, path, status, duration_ms)
    finally:
        logging.getLogger("dockerlink").removeHandler(extra)
    return capture.getvalue()


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize(
    "path", ["/v1/a\x1b[2J\r\x7fb", "/v1/\x85x?q=\x00", f"/v1/{TOKEN[:5]}\x01{TOKEN[5:]}"]
)
def test_request_lines_written_directly_escape_what_records_escape(
    monkeypatch: pytest.MonkeyPatch, log_format: str, path: str
) -> None:
    """The direct line is escaped as a record's is."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", log_format, [TOKEN])
    log_request("req-7", "GET", path, 200, 12.25)
    direct = stream.getvalue()
    log_request_as_a_record("req-7", "GET", path, 200, 12.25)
    recorded = stream.getvalue()[len(direct) :]
    assert direct.partition(" INFO ")[2] == recorded.partition(" INFO ")[2]
    assert direct.isprintable() is False and direct.count("\n") == 1
    assert direct[:-1].isprintable()  # every control character escaped


#: Request lines (time, id, method, path, status, duration) with secrets and control characters.
ROWS = [
    (1764561600.25, "req-1", "GET", f"/v1/x?t={TOKEN}", 200, 0.3),
    (1764561600.5, "req-2", "GET", "/v1/a\x1bb\t", 404, 1.25),
    (1764561601.75, "req-3", "PUT", f"/v1/\x85{TOKEN.upper()}", 500, 120.0),
    (1764561601.75, TOKEN, "GET", "/health", 200, 0.04),
]


@pytest.mark.parametrize("inner", [TextFormatter, JsonFormatter])
@pytest.mark.parametrize(
    ("secrets", "terminator"),
    [
        ([TOKEN], "\n"),
        # A secret that holds a line break (a match could join two lines), and another
        # terminator (which escaping could change): made line by line.
        ([TOKEN, " ms\n", "}\n{"], "\n"),
        ([TOKEN], "\r\n"),
    ],
)
def test_request_lines_made_at_once_are_the_lines_made_one_by_one(
    inner: type[TextFormatter | JsonFormatter], secrets: list[str], terminator: str
) -> None:
    formatter = RedactingFormatter(inner(), secrets)
    at_once = formatter.request_lines(ROWS, terminator)
    one_by_one = [formatter.redact(formatter.inner.request_lines([row], "")) for row in ROWS]  # type: ignore[attr-defined]
    assert at_once == "".join(line + terminator for line in one_by_one)
    assert at_once.count(terminator) == len(ROWS)
    assert TOKEN not in at_once and TOKEN.upper() not in at_once
    assert "\x1b" not in at_once and "\x85" not in at_once


DURATIONS_MS = (0.0, 0.04, 0.05, 0.15, 0.25, 0.3, 1.0, 2.45, 12.25, 99.95, 1234.56, 99999.9)
EDGES_MS = (99999.94, 99999.95, 99999.96, 100000.0, 123456.78, 999999.96, 1e7, 0.1 + 0.2, 1 / 3)


@pytest.mark.parametrize("duration_ms", [*DURATIONS_MS, *EDGES_MS])
def test_a_duration_is_written_as_its_rounded_value_formatted_g(duration_ms: float) -> None:
    assert _milliseconds(duration_ms) == f"{round(duration_ms, 1):g}"


def test_durations_at_random_are_written_as_their_rounded_values_formatted_g() -> None:
    chooser = random.Random(7)
    for _ in range(20000):
        duration_ms = chooser.choice([10.0, 1000.0, 200000.0]) * chooser.random()
        assert _milliseconds(duration_ms) == f"{round(duration_ms, 1):g}", duration_ms
    for twentieths in range(0, 2_000_000, 7):  # ties and near-ties of every tenth
        duration_ms = twentieths / 20
        assert _milliseconds(duration_ms) == f"{round(duration_ms, 1):g}", duration_ms
