"""``GET /v1/container/terminal``: a real shell in a real container through the WebSocket.

The shell's output, resize, the answers before the upgrade, the token as a subprotocol, the
idle timeout, the session limit, what is left in the container after a session (``ps`` inside
it), and a ``yes`` flood read slowly by the client with the real ``dockerlink serve``'s peak
RSS measured.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import TEST_IMAGE, TEST_TOKEN, engine_socket_path, serve_app, wait_for
from ..dockerlink_process import DockerlinkProcess
from ._api import create_and_start
from .terminal_client import Screen, open_terminal

#: Marks the processes a test starts in a shell, to find them with ps afterwards.
LEFTOVER = re.compile(r"sleep 10[0-9][0-9]\b")


@pytest.fixture
async def served(engine_settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings = replace(engine_settings, api_token=TEST_TOKEN)
    async with serve_app(settings) as served:
        yield served


def url_of(client: httpx.AsyncClient) -> str:
    return str(client.base_url).rstrip("/")


async def leftovers(docker: DockerClient, container: str) -> list[str]:
    """The test's ``sleep 10NN`` processes still running in the container."""
    result = await docker.execs.run(container, ["ps", "-o", "pid,user,args"], timeout=10)
    return [line for line in result.text().splitlines() if LEFTOVER.search(line)]


async def none_left(docker: DockerClient, container: str) -> None:
    """Nothing the session ran is in the container within 5 s (the spec's promise)."""

    async def clean() -> bool:
        return not await leftovers(docker, container)

    await wait_for(clean, timeout=5, interval=0.2)


async def start_leftovers(screen: Screen, docker: DockerClient, container: str) -> None:
    """A background job, one that ignores SIGHUP (as nohup), one in a session of its own
    (setsid), and one in the foreground."""
    await screen.type(
        "sleep 1001 & (trap '' HUP; exec sleep 1002) & setsid sleep 1003 & echo started-$((40+2))\n"
    )
    await screen.expect("started-42")
    await screen.type("sleep 1004\n")

    async def all_four() -> bool:
        return len(await leftovers(docker, container)) == 4

    await wait_for(all_four, timeout=10, interval=0.1)


async def test_the_shell_echoes_resizes_and_closes_1000_when_it_exits(
    served: tuple[Any, httpx.AsyncClient],
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dockerlink.request")
    app, client = served
    container = await create_and_start(client, docker, cleanup, unique_name("term"))
    async with open_terminal(url_of(client), container, TEST_TOKEN) as ws:
        # dockerlink picks its own protocol and never sends the token back
        assert ws.subprotocol == "dockerlink.terminal"
        assert ws.response is not None
        assert "bearer" not in str(ws.response.headers).lower()
        screen = Screen(ws)
        await screen.type('echo "$(id -un) $(pwd) $TERM $((6*7))"\n')
        await screen.expect(r"admin /var/www/html xterm-256color 42")
        await screen.resize(cols=123, rows=45)
        await screen.type("stty size\n")
        await screen.expect(r"\b45 123\b")
        # a text frame that is not a resize is typed as input
        await ws.send("echo typed-as-$((1+1))\n")
        await screen.expect("typed-as-2")
        assert len(app.ctx.terminals.open) == 1
        await screen.type("exit 3\n")
        code, reason = await screen.until_closed()
    assert (code, reason) == (1000, "shell exited with code 3")
    await wait_for(lambda: not app.ctx.terminals.open, timeout=15)
    # The upgrade is logged and counted once, as 101 (the handshake answers it, not respond()).
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "dockerlink.request" and "/v1/container/terminal" in r.getMessage()
    ]
    assert len(lines) == 1 and " GET /v1/container/terminal?id=" in lines[0], lines
    assert f"={container} 101 " in lines[0], lines
    metrics = (await client.get("/metrics")).text
    counted = "dockerlink_http_requests_total" + (
        '{method="GET",route="/v1/container/terminal",status="101"}'
    )
    assert [line for line in metrics.splitlines() if line.startswith(counted)] == [f"{counted} 1"]


