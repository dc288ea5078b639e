"""``GET /metrics`` (Prometheus text format) and ``GET /``, the dashboard page."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources

from sanic import Blueprint, HTTPResponse, Request

from ..context import context_of
from ..prometheus import CONTENT_TYPE, render_metrics

bp = Blueprint("observability", strict_slashes=False)

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


@bp.get("/metrics")
async def metrics(request: Request) -> HTTPResponse:
    ctx = context_of(request)
    text = await render_metrics(
        docker=ctx.docker,
        mirror=ctx.mirror,
        history=ctx.history,
        sampler=ctx.sampler,
        service=ctx.metrics,
        extra=[ctx.lifecycle.write_metrics] if ctx.lifecycle is not None else [],
    )
    return HTTPResponse(text, content_type=CONTENT_TYPE)


@bp.get("/")
async def dashboard(request: Request) -> HTTPResponse:
    body, policy = dashboard_page()
    return HTTPResponse(
        body,
        content_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": policy,
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        },
    )


@cache
def dashboard_page() -> tuple[bytes, str]:
    """The page (package data) and its Content-Security-Policy.

    The policy allows nothing from anywhere but the page's own inline script and style, named by
    their hashes, and requests to this origin: the page works on a host with no internet and
    cannot be made to load anything else.
    """
    body = resources.files("dockerlink").joinpath("static/dashboard.html").read_bytes()
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, content in _INLINE.findall(body.decode()):
        digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {' '.join(hashes['script'])}",
            f"style-src {' '.join(hashes['style'])}",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return body, policy
