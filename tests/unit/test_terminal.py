"""The terminal's pieces that need no engine: resize messages, the token as a WebSocket
subprotocol, the page (template, policy) and the files it may load."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sanic_testing.testing import SanicASGITestClient
from websockets.protocol import State

import docker_api
from dockerlink import terminal as terminal_module
from dockerlink.app import create_app
from dockerlink.settings import Settings, SettingsError, load_settings
from dockerlink.terminal import (
    HELD_INPUT_LIMIT,
    RESIZE_COST,
    DirectRelay,
    Resize,
    Session,
    TerminalSessions,
    close_or_drop,
    parse_resize,
)
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
    for path in (
        "/static/vendor/VERSIONS",
        "/static/%2e%2e/app.py",
        "/static/dashboard.html",
        "/v1/ssh/web1/static/vendor/VERSIONS",  # the same files for the panels' shell tab
    ):
        _, missing = await client.get(path)
        assert (missing.status_code, missing.text) == (404, "not found\n"), path
    # the page needs a container reference; without a token it asks for none
    _, bad = await client.get("/terminal")
    assert (bad.status_code, bad.text) == (400, "id is required\n")
    _, open_page = await serving(tmp_path / "open", token=None).get("/terminal?id=web1")
    assert 'data-token="none"' in open_page.text


def browser_resolves(path: str, location: str) -> str:
    """A relative path ``location`` as a browser resolves it against ``path`` (WHATWG URL: the
    base's last segment goes, then each ``..`` drops one segment, empty ones included)."""
    segments = path.split("/")[1:-1]
    target, _, query = location.partition("?")
    for part in target.split("/"):
        if part == "..":
            if segments:
                segments.pop()
        else:
            segments.append(part)
    return "/" + "/".join(segments) + (f"?{query}" if query else "")


async def test_public_pages_with_a_trailing_slash(tmp_path: Path) -> None:
    """They are public too, and a page goes to its address without the slash, where its
    relative links hold (a relative location: behind nginx the path is another)."""
    client = serving(tmp_path)
    _, health = await client.get("/health/")
    assert health.status_code != 401
    for path, page in (
        ("/terminal/?id=web1", "/terminal?id=web1"),
        ("/v1/ssh/web1/wetty/", "/v1/ssh/web1/wetty"),
        ("/v1/ssh/web1/wetty//", "/v1/ssh/web1/wetty"),
    ):
        _, moved = await client.get(path, follow_redirects=False)
        assert moved.status_code == 308, path
        assert browser_resolves(path.partition("?")[0], moved.headers["location"]) == page
    assert browser_resolves("/wetty/", "../wetty") == "/wetty"  # behind nginx


# -- the bridge, with a scripted socket and stream (orders a real engine cannot force) ----------


class ScriptedSocket:
    """Hands out ``messages``, then waits (an idle client); records what it was sent."""

    def __init__(self, *messages: str | bytes) -> None:
        self.messages = list(messages)
        self.sent: list[str | bytes] = []

    async def recv(self, timeout: float | None = None) -> str | bytes | None:
        if self.messages:
            return self.messages.pop(0)
        await asyncio.sleep(3600)
        return None

    async def send(self, message: str | bytes) -> None:
        self.sent.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        return None


class ExitingShell:
    """Prints ``bye`` and ends its output a little later; input fails once it has exited."""

    def __init__(self) -> None:
        self.chunks = [b"bye\r\n", b""]

    async def read(self, max_bytes: int = 65536) -> bytes:
        await asyncio.sleep(0.05)
        return self.chunks.pop(0)

    async def write(self, data: bytes, *, timeout: float | None = None) -> None:
        raise docker_api.EngineUnreachable("connection to /fake.sock failed: Broken pipe")


def sessions_with(exit_code: int) -> TerminalSessions:
    def engine(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/exec/e1/json"), request.url
        return httpx.Response(200, json={"Running": False, "ExitCode": exit_code})

    return TerminalSessions(fake_engine_client(engine), Settings(docker_sock="/fake.sock"))


async def test_a_keystroke_into_an_exiting_shell_still_closes_with_its_exit_code() -> None:
    session = Session("c1", exec_id="e1", stream=ExitingShell())  # type: ignore[arg-type]
    socket = ScriptedSocket(b"x")
    assert await sessions_with(7).bridge(session, socket) == (1000, "shell exited with code 7")
    assert socket.sent == [b"bye\r\n"]


async def test_a_bad_resize_closes_with_1008() -> None:
    session = Session("c1", exec_id="e1", stream=ExitingShell())  # type: ignore[arg-type]
    socket = ScriptedSocket('{"type": "resize", "cols": 80, "rows": 0}')
    code, reason = await sessions_with(0).bridge(session, socket)
    assert (code, reason) == (1008, "resize: rows must be a whole number from 1 to 4096")


# -- the direct relay and the closing handshake, with stand-ins for Sanic's socket ----------------


class StubTransport:
    def __init__(self) -> None:
        self.paused = False

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16 * 1024, 64 * 1024)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


class StubWebSocket:
    """What DirectRelay reaches of Sanic's WebSocket when input is held."""

    def __init__(self) -> None:
        self.io_proto = SimpleNamespace(transport=StubTransport())
        self.ws_proto = SimpleNamespace(state=State.OPEN)


class ShellStdin:
    """A hijacked stream whose stdin takes everything at once."""

    def __init__(self) -> None:
        self.typed = bytearray()

    def deliver_to(self, sink: object) -> None:
        return None

    def write_nowait(self, data: bytes) -> bool:
        self.typed += data
        return True

    async def drain(self, *, timeout: float | None = None) -> None:
        return None


async def test_resizes_are_held_as_one_and_count_against_the_hold() -> None:
    """A client sending resizes faster than the engine applies them: those in a row are held
    as the newest one, and resizes between keystrokes fill the hold (and stop reading the
    client) as bytes do, instead of queueing without a bound."""
    ws = StubWebSocket()
    relay = DirectRelay(ws, idle_s=600)  # type: ignore[arg-type]
    gate = asyncio.Event()
    applied: list[Resize] = []

    async def resize(size: Resize) -> None:
        applied.append(size)
        await gate.wait()  # a slow engine call

    stdin = ShellStdin()
    relay.attach(stdin, resize)  # type: ignore[arg-type]
    relay._text_message(b'{"type": "resize", "cols": 80, "rows": 24}')
    await asyncio.sleep(0)  # the worker takes it, and waits on the engine
    assert applied == [Resize(80, 24)]
    for n in range(10_000):
        relay._text_message(f'{{"type": "resize", "cols": {81 + n % 4000}, "rows": 24}}'.encode())
    assert list(relay.held) == [Resize(81 + 9_999 % 4000, 24)]
    assert relay.held_bytes == RESIZE_COST
    for _ in range(1_100):
        relay._type(b"x")
        relay._text_message(b'{"type": "resize", "cols": 100, "rows": 30}')
    assert relay.held_bytes == RESIZE_COST + 1_100 * (1 + RESIZE_COST) > HELD_INPUT_LIMIT
    assert ws.io_proto.transport.paused
    gate.set()
    for _ in range(200):
        if not relay.held and relay.worker is None:
            break
        await asyncio.sleep(0.01)
    assert not relay.held
    assert relay.held_bytes == 0
    assert not ws.io_proto.transport.paused
    assert bytes(stdin.typed) == b"x" * 1_100
    assert len(applied) == 2 + 1_100
    assert not relay.outcome.done()  # nothing in all that ended the session
    await relay.stop()


class StuckSocket:
    """A client that stopped reading: the close frame never finds room."""

    def __init__(self) -> None:
        self.failed: int | None = None

    async def recv(self, timeout: float | None = None) -> str | bytes | None:
        await asyncio.sleep(3600)
        return None

    async def send(self, message: str | bytes) -> None:
        await asyncio.sleep(3600)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await asyncio.sleep(3600)

    def fail_connection(self, code: int = 1006, reason: str = "") -> bool:
        self.failed = code
        return True


async def test_a_client_that_stops_reading_is_dropped_after_the_close_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(terminal_module, "CLOSE_TIMEOUT_S", 0.1)
    socket = StuckSocket()
    await asyncio.wait_for(close_or_drop(socket, 1000, "idle"), 2)
    assert socket.failed == 1006
