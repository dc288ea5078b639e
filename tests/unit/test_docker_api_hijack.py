"""docker_api's hijacked stream where a real engine cannot be made to fail: no socket, an answer
that is not HTTP, an engine that never answers, an error status, and a client on a transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

import docker_api
from docker_api import DockerClient

PING = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK"
VERSION_BODY = b'{"ApiVersion":"1.41","MinAPIVersion":"1.12","Version":"20.10.24"}'
VERSION = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(VERSION_BODY),
    VERSION_BODY,
)


@asynccontextmanager
async def fake_engine(
    path: Path, answer_start: Callable[[bytes], bytes | None]
) -> AsyncIterator[None]:
    """A unix socket answering ping and version, and ``answer_start(request)`` to the rest
    (None: say nothing, keep the connection open)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            if b"/_ping" in head:
                writer.write(PING)
            elif b"/version" in head:
                writer.write(VERSION)
            else:
                answer = answer_start(head)
                if answer is None:
                    await asyncio.sleep(3600)
                writer.write(answer or b"")
            await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(serve, path=str(path))
    try:
        yield
    finally:
        server.close()


async def test_no_socket_is_unreachable(tmp_path: Path) -> None:
    async with DockerClient(str(tmp_path / "none.sock"), timeout=2, api_version="1.41") as docker:
        with pytest.raises(docker_api.EngineUnreachable):
            await docker.execs.attach("abc", tty=True)


async def test_an_answer_that_is_not_http(tmp_path: Path) -> None:
    sock = tmp_path / "engine.sock"
    not_http = fake_engine(sock, lambda head: b"SSH-2.0-nope\r\n\r\n")
    async with not_http, DockerClient(str(sock), timeout=2) as docker:
        with pytest.raises(docker_api.EngineUnreachable, match="not HTTP"):
            await docker.execs.attach("abc", tty=True)


async def test_endless_headers_are_refused(tmp_path: Path) -> None:
    sock = tmp_path / "engine.sock"
    endless = fake_engine(
        sock, lambda head: b"HTTP/1.1 101 UPGRADED\r\nX-Filler: " + b"a" * 200_000
    )
    async with endless, DockerClient(str(sock), timeout=2) as docker:
        with pytest.raises(docker_api.EngineUnreachable):
            await docker.execs.attach("abc", tty=True)


async def test_an_engine_that_never_answers_times_out(tmp_path: Path) -> None:
    sock = tmp_path / "engine.sock"
    async with fake_engine(sock, lambda head: None), DockerClient(str(sock), timeout=5) as docker:
        with pytest.raises(docker_api.EngineTimeout, match=r"within 0\.2 s"):
            await docker.execs.attach("abc", tty=True, timeout=0.2)


async def test_an_error_status_maps_like_every_call(tmp_path: Path) -> None:
    body = b'{"message":"Container abc is paused, unpause the container before exec"}'
    answer = (
        b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    sock = tmp_path / "engine.sock"
    seen: list[bytes] = []

    def start(head: bytes) -> bytes:
        seen.append(head)
        return answer

    async with fake_engine(sock, start), DockerClient(str(sock), timeout=2) as docker:
        with pytest.raises(docker_api.Conflict, match="is paused"):
            await docker.execs.attach("abc", tty=True)
    (head,) = seen
    assert head.startswith(b"POST /v1.41/exec/abc/start HTTP/1.1\r\n")
    assert b"\r\nUpgrade: tcp\r\n" in head
    assert b"\r\nConnection: Upgrade\r\n" in head


async def test_a_client_on_a_transport_cannot_hijack() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with DockerClient(transport=transport, api_version="1.41") as docker:
        with pytest.raises(docker_api.DockerError, match="engine's own socket"):
            await docker.execs.attach("abc", tty=True)


async def test_a_cancelled_attach_closes_its_connection(tmp_path: Path) -> None:
    """A client that leaves while the upgrade is under way cancels the attach: the connection
    it opened is closed then, not left for the engine to close."""
    sock = tmp_path / "engine.sock"
    asked, closed = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        asked.set()
        while await reader.read(4096):  # until the client closes its end
            pass
        closed.set()
        writer.close()

    server = await asyncio.start_unix_server(silent, path=str(sock))
    try:
        async with DockerClient(str(sock), timeout=30, api_version="1.41") as docker:
            attach = asyncio.create_task(docker.execs.attach("abc", tty=True))
            await asyncio.wait_for(asked.wait(), 10)
            attach.cancel()
            with pytest.raises(asyncio.CancelledError):
                await attach
            await asyncio.wait_for(closed.wait(), 10)
    finally:
        server.close()


async def test_a_close_that_cannot_send_ends_the_connection_and_keeps_a_cancellation(
    tmp_path: Path,
) -> None:
    """A process that never reads its stdin: the close gives what was written 2 s to go, then
    aborts the connection; a cancellation while it waits is not swallowed."""
    sock = tmp_path / "engine.sock"
    ended = asyncio.Event()

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        await writer.drain()
        await asyncio.sleep(4)  # reads nothing, then sees whether the client is still there
        while await reader.read(1 << 20):
            pass
        ended.set()

    server = await asyncio.start_unix_server(never_reads, path=str(sock))
    try:
        async with DockerClient(str(sock), timeout=30, api_version="1.41") as docker:
            for cancel in (False, True):
                ended.clear()
                stream = await docker.execs.attach("abc", tty=True)
                stream.write_nowait(b"x" * (8 << 20))  # more than the socket buffers hold
                closing = asyncio.create_task(stream.aclose())
                if cancel:
                    await asyncio.sleep(0.1)
                    closing.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await closing
                else:
                    await asyncio.wait_for(closing, 5)
                await asyncio.wait_for(ended.wait(), 10)  # the connection is gone
    finally:
        server.close()