async def test_input_sent_at_once_keeps_its_order_and_bad_text_closes_the_session(
    served: tuple[Any, httpx.AsyncClient],
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """Sanic's sessions go through the direct relay: what the client sends before the shell is
    attached, a resize among keystrokes, and text that is not UTF-8 or a bad resize."""
    app, client = served
    container = await create_and_start(client, docker, cleanup, unique_name("term"))
    async with open_terminal(url_of(client), container, TEST_TOKEN) as ws:
        screen = Screen(ws)
        # sent before the shell exists: held, then typed in order, the resize first
        await screen.resize(cols=77, rows=22)
        await screen.type("stty size; echo held-$((5+5))\n")
        await screen.expect(r"\b22 77\r?\n.*held-10")
        assert [s.relayed for s in app.ctx.terminals.open] == [True]
        await screen.resize(cols=81, rows=25)
        await screen.type("stty size\n")
        await screen.expect(r"\b25 81\b")
        await start_leftovers(screen, docker, container)  # ended with the session, 1007 too
        await ws.send(b"echo \xff\n", text=True)
        async with asyncio.timeout(15):
            await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (1007, "a text message must be UTF-8")
    async with open_terminal(url_of(client), container, TEST_TOKEN) as ws:
        await ws.send('{"type": "resize", "cols": 0, "rows": 24}')
        async with asyncio.timeout(15):
            await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (
            1008,
            "resize: cols must be a whole number from 1 to 4096",
        )
    await none_left(docker, container)
    await wait_for(lambda: not app.ctx.terminals.open, timeout=15)


async def test_a_paste_larger_than_every_buffer_arrives_whole_and_in_order(
    served: tuple[Any, httpx.AsyncClient],
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """Input backpressure: 3 MiB typed while the shell reads nothing (it sleeps) fills the
    terminal, the engine's connection and dockerlink's held input, which then stops reading
    the client; once the shell reads again, every byte arrives, in order."""
    app, client = served
    container = await create_and_start(client, docker, cleanup, unique_name("term"))
    paste = b"".join(b"%07d:%s\n" % (n, b"x" * 55) for n in range(3 * 1024 * 1024 // 64))
    async with open_terminal(url_of(client), container, TEST_TOKEN) as ws:
        screen = Screen(ws)
        await screen.type("echo ready-$((2+5))\n")
        await screen.expect("ready-7")
        await screen.type(
            f"stty raw -echo; sleep 2; head -c {len(paste)} > /tmp/paste; stty sane; "
            "md5sum /tmp/paste; wc -c < /tmp/paste\n"
        )
        for start in range(0, len(paste), 16 * 1024):
            await ws.send(paste[start : start + 16 * 1024])
        found = await screen.expect(r"([0-9a-f]{32})  /tmp/paste\s+(\d+)", timeout=60)
    assert found.group(2) == str(len(paste))
    assert found.group(1) == hashlib.md5(paste).hexdigest()
    await wait_for(lambda: not app.ctx.terminals.open, timeout=15)


async def test_answers_before_the_upgrade(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    settings = replace(engine_settings, api_token=TEST_TOKEN, terminal_max_sessions=1)
    async with serve_app(settings) as (app, client):
        running = await create_and_start(client, docker, cleanup, unique_name("term"))
        stopped = await create_and_start(client, docker, cleanup, unique_name("term"))
        assert (await client.post("/v1/container/stop", params={"id": stopped})).status_code == 204
        foreign = unique_name("foreign")
        created = await docker.containers.create(
            {"Image": TEST_IMAGE, "Cmd": ["sleep", "600"]}, name=foreign
        )
        cleanup.append(created["Id"])
        await docker.containers.start(foreign)
        base = url_of(client)

        async def refused(container: str, token: str | None) -> tuple[int, str]:
            with pytest.raises(InvalidStatus) as caught:
                async with open_terminal(base, container, token):
                    pass
            response = caught.value.response
            return response.status_code, response.body.decode() if response.body else ""

        assert await refused(running, None) == (401, "unauthorized\n")
        assert await refused(running, "wrong-token-0123456789") == (401, "unauthorized\n")
        assert await refused("dltest-no-such-container", TEST_TOKEN) == (
            404,
            "no such container: dltest-no-such-container\n",
        )
        assert await refused(foreign, TEST_TOKEN) == (
            412,
            "this docker has not been created with dockerlink\n",
        )
        assert await refused(stopped, TEST_TOKEN) == (409, "container is not running\n")
        # the same answers over plain HTTP (what the page reads when an upgrade fails)
        answer = await client.get(
            "/v1/container/terminal", params={"id": stopped}, headers={"Connection": "close"}
        )
        assert (answer.status_code, answer.text) == (409, "container is not running\n")

        async with open_terminal(base, running, TEST_TOKEN) as ws:
            await Screen(ws).expect(r"\$ ")
            status, text = await refused(running, TEST_TOKEN)
            assert status == 429
            assert "terminal_max_sessions" in text
        # the slot is free again once the first session has ended
        await wait_for(lambda: not app.ctx.terminals.open, timeout=15)
        async with open_terminal(base, running, TEST_TOKEN) as ws:
            screen = Screen(ws)
            await screen.type("echo again-$((2*2))\n")
            await screen.expect("again-4")


async def test_a_client_that_goes_away_leaves_no_process_behind(
    served: tuple[Any, httpx.AsyncClient],
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    app, client = served
    container = await create_and_start(client, docker, cleanup, unique_name("term"))
    async with open_terminal(url_of(client), container, TEST_TOKEN) as ws:
        screen = Screen(ws)
        await start_leftovers(screen, docker, container)
        ws.transport.abort()  # no close frame: the connection just breaks
    await none_left(docker, container)
    await wait_for(lambda: not app.ctx.terminals.open, timeout=15)


async def test_an_idle_session_is_closed_and_its_processes_end(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    settings = replace(engine_settings, api_token=TEST_TOKEN, terminal_idle_timeout=2)
    async with serve_app(settings) as (app, client):
        container = await create_and_start(client, docker, cleanup, unique_name("term"))
        async with open_terminal(url_of(client), container, TEST_TOKEN) as ws:
            screen = Screen(ws)
            await start_leftovers(screen, docker, container)
            code, reason = await screen.until_closed(timeout=20)
        assert code == 1000
        assert reason == "no input for 2 s (terminal_idle_timeout)"
        await none_left(docker, container)
        # (the slot is freed when the ending exec returns, which can be after ps sees nothing)
        await wait_for(lambda: not app.ctx.terminals.open, timeout=15)


async def test_a_flood_read_slowly_keeps_dockerlink_memory_bounded(
    tmp_path: Path,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """``yes`` prints far faster than the client reads: dockerlink must hold it back. Then
    dockerlink is stopped with the session open: what the session ran ends too."""
    process = DockerlinkProcess(
        tmp_path,
        {
            "docker_sock": engine_socket_path(),
            "base_image": TEST_IMAGE,
            "api_token": TEST_TOKEN,
            "data_dir": str(tmp_path / "data"),
            "sample_interval": "60",
        },
    )
    process.start()
    try:
        await process.until_healthy()
        headers = {"Authorization": f"Bearer {TEST_TOKEN}"}
        async with httpx.AsyncClient(base_url=process.url, headers=headers, timeout=60) as client:
            container = await create_and_start(client, docker, cleanup, unique_name("flood"))
        async with open_terminal(process.url, container, TEST_TOKEN, max_queue=1) as ws:
            screen = Screen(ws)
            await screen.type("echo ready-$((1+1))\n")
            await screen.expect("ready-2")
            process.reset_peak_rss()
            before = process.peak_rss_kib() * 1024
            await screen.type("yes dockerlink-flood-line\n")
            received = 0
            for _ in range(40):  # 40 small reads, 50 ms apart: about 2 s of a slow reader
                message = await ws.recv()
                received += len(message)
                await asyncio.sleep(0.05)
            after = process.peak_rss_kib() * 1024
            assert received > 0
            # what the shell had printed meanwhile (hundreds of MiB at yes' pace) was not
            # buffered: dockerlink's peak grew by less than 16 MiB
            assert after - before < 16 * 1024 * 1024, (before, after)
            await ws.send(b"\x03")  # ^C stops yes; the shell answers again
            await screen.type("echo done-$((3+3))\n")
            async with asyncio.timeout(30):
                while b"done-6" not in screen.output:
                    message = await ws.recv()
                    assert isinstance(message, bytes)
                    screen.output = screen.output[-4096:] + message
            # dockerlink stopping (SIGTERM) with the session open ends what it ran
            await screen.type("sleep 1007 & echo bg-$((4+4))\n")
            await screen.expect("bg-8")
            assert await leftovers(docker, container)
            assert await asyncio.to_thread(process.stop) == 0
        await none_left(docker, container)
    finally:
        process.stop()
