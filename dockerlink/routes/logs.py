"""``GET /v1/container/logs``: a container's output, streamed as the client reads it.

The engine's answer is relayed frame by frame: each frame is sent to the client (Sanic's
``send`` waits while the client's socket buffer is full) before the next one is read from the
engine, so memory holds one frame whatever the size of the log or the speed of the client.
A followed log ends when the container stops (the engine ends its answer) or when the client
goes away (Sanic cancels the handler; leaving ``hosting.logs`` closes the engine connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator

from sanic import Blueprint, Request

import docker_api

from ..requests import parse_container_ref, parse_logs
from ._common import hosting_of, query

__all__ = ["bp"]

bp = Blueprint("logs", url_prefix="/container", version=1, strict_slashes=False)

log = logging.getLogger("dockerlink")

TEXT = "text/plain; charset=utf-8"
#: How often a followed log that prints nothing tells Sanic the answer is still alive.
KEEP_OPEN_INTERVAL_S = 30.0


@bp.get("/logs")
async def container_logs(request: Request) -> None:
    args = query(request)
    ref = parse_container_ref(args.get("id"))
    logs = parse_logs(args)
    async with hosting_of(request).logs(ref, logs) as frames:
        # The engine has answered: from here on the status is 200 and errors cut the stream.
        response = await request.respond(content_type=TEXT)
        await response.send(b"")  # the headers now: a followed log may stay quiet for long
        async with _kept_open(request, enabled=logs.follow):
            try:
                async for frame in frames:
                    await response.send(frame.data)
            except docker_api.DockerError as exc:
                # Too late for an error status. Sanic would end the answer as if it were
                # whole; the connection is dropped instead, without the final chunk, so that
                # the client sees a cut answer.
                log.warning("logs of %s cut: engine error %s", ref, exc.message)
                _drop(request)
                return
            except asyncio.CancelledError:
                # The client went away (Sanic cancels the handler, and then logs no request
                # line): say so; the engine stream is closed on the way out.
                log.info("logs of %s: the client left after %.1f s", ref, _age_s(request))
                raise
        await response.eof()


def _drop(request: Request) -> None:
    """Close the client's connection at once, unsent data and final chunk included."""
    abort = getattr(request.transport, "abort", None)  # asyncio's and uvloop's transports
    if callable(abort):
        abort()
    else:
        request.transport.close()


def _probe_the_peer(request: Request) -> None:
    """TCP keepalive on a followed log's connection: a client that vanished without closing
    it (a dropped NAT entry, a machine turned off) is noticed in about two minutes even while
    the container prints nothing, and the engine's stream is closed then."""
    sock = request.transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
            if hasattr(socket, option):  # Linux names; other systems keep their defaults
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _age_s(request: Request) -> float:
    started = getattr(request, "started_s", None)  # set by the app's request class
    return time.monotonic() - started if isinstance(started, float) else 0.0


@contextlib.asynccontextmanager
async def _kept_open(request: Request, *, enabled: bool) -> AsyncIterator[None]:
    """Keep Sanic's response timeout from ending a followed log that is quiet.

    Sanic counts its response timeout from the last write; a followed log may rightly write
    nothing for hours, and must end only when the client leaves or the container stops. Sanic
    has no per-route setting, so the connection's clock is moved on while the log is followed.
    """
    if not enabled:
        yield
        return
    protocol = request.protocol
    _probe_the_peer(request)

    async def touch() -> None:
        while True:
            await asyncio.sleep(KEEP_OPEN_INTERVAL_S)
            if hasattr(protocol, "_time"):
                protocol._time = time.monotonic()

    task = asyncio.create_task(touch(), name="dockerlink.logs.keep-open")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
