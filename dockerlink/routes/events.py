"""``GET /v1/container/events``: the lifecycle event log, one container's or everyone's."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from ..context import context_of
from ..domain_errors import NoSuchContainer
from ..events import EventLog
from ..requests import parse_container_ref, parse_events_limit, parse_since
from ._common import hosting_of, query

bp = Blueprint("events", url_prefix="/container", version=1, strict_slashes=False)


@bp.get("/events")
async def container_events(request: Request) -> HTTPResponse:
    args = query(request)
    ref = parse_container_ref(args.get("id")) if args.get("id") is not None else None
    since = parse_since(args.get("since"))
    limit = parse_events_limit(args.get("limit"))
    events = _log_of(request)
    container_id = await _container_id(request, events, ref) if ref is not None else None
    body = events.query(container_id, since=since, limit=limit)
    return HTTPResponse(body, content_type="application/json")


async def _container_id(request: Request, events: EventLog, ref: str) -> str:
    """The full id for ``ref``: a dockerlink container the engine knows (404/412 as usual), or
    one it no longer knows that has events stored (its ``destroy`` among them)."""
    try:
        return (await hosting_of(request).managed(ref, mirrored=True)).id
    except NoSuchContainer:
        stored = events.resolve(ref)
        if stored is None:
            raise
        return stored


def _log_of(request: Request) -> EventLog:
    lifecycle = context_of(request).lifecycle
    assert lifecycle is not None, "the app has not started"
    return lifecycle.log
