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
from dockerlink.openapi import openapi_document
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


@pytest.mark.parametrize(
    "target",
    [b"/v1/con\rtainer?id=x\x1b[31mRED", b"/v1/env\x00", b"/v1/\x7f", b"/v1/container\x0b"],
)
async def test_a_target_that_is_not_a_url_gets_a_400_and_one_escaped_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, target: bytes
) -> None:
    """Sanic itself closed such a connection without an answer and logged a traceback with the
    raw bytes (terminal escape sequences included)."""
    caplog.set_level(logging.INFO)
    async with serve_app(settings_for(tmp_path), docker=fake_engine()) as (_app, client):
        port = client.base_url.port
        assert port is not None
        status, body = await raw_request(port, b"GET " + target + b" HTTP/1.1\r\nHost: localhost")
        assert (await client.get("/v1/env")).status_code == 200  # the server is fine
    assert (status, body) == (400, b"the request target is not a valid URL\n")
    lines = [r.getMessage() for r in caplog.records if r.name == "dockerlink.request"]
    assert lines[0].startswith(f"[{lines[0][1:33]}] GET {repr(target)[2:-1]} 400 ")
    # No traceback (the fake engine's mirror warns of its own, unrelated to the request).
    assert not [r for r in caplog.records if r.name.startswith("sanic") or r.exc_info]


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


# -- requests a browser makes for another site -------------------------------------------------


class Recorder:
    """A fake engine that records every call and knows no container."""

    def __init__(self) -> None:
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        return no_engine()

    @property
    def writes(self) -> list[str]:
        return [f"{c.method} {c.url.path}" for c in self.calls if c.method != "GET"]


def browser_client(tmp_path: Path, **changes: Any) -> tuple[SanicASGITestClient, Recorder]:
    engine = Recorder()
    app = create_app(settings_for(tmp_path, **changes), docker=fake_engine_client(engine))
    return SanicASGITestClient(app), engine


def assert_refused(answer: httpx.Response, why: str) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.text.count("\n") == 1 and answer.text.endswith("\n")
    assert why in answer.text
    for setting in ("allowed_hosts", "cors_origins", "api_token"):
        assert setting in answer.text


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:7200", "127.0.0.1.evil.example", "localhost.evil:80"]
)
async def test_a_foreign_host_is_refused_without_a_token(tmp_path: Path, host: str) -> None:
    client, engine = browser_client(tmp_path)
    _, stop = await client.post("/v1/container/stop?id=web1", headers={"Host": host})
    assert_refused(stop, f"Host '{host}'")
    _, listing = await client.get("/v1/container", headers={"Host": host})
    assert_refused(listing, "Host")
    assert engine.writes == []


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:7200",
        "LocalHost:7200",
        "127.0.0.1",
        "127.0.0.1:7200",
        "127.12.0.1:80",
        "[::1]",
        "[::1]:7200",
    ],
)
async def test_loopback_hosts_are_accepted(tmp_path: Path, host: str) -> None:
    client, _ = browser_client(tmp_path)
    _, answer = await client.get("/v1/env", headers={"Host": host})
    assert answer.status_code == 200, answer.text


async def test_allowed_hosts_adds_names_with_any_port(tmp_path: Path) -> None:
    client, _ = browser_client(tmp_path, allowed_hosts=("dockerlink.internal", "10.0.0.5"))
    for host in ("dockerlink.internal", "DOCKERLINK.internal:7200", "10.0.0.5:7200"):
        _, answer = await client.get("/v1/env", headers={"Host": host})
        assert answer.status_code == 200, (host, answer.text)
    _, other = await client.get("/v1/env", headers={"Host": "evil.internal"})
    assert_refused(other, "Host")


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:8080"])
async def test_a_foreign_origin_is_refused_without_a_token(tmp_path: Path, origin: str) -> None:
    client, engine = browser_client(tmp_path, cors_origins=("https://panel.example",))
    _, stop = await client.post(
        "/v1/container/stop?id=web1", headers={"Host": "localhost:7200", "Origin": origin}
    )
    assert_refused(stop, f"Origin '{origin}'")
    assert engine.writes == []


