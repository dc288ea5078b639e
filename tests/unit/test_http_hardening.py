"""The HTTP surface against hostile clients, without an engine: invented methods, header bytes
that are not UTF-8, numbers too long to convert, a token with stray whitespace, and requests a
browser makes for another site (``Host``, ``Origin``, ``Sec-Fetch-Site``) when no token is set.

Requests that httpx would refuse to send are written on a raw socket to a real server on a free
loopback port (served in this event loop against a fake engine).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sanic_testing.testing import SanicASGITestClient

from docker_api import DockerClient
from dockerlink.app import create_app
from dockerlink.settings import Settings, load_settings

from ..conftest import serve_app
from .fakes import fake_engine_client

TOKEN = "unit-test-token-0123456789"


def settings_for(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(docker_sock="/fake.sock", data_dir=tmp_path / "data", **changes)


def no_engine() -> httpx.Response:
    return httpx.Response(404, json={"message": "no such container"})


def fake_engine() -> DockerClient:
    return fake_engine_client(lambda request: no_engine())


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, without the blank line) and ``body`` on a fresh
    connection; the answer's status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        length = f"Content-Length: {len(body)}\r\n".encode() if body else b""
        writer.write(head + b"\r\n" + length + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload


# -- methods -----------------------------------------------------------------------------------


async def test_invented_methods_are_recorded_and_logged_as_other(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    invented = [f"INVENTED{i}".encode() for i in range(150)] + [
        b"G\x01T",
        b"GET\rINFO dockerlink.request: [forged] GET /v1/forged 200",
        b"X" * 4000,
        b"get",
    ]
    caplog.set_level(logging.INFO, logger="dockerlink.request")
    async with serve_app(settings_for(tmp_path), docker=fake_engine()) as (_app, client):
        port = client.base_url.port
        assert port is not None
        for method in invented:
            status, _ = await raw_request(port, method + b" /v1/env HTTP/1.1\r\nHost: localhost")
            assert 400 <= status < 500, method
        assert (await client.get("/v1/env")).status_code == 200
        metrics = (await client.get("/metrics")).text
    methods = set(re.findall(r'method="([^"]*)"', metrics))
    assert methods == {"GET", "other"}
    series = [
        line for line in metrics.splitlines() if line.startswith("dockerlink_http_requests_total{")
    ]
    assert len(series) <= 4, series  # GET and other, by route and status
    logged = [r.getMessage() for r in caplog.records if r.name == "dockerlink.request"]
    assert len(logged) >= len(invented)
    assert not any("forged" in line or "INVENTED" in line or "XXXX" in line for line in logged)
    assert not any("\r" in line or "\n" in line or "\x01" in line for line in logged)
    assert sum(" other /v1/env " in line for line in logged) >= 150


# -- the token ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer \xff\xfe",
        b"Authorization: \xff\xfe " + TOKEN.encode(),
        b"Authorization: Bearer " + TOKEN.encode() + b"\xc3",
        b"Authorization: Bearer \xed\xa0\x80",  # an encoded surrogate
    ],
)
async def test_authorization_bytes_that_are_not_utf8_are_a_401(
    tmp_path: Path, header: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path, api_token=TOKEN)
    async with serve_app(settings, docker=fake_engine()) as (_app, client):
        port = client.base_url.port
        assert port is not None
        status, body = await raw_request(
            port, b"GET /v1/env HTTP/1.1\r\nHost: localhost\r\n" + header
        )
        assert (await client.get("/v1/env")).status_code == 200  # the real token still works
    assert (status, body.count(b"\n")) == (401, 1), body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("raw_token", [f" {TOKEN}", f"{TOKEN}\n", f"\t{TOKEN} \r\n"])
async def test_a_token_with_surrounding_whitespace_is_stripped(
    tmp_path: Path, raw_token: str
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f'api_token="{raw_token}"\n')
    from_file = load_settings({"data_dir": str(tmp_path / "data")}, env_file=env_file)
    from_env = load_settings({"DOCKERLINK_API_TOKEN": raw_token}, env_file=None)
    assert from_file.api_token == from_env.api_token == TOKEN
    app = create_app(replace(from_env, docker_sock="/fake.sock"), docker=fake_engine())
    client = SanicASGITestClient(app)
    _, answer = await client.get("/v1/env", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    _, refused = await client.get("/v1/env", headers={"Authorization": f"Bearer {raw_token}x"})
    assert refused.status_code == 401


def test_a_token_of_whitespace_only_is_no_token() -> None:
    assert load_settings({"api_token": " \t "}, env_file=None).api_token is None


# -- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("PUT", "/v1/container", "host_port_root"),
        ("PUT", "/v1/container", "memory"),
        ("PUT", "/v1/container", "unknown"),
        ("PATCH", "/v1/container?id=web1", "memory"),
        ("PATCH", "/v1/container?id=web1", "cpulimit"),
    ],
)
@pytest.mark.parametrize("number", ["1" * 5000, "-" + "9" * 5000, "1" * 10_000])
async def test_a_number_too_long_to_convert_is_a_400(
    tmp_path: Path, method: str, path: str, field: str, number: str
) -> None:
    calls: list[httpx.Request] = []

    def engine(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return no_engine()

    app = create_app(settings_for(tmp_path), docker=fake_engine_client(engine))
    body = f'{{"name": "web1", "{field}": {number}, "cpulimit": 1, "memory": 1}}'
    if field == "cpulimit":
        body = f'{{"memory": 1, "{field}": {number}}}'
    _, answer = await SanicASGITestClient(app).request(method, path, content=body.encode())
    assert answer.status_code == 400
    assert (
        answer.text
        == f"invalid JSON body: a number with {len(number.lstrip('-'))} digits is too long\n"
    )
    assert [c for c in calls if c.method != "GET"] == []  # (the mirror lists containers)
