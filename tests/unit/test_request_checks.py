"""The check of every request (the token, or the rule on browsers without one) answers the same
wherever it runs: in a route's handler (a matched route), or through Sanic's middleware (an
unmatched path or method, a body too large, a route with middleware of its own), once a request.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

import dockerlink.app
from dockerlink.settings import Settings

from ..conftest import serve_app
from .fakes import fake_engine_client

TOKEN = "unit-test-token-0123456789"
BEARER = f"Authorization: Bearer {TOKEN}\r\n"
UPGRADE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)
SUBPROTOCOL_TOKEN = (
    "Sec-WebSocket-Protocol: bearer."
    + base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("=")
    + "\r\n"
)


def engine(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/containers/json"):
        return httpx.Response(200, json=[])
    return httpx.Response(404, json={"message": "no such container"})


def settings_for(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(docker_sock="/fake.sock", data_dir=tmp_path / "data", **changes)


async def ask(
    port: int,
    method: str,
    target: str,
    headers: str = "",
    body: bytes = b"",
    host: str = "127.0.0.1:7200",
) -> tuple[int, dict[str, str]]:
    """The answer's status and headers (names lower-cased) to one request on a raw socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        length = f"Content-Length: {len(body)}\r\n" if body else ""
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{headers}{length}"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    lines = answer.partition(b"\r\n\r\n")[0].decode().split("\r\n")
    fields = (line.partition(": ") for line in lines[1:])
    return int(lines[0].split()[1]), {name.lower(): value for name, _, value in fields}


async def test_with_a_token_every_kind_of_request_is_checked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = 0
    token_ok = dockerlink.app._token_ok

    def counted(*args: Any) -> bool:
        nonlocal checks
        checks += 1
        return token_ok(*args)

    monkeypatch.setattr(dockerlink.app, "_token_ok", counted)
    big = b"x" * (dockerlink.app.REQUEST_MAX_SIZE + 1)
    cases = [  # method, target, headers, body, status without the token, status with it
        ("GET", "/v1/env", "", b"", 401, 200),  # a route's handler runs the check
        ("GET", "/nope", "", b"", 401, 404),  # no route: Sanic's middleware
        ("BREW", "/v1/container", "", b"", 401, 405),  # no such method: likewise
        ("PUT", "/v1/container", "", big, 401, 413),  # refused before its handler
        # a route with middleware of its own (404: no such container)
        ("GET", "/v1/container/terminal?id=web1", UPGRADE, b"", 401, 404),
    ]
    async with serve_app(
        settings_for(tmp_path, api_token=TOKEN), docker=fake_engine_client(engine)
    ) as (app, client):
        app.finalize()  # again, as app.amend() does: the check still runs once
        port = client.base_url.port
        assert port is not None
        for method, target, headers, body, refused, accepted in cases:
            for given, status in (("", refused), (BEARER, accepted)):
                checks = 0
                answer, answer_headers = await ask(port, method, target, headers + given, body)
                assert (answer, checks) == (status, 1), (method, target, given)
                assert answer_headers["x-request-id"]
                if status == 401:
                    assert answer_headers["www-authenticate"] == "Bearer"
        upgrade = await ask(
            port, "GET", "/v1/container/terminal?id=web1", UPGRADE + SUBPROTOCOL_TOKEN
        )
        assert upgrade[0] == 404
        for public in ("/health", "/openapi.json", "/", "/terminal"):
            checks = 0
            assert (await ask(port, "GET", public))[0] in {200, 400}, public
            assert checks == 0, public  # (public paths never look at the token)


async def test_a_preflight_is_answered_on_every_path_without_a_token(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, api_token=TOKEN, cors_origins=("https://panel.example",))
    async with serve_app(settings, docker=fake_engine_client(engine)) as (_app, client):
        port = client.base_url.port
        assert port is not None
        origin = "Origin: https://panel.example\r\nAccess-Control-Request-Method: PUT\r\n"
        for target in ("/v1/container", "/v1/env", "/nope", "/health"):
            status, headers = await ask(port, "OPTIONS", target, origin)
            assert status == 204, target
            assert "PUT" in headers["access-control-allow-methods"]
            assert headers["access-control-allow-origin"] == "https://panel.example"


async def test_without_a_token_a_foreign_host_is_refused_on_every_path(tmp_path: Path) -> None:
    async with serve_app(settings_for(tmp_path), docker=fake_engine_client(engine)) as (_, client):
        port = client.base_url.port
        assert port is not None
        for method, target, status in (
            ("GET", "/v1/env", 200),
            ("GET", "/nope", 404),
            ("BREW", "/v1/env", 405),
            ("GET", "/health", 200),
        ):
            assert (await ask(port, method, target))[0] == status, target
        for method, target in (("GET", "/v1/env"), ("GET", "/nope"), ("BREW", "/v1/env")):
            assert (await ask(port, method, target, host="evil.example"))[0] == 403, target
        assert (await ask(port, "GET", "/health", host="evil.example"))[0] == 200