async def test_the_own_origin_and_listed_origins_are_accepted(tmp_path: Path) -> None:
    client, _ = browser_client(tmp_path, cors_origins=("https://panel.example",))
    own = {"Host": "localhost:7200", "Origin": "http://localhost:7200"}
    _, answer = await client.get("/v1/env", headers={**own, "Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 200, answer.text
    listed = {"Origin": "https://panel.example", "Sec-Fetch-Site": "cross-site"}
    _, preflight = await client.options(
        "/v1/container", headers={**listed, "Access-Control-Request-Method": "PUT"}
    )
    assert preflight.status_code == 204
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    _, answer = await client.get("/v1/env", headers=listed)
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == "https://panel.example"


async def test_cors_origins_star_lists_no_origin_without_a_token(tmp_path: Path) -> None:
    """Else every web page could drive the API, and open a terminal, through a browser that
    can reach it. With a token, the token decides."""
    client, engine = browser_client(tmp_path, cors_origins=("*",))
    anyone = {"Origin": "https://anyone.example", "Sec-Fetch-Site": "cross-site"}
    _, stop = await client.post("/v1/container/stop?id=web1", headers=anyone)
    assert_refused(stop, "Origin 'https://anyone.example'")
    assert "(cors_origins=* lists no origin without a token)" in stop.text
    _, upgrade = await client.get(
        "/v1/container/terminal?id=web1",
        headers={**anyone, "Upgrade": "websocket", "Connection": "Upgrade"},
    )
    assert_refused(upgrade, "Origin")
    assert engine.writes == []
    client, _ = browser_client(tmp_path, cors_origins=("*",), api_token="t" * 32)
    _, answer = await client.get(
        "/v1/env", headers={**anyone, "Authorization": "Bearer " + "t" * 32}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site"])
async def test_sec_fetch_site_of_another_site_is_refused(tmp_path: Path, site: str) -> None:
    client, engine = browser_client(tmp_path)
    # A form or an <img> sends no Origin on a GET, but says which site asked.
    _, answer = await client.get("/v1/git/pull?id=web1", headers={"Sec-Fetch-Site": site})
    assert_refused(answer, f"Sec-Fetch-Site: '{site}'")
    _, stop = await client.post("/v1/container/stop?id=web1", headers={"Sec-Fetch-Site": site})
    assert_refused(stop, "Sec-Fetch-Site")
    assert engine.writes == []


@pytest.mark.parametrize("site", ["same-origin", "none"])
async def test_sec_fetch_site_of_this_site_is_accepted(tmp_path: Path, site: str) -> None:
    client, _ = browser_client(tmp_path)
    _, answer = await client.get("/v1/env", headers={"Sec-Fetch-Site": site})
    assert answer.status_code == 200, answer.text


async def test_public_routes_are_exempt(tmp_path: Path) -> None:
    client, _ = browser_client(tmp_path)
    foreign = {
        "Host": "evil.example",
        "Origin": "https://evil.example",
        "Sec-Fetch-Site": "cross-site",
    }
    for path in ("/health", "/", "/openapi.json"):
        _, answer = await client.get(path, headers=foreign)
        assert answer.status_code == 200, (path, answer.text)
    # Routes served by other parts of dockerlink, which may be off: anything but a refusal.
    for path in ("/terminal", "/v1/ssh/web1/wetty", "/v1/ssh/web1/socket"):
        _, answer = await client.get(path, headers=foreign)
        assert answer.status_code != 403, (path, answer.text)
    _, metrics = await client.get("/metrics", headers=foreign)
    assert_refused(metrics, "Host")
    public_metrics, _ = browser_client(tmp_path, metrics_public=True)
    _, metrics = await public_metrics.get("/metrics", headers=foreign)
    assert metrics.status_code == 200


async def test_with_a_token_the_token_decides(tmp_path: Path) -> None:
    client, _ = browser_client(tmp_path, api_token=TOKEN)
    foreign = {
        "Host": "evil.example",
        "Origin": "https://evil.example",
        "Sec-Fetch-Site": "cross-site",
    }
    _, refused = await client.get("/v1/env", headers=foreign)
    assert refused.status_code == 401
    _, answer = await client.get("/v1/env", headers={**foreign, "Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),
        (f"BEARER  {TOKEN}", 200),
        (f"Bearer {TOKEN}x", 401),
        (f"Bearer {TOKEN[:-1]}", 401),
        (f"Bearer x{TOKEN[1:]}", 401),
        (f"Basic {TOKEN}", 401),
        (TOKEN, 401),
        ("Bearer", 401),
    ],
)
async def test_the_token_in_every_spelling_of_the_header(
    tmp_path: Path, authorization: str, status: int
) -> None:
    """The usual ``Bearer <token>`` is compared whole; every other spelling is parsed."""
    client, _ = browser_client(tmp_path, api_token=TOKEN)
    _, answer = await client.get("/v1/env", headers={"Authorization": authorization})
    assert answer.status_code == status


async def test_a_token_outside_ascii_is_checked_too(tmp_path: Path) -> None:
    """The whole ``Bearer <token>`` is compared only as ASCII text; another token is parsed."""
    token = "tökén-0123456789"
    settings = settings_for(tmp_path, api_token=token)
    async with serve_app(settings, docker=fake_engine()) as (_app, client):
        port = client.base_url.port
        assert port is not None
        for given, status in ((token, 200), ("tökén-012345678", 401), ("token-0123456789", 401)):
            head = b"GET /v1/env HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            answer, body = await raw_request(port, head + given.encode())
            assert answer == status, (given, body)


async def test_panel_and_curl_calls_still_work(tmp_path: Path) -> None:
    """Server-side callers on the host send a loopback Host and no browser headers."""
    async with serve_app(settings_for(tmp_path), docker=fake_engine()) as (_app, client):
        port = client.base_url.port
        assert port is not None
        for head in (
            # The panels: node's fetch to API_URL=http://localhost:7200/v1.
            b"GET /v1/env HTTP/1.1\r\nHost: localhost:%d\r\nUser-Agent: node\r\nAccept: */*" % port,
            b"GET /v1/env HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: curl/8.5.0" % port,
            b"GET /v1/env HTTP/1.0",  # no Host at all
        ):
            status, body = await raw_request(port, head)
            assert status == 200, (head, body)
        status, body = await raw_request(
            port, b"GET /v1/env HTTP/1.1\r\nHost: rebound.example:%d" % port
        )
        assert status == 403, body


def test_the_document_lists_the_refusal_on_every_guarded_operation() -> None:
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            guarded = operation.get("security") != []
            assert ("403" in operation["responses"]) == guarded, (method, path)
