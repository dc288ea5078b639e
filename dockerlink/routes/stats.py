"""``GET /v1/container/stats``: a container's sampled history, from the history store."""

from __future__ import annotations

import re

import orjson
from sanic import Blueprint, HTTPResponse, Request

from ..context import context_of
from ..domain_errors import NoSuchContainer
from ..requests import parse_container_ref, parse_scale, parse_since
from ..stats.series import render_latest
from ._common import query

bp = Blueprint("stats", url_prefix="/container", version=1, strict_slashes=False)

_FULL_ID = re.compile(r"[0-9a-f]{64}")


@bp.get("/stats")
async def container_stats(request: Request) -> HTTPResponse:
    ref = parse_container_ref(query(request).get("id"))
    since = parse_since(query(request).get("since"))
    scale = parse_scale(query(request).get("scale"))
    body = await _history(request, ref, since=since, scale=scale)
    return HTTPResponse(body, content_type="application/json")


@bp.get("/stats/latest")
async def latest_stats(request: Request) -> HTTPResponse:
    """The newest sample of every container, for a table of current usage: one request for
    all, answered from memory."""
    ctx = context_of(request)
    body = b'{"sample_interval":%s,"latest":%s}' % (
        orjson.dumps(ctx.settings.sample_interval),
        render_latest(ctx.history.latest()),
    )
    return HTTPResponse(body, content_type="application/json")


async def _history(request: Request, ref: str, *, since: float, scale: str) -> bytes:
    """The answer body for ``ref``.

    A full id with recent history is answered from memory without asking the engine. Otherwise
    the engine resolves the name or id prefix; a container it knows with nothing in the window
    gets a sample on the spot. One it does not know is answered from its history (by full id or
    unique prefix) until that expires, then 404.
    """
    ctx = context_of(request)
    history, sampler = ctx.history, ctx.sampler
    if _FULL_ID.fullmatch(ref) and history.has_recent(ref, scale):
        return history.query_json(ref, scale=scale, since=since) or b"{}"
    try:
        info = await ctx.hosting.inspect(ref)
    except NoSuchContainer:
        stored = ref if ref in history else history.resolve_prefix(ref)
        if stored is None:
            raise
        return history.query_json(stored, scale=scale, since=since) or b"{}"
    container_id = str(info["Id"])
    if not history.has_recent(container_id, scale):
        await sampler.sample(info)
    return history.query_json(container_id, scale=scale, since=since) or b"{}"
