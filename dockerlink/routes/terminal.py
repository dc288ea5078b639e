"""``GET /v1/container/terminal`` (WebSocket), ``GET /terminal`` (its page) and the page's files."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request
from sanic.server.websockets.impl import WebsocketImplProtocol

from ..context import context_of
from ..errors import Conflict
from ..requests import parse_container_ref
from ..responses import without_slash
from ..terminal import SUBPROTOCOL, DirectRelay, TerminalSessions
from ..terminal_page import asset_response, page_response
from ._common import hosting_of, query

#: The socket route alone: its request middleware gives the answers due before the upgrade.
socket_bp = Blueprint("terminal_socket", strict_slashes=False)
page_bp = Blueprint("terminal_page", strict_slashes=False)


def sessions_of(request: Request) -> TerminalSessions:
    terminals = context_of(request).terminals
    assert terminals is not None, "the app has not started"
    return terminals


@socket_bp.on_request
async def before_upgrade(request: Request) -> None:
    """404, 412, 409 (not running) and 429, as HTTP answers: Sanic upgrades the connection
    before a websocket handler runs, so they are given here, in the route's middleware."""
    ref = parse_container_ref(query(request).get("id"))
    container = await hosting_of(request).managed(ref)
    if not container.running:
        raise Conflict("container is not running")
    sessions_of(request).check_room()
    request.ctx.terminal_container_id = container.id


async def take_over_input(request: Request, websocket: object) -> None:
    """Give a terminal's socket its direct relay as soon as it is upgraded, before the handler
    runs, so that no frame the client sends goes Sanic's other way (see DirectRelay).

    Sanic dispatches this signal for every WebSocket route: only the terminal's middleware
    set ``terminal_container_id``.
    """
    if getattr(request.ctx, "terminal_container_id", None) is None:
        return
    if DirectRelay.supports(websocket):
        assert isinstance(websocket, WebsocketImplProtocol)
        idle_s = context_of(request).settings.terminal_idle_timeout
        request.ctx.terminal_relay = DirectRelay(websocket, idle_s)


socket_bp.add_signal(take_over_input, "websocket.handler.before")


async def terminal(request: Request, ws: WebsocketImplProtocol) -> None:
    relay = getattr(request.ctx, "terminal_relay", None)
    await sessions_of(request).serve(request.ctx.terminal_container_id, ws, relay)


socket_bp.add_websocket_route(terminal, "/v1/container/terminal", subprotocols=[SUBPROTOCOL])


@page_bp.get("/terminal")
async def terminal_page(request: Request) -> HTTPResponse:
    if (moved := without_slash(request)) is not None:
        return moved
    ref = parse_container_ref(query(request).get("id"))
    return page_response(
        title=f"{ref} · dockerlink terminal",
        socket=f"v1/container/terminal?id={ref}",
        token_required=context_of(request).settings.api_token is not None,
    )


@page_bp.get("/static/<path:path>")
async def static_file(request: Request, path: str) -> HTTPResponse:
    return asset_response(path)
