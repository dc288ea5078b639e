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


def test_every_builder_makes_an_answer() -> None:
    for response in (json_bytes(b"{}"), json_response({}), no_content(), text_response(400, "x")):
        assert isinstance(response, Answer)
