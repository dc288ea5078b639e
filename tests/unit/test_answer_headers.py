"""dockerlink's answers write their headers exactly as Sanic's own responses do."""

from __future__ import annotations

import pytest
from sanic import HTTPResponse

from dockerlink.responses import Answer, json_bytes, json_response, no_content, text_response

VALUES = [
    "",
    "application/json",
    "3dcdac8324a84bc80000000000000064",
    "a\r\nSet-Cookie: x=1",
    "\r",
    "\n",
    "\x00",
    "tab\there",
    "é ünïcode ✓ \u2028",
    "\udcff surrogate-escaped byte",
    "trailing\r\n",
]


@pytest.mark.parametrize("value", VALUES)
def test_headers_are_sanitised_as_sanic_does(value: str) -> None:
    ours, sanic = Answer(b"{}"), HTTPResponse(b"{}")
    for response in (ours, sanic):
        response.headers["X-Request-Id"] = value
        if value.isascii():  # (names are written as ASCII: Sanic fails on others, as do we)
            response.headers[f"X-{value}"] = "name"
    assert list(ours.processed_headers) == list(sanic.processed_headers)


@pytest.mark.parametrize("status", [200, 204, 304, 404])
def test_an_answers_headers_are_sanic_s_whatever_their_values(status: int) -> None:
    ours = Answer(b"x", status=status, content_type="text/plain")
    sanic = HTTPResponse(b"x", status=status, content_type="text/plain")
    for response in (ours, sanic):
        response.headers["X-Number"] = 42  # (not text: written as f"{value}")
        response.headers.add("X-Twice", "one")
        response.headers.add("x-twice", "two\r\n")
        response.headers["content-length"] = "1"
    assert list(ours.processed_headers) == list(sanic.processed_headers)
    assert dict(ours.headers) == dict(sanic.headers)  # (the content type added the same way)


def test_a_header_name_that_is_not_ascii_fails_as_sanic_s_does() -> None:
    for response in (Answer(b"{}"), HTTPResponse(b"{}")):
        response.headers["X-é"] = "v"
        with pytest.raises(UnicodeEncodeError):
            list(response.processed_headers)


def test_every_builder_makes_an_answer() -> None:
    for response in (json_bytes(b"{}"), json_response({}), no_content(), text_response(400, "x")):
        assert isinstance(response, Answer)
