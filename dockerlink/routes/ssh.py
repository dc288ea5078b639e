"""``/v1/ssh/<name>/``: the panels' shell tab (the page, its files, and its WebSocket).

Public routes (no token: the customer's browser has none, and the container's own sshd
authenticates), registered only when ``ssh_bridge`` is on; they reach nothing but the SSH port
of a dockerlink container (see :mod:`dockerlink.ssh_bridge`).
"""

from __future__ import annotations

import contextlib

from sanic import Blueprint, HTTPResponse, Request
from sanic.exceptions import WebsocketClosed
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed

from ..context import context_of
from ..errors import Conflict
from ..hosting import ManagedContainer
from ..requests import parse_container_ref
from ..responses import without_slash
from ..ssh_bridge import Resize, SSHTarget, parse_terminal_message, ssh_target
from ..terminal import SUBPROTOCOL, close_or_drop
from ..terminal_page import asset_response, page_response
from ._common import hosting_of

#: Every route under it is public (app.py lets it through without a token).
PREFIX = "/v1/ssh/"

#: The socket alone: its request middleware gives the answers due before the upgrade.
socket_bp = Blueprint("ssh_socket", strict_slashes=False)
page_bp = Blueprint("ssh_page", strict_slashes=False)


async def container_named(request: Request, name: str) -> ManagedContainer:
    """The dockerlink container called ``name`` (404 for any other, 412 when not ours)."""
    return await hosting_of(request).managed(
        parse_container_ref(name, "name"), mirrored=True, name_only=True
    )


@socket_bp.on_request
async def before_upgrade(request: Request) -> None:
    """404, 412, 409 (not running), 429 (too many sessions), as HTTP answers: Sanic upgrades
    the connection before a websocket handler runs, so they are given here, in the route's
    middleware."""
    container = await container_named(request, str(request.match_info.get("name", "")))
    if not container.running:
        raise Conflict("container is not running")
    target = ssh_target(container)
    context_of(request).ssh.check_room(target.container_id)
    request.ctx.ssh_target = target


class WebSocketTerminal:
    """:class:`dockerlink.ssh_bridge.Terminal` over Sanic's WebSocket."""

    def __init__(self, ws: WebsocketImplProtocol) -> None:
        self._ws = ws

    async def read(self) -> bytes | Resize | None:
        try:
            message = await self._ws.recv()
        except (ConnectionClosed, WebsocketClosed):
            return None
        return None if message is None else parse_terminal_message(message)

    async def write(self, data: bytes) -> None:
        await self._ws.send(data)

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed, WebsocketClosed):
            await close_or_drop(self._ws, code, reason)


async def socket(request: Request, ws: WebsocketImplProtocol, name: str) -> None:
    target: SSHTarget = request.ctx.ssh_target
    with contextlib.suppress(ConnectionClosed, WebsocketClosed):
        await context_of(request).ssh.serve(WebSocketTerminal(ws), target)


socket_bp.add_websocket_route(socket, "/v1/ssh/<name>/socket", subprotocols=[SUBPROTOCOL])


@page_bp.get("/v1/ssh/<name>/wetty")
async def wetty(request: Request, name: str) -> HTTPResponse:
    """The terminal page (the same as /terminal's), for the panels' iframe.

    Its URLs are relative (``socket``, ``static/...``), so it works at
    ``https://ssh.<name>.<domain>/wetty`` behind nginx as well as here.
    """
    if (moved := without_slash(request)) is not None:
        return moved
    container = await container_named(request, name)
    ancestors = context_of(request).settings.ssh_frame_ancestors
    return page_response(
        title=f"{container.name.lstrip('/')} · shell",
        socket="socket",
        token_required=False,
        assets="static/",
        frame_ancestors=" ".join(ancestors) or "'none'",
    )


@page_bp.get("/v1/ssh/<name>/static/<path:path>")
async def static_file(request: Request, name: str, path: str) -> HTTPResponse:
    """The page's files (the same as /static/...), where the page finds them behind nginx."""
    return asset_response(path)
