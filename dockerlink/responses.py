"""Answer builders: JSON successes (orjson), one-line plain-text errors, 204s."""

from __future__ import annotations

from typing import Any

import orjson
from sanic import HTTPResponse, Request

__all__ = [
    "json_bytes",
    "json_response",
    "no_content",
    "plain_text",
    "text_response",
    "without_slash",
]


def json_response(body: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(body), status=status, content_type="application/json")


def json_bytes(body: bytes) -> HTTPResponse:
    """A 200 whose body is JSON already made."""
    return HTTPResponse(body, status=200, content_type="application/json")


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


def without_slash(request: Request) -> HTTPResponse | None:
    """For a page asked for with a trailing slash (``/terminal/?id=web1``), a 308 to the page
    without it; None otherwise. (The page's links are relative: under the slash they would
    miss.) The location is relative too, so that it holds behind a proxy that moves the path
    (``/wetty/`` outside is ``/v1/ssh/<name>/wetty/`` here)."""
    if not request.path.endswith("/"):
        return None
    bare = request.path.rstrip("/")
    up = "../" * (len(request.path) - len(bare))  # one per slash: "wetty//" is two levels down
    name = bare.rpartition("/")[2]
    query = f"?{request.query_string}" if request.query_string else ""
    return HTTPResponse(status=308, headers={"Location": f"{up}{name}{query}"})
