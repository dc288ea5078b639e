"""The terminal page and the files it loads, all package data served by dockerlink itself.

``static/terminal.html`` is a template: ``page_response`` fills in the title, the WebSocket's
URL (relative to the page), whether the page must send the API token, and where its files are
(``asset_response`` serves them). Any route whose socket speaks the terminal protocol (binary
frames both ways, ``{"type": "resize", ...}`` text frames) can serve the same page.

``static/vendor/`` holds xterm.js and its fit addon as published on the npm registry, at the
versions pinned in ``frontend/package-lock.json``; ``scripts/build-frontend`` copies them there.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources

from sanic import HTTPResponse

from .errors import NotFound

__all__ = ["ASSETS", "asset_response", "page_response", "terminal_policy"]

#: Files the page may load (path under ``static/`` -> content type). Nothing else is served.
ASSETS = {
    "terminal.js": "text/javascript; charset=utf-8",
    "vendor/xterm.js": "text/javascript; charset=utf-8",
    "vendor/addon-fit.js": "text/javascript; charset=utf-8",
    "vendor/xterm.css": "text/css; charset=utf-8",
}


@cache
def _static(path: str) -> bytes:
    return resources.files("dockerlink").joinpath("static", *path.split("/")).read_bytes()


def asset_response(path: str) -> HTTPResponse:
    """One of :data:`ASSETS`; 404 for any other path."""
    content_type = ASSETS.get(path)
    if content_type is None:
        raise NotFound("not found")
    return HTTPResponse(
        _static(path),
        content_type=content_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def terminal_policy(frame_ancestors: str = "'none'") -> str:
    """The page's Content-Security-Policy: scripts and styles from this origin only.

    Inline styles are allowed (not inline scripts): xterm.js writes its theme and cell sizes
    into ``<style>`` elements as it runs. ``connect-src 'self'`` covers ws:// and wss:// to the
    same host.
    """
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


def page_response(
    *,
    title: str,
    socket: str,
    token_required: bool,
    assets: str = "static/",
    frame_ancestors: str = "'none'",
) -> HTTPResponse:
    """The terminal page for ``socket`` (a URL relative to the page, or absolute).

    ``assets`` is where :func:`asset_response` answers, relative to the page; ``frame_ancestors``
    who may show the page in a frame (a CSP source list; none by default).
    """
    values = {
        "title": title,
        "socket": socket,
        "token": "required" if token_required else "none",
        "assets": assets,
    }
    text = _static("terminal.html").decode()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", html.escape(value, quote=True))
    headers = {
        "Content-Security-Policy": terminal_policy(frame_ancestors),
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    if frame_ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"
    return HTTPResponse(text, content_type="text/html; charset=utf-8", headers=headers)
