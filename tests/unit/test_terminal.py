"""The terminal's pieces that need no engine: resize messages, the token as a WebSocket
subprotocol, the page (template, policy) and the files it may load."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import httpx
import pytest
from sanic_testing.testing import SanicASGITestClient

from dockerlink.app import create_app
from dockerlink.settings import Settings, SettingsError, load_settings
from dockerlink.terminal import Resize, parse_resize
from dockerlink.terminal_page import ASSETS

from .fakes import fake_engine_client

TOKEN = "unit-test-token-0123456789"


def serving(tmp_path: Path, token: str | None = TOKEN) -> SanicASGITestClient:
    settings = Settings(docker_sock="/fake.sock", api_token=token, data_dir=tmp_path)
    docker = fake_engine_client(lambda request: httpx.Response(200, json=[]))
    return SanicASGITestClient(create_app(settings, docker=docker))


def test_resize_messages() -> None:
    assert parse_resize('{"type": "resize", "cols": 120, "rows": 40}') == Resize(120, 40)
    # anything else is typed as input
    for text in ("ls\n", "{", '{"type": "input"}', "[1]", '{"cols": 1, "rows": 1}'):
        assert parse_resize(text) is None, text
    for cols, rows in ((0, 10), (10, 0), (5000, 10), (1.5, 10), ('"80"', 10), ("true", 10)):
        with pytest.raises(ValueError, match="must be a whole number from 1 to 4096"):
            parse_resize(f'{{"type": "resize", "cols": {cols}, "rows": {rows}}}')


def test_terminal_settings() -> None:
    settings = load_settings(
        {"terminal_max_sessions": "2", "DOCKERLINK_TERMINAL_IDLE_TIMEOUT": "2.5"}, env_file=None
    )
    assert (settings.terminal_max_sessions, settings.terminal_idle_timeout) == (2, 2.5)
    assert (Settings().terminal_max_sessions, Settings().terminal_idle_timeout) == (32, 900)
    for name, value in (("terminal_max_sessions", "0"), ("terminal_idle_timeout", "0.5")):
        with pytest.raises(SettingsError, match=name):
            load_settings({name: value}, env_file=None)


def bearer(token: str) -> str:
    return "bearer." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


async def test_the_token_as_a_websocket_subprotocol(tmp_path: Path) -> None:
    client = serving(tmp_path)
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}

    async def status(headers: dict[str, str]) -> int:
        _, response = await client.get("/v1/env", headers=headers)
        return int(response.status_code)

    offered = f"dockerlink.terminal, {bearer(TOKEN)}"
    assert await status({**upgrade, "Sec-WebSocket-Protocol": offered}) == 200
    # only on an upgrade, only the right token, only well-formed base64url
    assert await status({"Sec-WebSocket-Protocol": offered}) == 401
    wrong = f"dockerlink.terminal, {bearer('wrong-token-0123456789')}"
    assert await status({**upgrade, "Sec-WebSocket-Protocol": wrong}) == 401
    assert await status({**upgrade, "Sec-WebSocket-Protocol": "bearer.!!notbase64"}) == 401
    assert await status({**upgrade, "Sec-WebSocket-Protocol": "dockerlink.terminal"}) == 401


async def test_the_page_is_public_and_loads_only_its_own_files(tmp_path: Path) -> None:
    client = serving(tmp_path)
    _, page = await client.get("/terminal", params={"id": "web1"})
    assert page.status_code == 200
    html = page.text
    assert 'data-socket="v1/container/terminal?id=web1"' in html
    assert 'data-token="required"' in html
    assert "{{" not in html
    policy = dict(
        part.split(" ", 1) for part in page.headers["content-security-policy"].split("; ")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "<script>" not in html  # no inline script
    sources = re.findall(r"(?:src|href)=\"([^\"]*)\"", html)
    assert set(sources) == {
        "data:,",
        "static/vendor/xterm.css",
        "static/vendor/xterm.js",
        "static/vendor/addon-fit.js",
        "static/terminal.js",
    }
    for source in sources:
        if source == "data:,":
            continue
        _, asset = await client.get("/" + source)
        assert asset.status_code == 200, source
        assert asset.headers["content-type"] == ASSETS[source.removeprefix("static/")]
        assert len(asset.body) > 0
    # nothing else under /static/, however it is spelled
    for path in ("/static/vendor/VERSIONS", "/static/%2e%2e/app.py", "/static/dashboard.html"):
        _, missing = await client.get(path)
        assert missing.status_code == 404, path
    # the page needs a container reference; without a token it asks for none
    _, bad = await client.get("/terminal")
    assert (bad.status_code, bad.text) == (400, "id is required\n")
    _, open_page = await serving(tmp_path / "open", token=None).get("/terminal?id=web1")
    assert 'data-token="none"' in open_page.text
