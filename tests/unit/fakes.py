"""A fake engine for unit tests: the handshake every client makes, then the test's own answers."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from docker_api import DockerClient

GIB = 1 << 30

Handler = Callable[[httpx.Request], httpx.Response]


def fake_engine_client(
    handler: Handler, *, timeout: float = 2, max_connections: int = 64
) -> DockerClient:
    """A client whose engine (API 1.41) answers ping, /version and /info itself, and hands every
    other request to ``handler``."""

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/_ping":
            return httpx.Response(200, text="OK", headers={"Api-Version": "1.41"})
        if path.endswith("/version"):
            return httpx.Response(200, json={"Version": "20.10.24", "MinAPIVersion": "1.12"})
        if path.endswith("/info"):
            return httpx.Response(200, json={"NCPU": 2, "MemTotal": 8 * GIB})
        return handler(request)

    return DockerClient(
        "/fake.sock",
        timeout=timeout,
        transport=httpx.MockTransport(answer),
        max_connections=max_connections,
    )
