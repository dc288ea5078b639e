"""Answer builders: JSON successes (orjson), one-line plain-text errors, 204s."""

from __future__ import annotations

from typing import Any

import orjson
from sanic import HTTPResponse

__all__ = ["json_response", "no_content", "plain_text", "text_response"]


def json_response(body: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(body), status=status, content_type="application/json")


def text_response(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPResponse:
    """An answer of one line of plain text (errors, git output keeps its own lines elsewhere)."""
    line = " ".join(message.split()) or "error"
    return HTTPResponse(
        line + "\n", status=status, headers=headers, content_type="text/plain; charset=utf-8"
    )


def plain_text(status: int, text: str) -> HTTPResponse:
    """An answer of text kept as it is, line breaks and all (git's output)."""
    return HTTPResponse(text, status=status, content_type="text/plain; charset=utf-8")


def no_content() -> HTTPResponse:
    return HTTPResponse(status=204)
