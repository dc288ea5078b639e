"""``/v1/container``: list, create, delete, resize, start, stop, restart."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from ..context import context_of
from ..requests import (
    parse_bool,
    parse_container_ref,
    parse_create,
    parse_json_object,
    parse_limits,
    parse_stop_grace,
)
from ..responses import json_bytes, json_response, no_content
from ._common import hosting_of, query, with_hook_report

bp = Blueprint("containers", url_prefix="/container", version=1, strict_slashes=False)


def _ref(request: Request) -> str:
    return parse_container_ref(query(request).get("id"))


@bp.get("")
async def list_containers(request: Request) -> HTTPResponse:
    hosting = hosting_of(request)
    # The same ids asked again while the mirror has not changed: the same answer, kept.
    query_string = request.query_string
    kept = hosting.cached_listing(query_string)
    if kept is not None:
        return json_bytes(kept)
    args = query(request)
    # Each answer is keyed by the id as requested ("/web1" too), looked up as the engine reads it.
    asked = {requested: parse_container_ref(requested) for requested in args.getlist("id")}
    if asked:  # (running is ignored when ids are given)
        return json_bytes(await hosting.listing_json(asked, None, key=query_string))
    running = args.get("running")
    running_flag = None if running is None else parse_bool(running, "running", False)
    return json_bytes(await hosting.full_listing_json(running_flag))


@bp.put("")
async def create_container(request: Request) -> HTTPResponse:
    settings = context_of(request).settings
    create = parse_create(
        parse_json_object(request.body),
        port_area_size=settings.port_area_size,
        min_host_port=settings.min_host_port,
        own_port=settings.listen_port,
    )
    return json_response(await hosting_of(request).create(create))


@bp.delete("")
async def delete_container(request: Request) -> HTTPResponse:
    ref = _ref(request)
    delete_volume = parse_bool(query(request).get("deletevolume"), "deletevolume", True)
    failure = await hosting_of(request).delete(ref, delete_volume=delete_volume)
    return with_hook_report(no_content(), failure)


@bp.patch("")
async def update_limits(request: Request) -> HTTPResponse:
    ref = _ref(request)
    limits = parse_limits(parse_json_object(request.body))
    warnings = await hosting_of(request).update_limits(ref, limits)
    return json_response({"Warnings": warnings})


@bp.post("/start")
async def start_container(request: Request) -> HTTPResponse:
    failure = await hosting_of(request).start(_ref(request))
    return with_hook_report(no_content(), failure)


@bp.post("/stop")
async def stop_container(request: Request) -> HTTPResponse:
    grace = parse_stop_grace(query(request).get("t"), context_of(request).settings.stop_timeout)
    failure = await hosting_of(request).stop(_ref(request), grace_s=grace)
    return with_hook_report(no_content(), failure)


@bp.post("/restart")
async def restart_container(request: Request) -> HTTPResponse:
    grace = parse_stop_grace(query(request).get("t"), context_of(request).settings.stop_timeout)
    failure = await hosting_of(request).restart(_ref(request), grace_s=grace)
    return with_hook_report(no_content(), failure)
