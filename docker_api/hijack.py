"""The hijacked connection: an exec or attach call upgraded to a raw, two-way byte stream.

``POST /exec/{id}/start`` (and ``/containers/{id}/attach``) sent with ``Connection: Upgrade`` and
``Upgrade: tcp`` answers ``101 UPGRADED``; from then on the connection carries the process's
stdin one way and its output the other, with no HTTP framing. This module speaks that exchange
on a connection of its own (not one of the client's pooled ones: an interactive session holds
its connection for hours and must not starve ordinary calls), and gives back a
:class:`HijackedStream`.

The stream is an :class:`asyncio.Protocol` underneath, so it can be used two ways:

- pulled: :meth:`HijackedStream.read` and :meth:`HijackedStream.write`; nothing more is read
  from the engine while ``READ_LIMIT`` bytes wait unread, so a reader slower than the process's
  output holds the process back instead of growing memory;
- pushed: :meth:`HijackedStream.deliver_to` hands each chunk of output to a sink as it arrives
  (no task, no wake-up between the socket and the sink), and the sink holds the process back
  with :meth:`HijackedStream.pause_output`; :meth:`HijackedStream.write_nowait` writes stdin at
  once and says when the process is not reading it (then :meth:`HijackedStream.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from typing import Protocol, cast

import orjson

from .errors import DockerError, EngineTimeout, EngineUnreachable, error_for_status

__all__ = ["READ_LIMIT", "HijackedStream", "OutputSink", "open_hijacked"]

#: Most bytes one read returns, and the size at which the stream stops reading the socket.
READ_LIMIT = 64 * 1024
#: Longest status line plus headers accepted in the engine's answer.
_HEAD_LIMIT = 64 * 1024
#: Most bytes of an error body read (the engine's messages are short JSON objects).
_ERROR_BODY_LIMIT = 64 * 1024


class OutputSink(Protocol):
    """Where :meth:`HijackedStream.deliver_to` sends the output; called from the event loop."""

    def output_received(self, data: bytes) -> None:
        """A chunk of output (never empty)."""

    def output_ended(self, error: DockerError | None) -> None:
        """The output ended (``None``: the process closed it) or the connection broke."""


class _Connection(asyncio.Protocol):
    """The socket's side: a buffer for pulled reads, a sink for pushed ones, write pausing."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: DockerError | None = None
        self.sink: OutputSink | None = None
        self.sink_paused = False
        self.reading_paused = False
        self.writing_paused = False
        self.lost = False
        self.waiter: asyncio.Future[None] | None = None
        self.drain_waiters: list[asyncio.Future[None]] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but have its methods)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is not None and not self.buffer:
            sink.output_received(data)
            return
        self.buffer += data
        self._wake()
        self._update_reading()

    def eof_received(self) -> bool:
        self._end(None)
        return True  # keep the write side open until the stream is closed

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._end(EngineUnreachable(f"connection to {self.address} failed: {exc}") if exc else None)
        for waiter in self.drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.drain_waiters.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        for waiter in self.drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.drain_waiters.clear()

    # -- helpers ---------------------------------------------------------------------------------

    def _end(self, error: DockerError | None) -> None:
        if self.eof:
            return
        self.eof = True
        self.error = error
        self._wake()
        if self.sink is not None and not self.buffer:
            self.sink.output_ended(error)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _update_reading(self) -> None:
        pause = self.sink_paused or len(self.buffer) >= READ_LIMIT
        if pause == self.reading_paused or self.transport is None or self.eof:
            return
        self.reading_paused = pause
        if pause:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    async def wait_for_data(self) -> None:
        """Until the buffer has bytes or the output ended."""
        await self.wait_for_data_beyond(0)

    async def wait_for_data_beyond(self, size: int) -> None:
        """Until the buffer holds more than ``size`` bytes or the output ended."""
        if len(self.buffer) > size or self.eof:
            return
        assert self.waiter is None, "two readers at once"
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def take(self, max_bytes: int) -> bytes:
        chunk = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        self._update_reading()
        return chunk


class HijackedStream:
    """A process's stdin (``write``) and output (``read``) over the upgraded connection.

    With a TTY the output is the raw terminal bytes; without one it is multiplexed frames
    (feed them to :class:`~docker_api.streams.FrameDecoder`).
    """

    def __init__(self, connection: _Connection) -> None:
        assert connection.transport is not None
        self._connection = connection
        self._transport = connection.transport

    async def read(self, max_bytes: int = READ_LIMIT) -> bytes:
        """Up to ``max_bytes`` of output, waiting as long as it takes; ``b""`` once it ended."""
        connection = self._connection
        await connection.wait_for_data()
        if connection.buffer:
            return connection.take(max_bytes)
        if connection.error is not None:
            raise connection.error
        return b""

    def deliver_to(self, sink: OutputSink) -> None:
        """From now on, hand every chunk of output to ``sink`` as it arrives, then its end.

        Output already received is handed over at once, in this call. Not with :meth:`read`.
        """
        connection = self._connection
        connection.sink = sink
        if connection.buffer:
            data = connection.take(len(connection.buffer))
            sink.output_received(data)
        if connection.eof:
            sink.output_ended(connection.error)

    def pause_output(self) -> None:
        """Read nothing more from the engine (the process blocks once its pipe is full)."""
        self._connection.sink_paused = True
        self._connection._update_reading()

    def resume_output(self) -> None:
        self._connection.sink_paused = False
        self._connection._update_reading()

    def write_nowait(self, data: bytes) -> bool:
        """Send ``data`` to the process's stdin now; False when the engine's side is not
        taking it in (then :meth:`drain` before writing more)."""
        if self._connection.lost:
            raise EngineUnreachable(f"connection to {self._connection.address} failed: closed")
        self._transport.write(data)
        return not self._connection.writing_paused

    async def drain(self, *, timeout: float | None = None) -> None:
        """Until what was written is taken in (down to the transport's low-water mark)."""
        connection = self._connection
        try:
            async with asyncio.timeout(timeout):
                while connection.writing_paused and not connection.lost:
                    waiter = asyncio.get_running_loop().create_future()
                    connection.drain_waiters.append(waiter)
                    await waiter
        except TimeoutError as exc:
            raise EngineTimeout(f"the process took no input for {timeout:g} s") from exc
        if connection.lost:
            raise EngineUnreachable(f"connection to {connection.address} failed: closed")

    async def write(self, data: bytes, *, timeout: float | None = None) -> None:
        """Send ``data`` to the process's stdin; waits while the process does not read it."""
        if not self.write_nowait(data):
            await self.drain(timeout=timeout)

    async def close_stdin(self) -> None:
        """Half-close: the process reads end of file on stdin, its output still arrives."""
        with contextlib.suppress(OSError, RuntimeError):
            if self._transport.can_write_eof() and not self._transport.is_closing():
                self._transport.write_eof()

    async def aclose(self) -> None:
        """Close the connection (the process itself is not stopped by this). Input not yet
        sent gets 2 s to go (a close waits for the write buffer to empty); then the connection
        is aborted, so that a process that never reads cannot keep it open."""
        self._transport.close()
        try:
            async with asyncio.timeout(2):
                await asyncio.shield(self._connection.closed)
        except TimeoutError:
            self._transport.abort()
        except asyncio.CancelledError:
            self._transport.abort()
            raise

    async def __aenter__(self) -> HijackedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def open_hijacked(
    *,
    unix_path: str | None,
    host: str | None,
    port: int | None,
    tls: ssl.SSLContext | None,
    address: str,
    path: str,
    body: Mapping[str, object],
    timeout: float,
) -> HijackedStream:
    """Connect, ``POST path`` with ``body`` asking for the upgrade, and return the stream.

    ``timeout`` bounds connecting and the engine's answer; an error status raises the
    matching :mod:`docker_api.errors` class, as any other call.
    """
    content = orjson.dumps(body)
    request = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host or 'docker'}\r\n"
        "User-Agent: docker_api\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(content)}\r\n"
        "Connection: Upgrade\r\n"
        "Upgrade: tcp\r\n"
        "\r\n"
    ).encode() + content
    loop = asyncio.get_running_loop()
    transport: asyncio.BaseTransport | None = None
    connection = _Connection(address)
    try:
        async with asyncio.timeout(timeout):
            if unix_path is not None:
                transport, _ = await loop.create_unix_connection(lambda: connection, unix_path)
            else:
                transport, _ = await loop.create_connection(
                    lambda: connection,
                    host,  # type: ignore[arg-type]
                    port,  # type: ignore[arg-type]
                    ssl=tls,
                    server_hostname=host if tls else None,
                )
            connection.transport = transport
            connection.transport.write(request)
            status, reason, headers = await _read_head(connection)
            if status == 101:
                return HijackedStream(connection)
            error_body = await _read_error_body(connection, headers)
    except BaseException as exc:
        # Whatever ended it (a cancellation too: a client that left during the upgrade), the
        # connection is closed, not left to the engine.
        if transport is not None:
            transport.close()
        if isinstance(exc, TimeoutError):
            raise EngineTimeout(f"no answer from the engine within {timeout:g} s") from exc
        if isinstance(exc, OSError | ssl.SSLError | asyncio.IncompleteReadError | ValueError):
            raise EngineUnreachable(f"connection to {address} failed: {exc}") from exc
        raise
    transport.close()
    raise error_for_status(status, error_body, headers.get("content-type", ""), reason)


async def _read_until(connection: _Connection, separator: bytes, limit: int) -> bytes:
    """The buffer up to and including ``separator``, taken out of it."""
    while True:
        found = connection.buffer.find(separator)
        if found >= 0:
            return connection.take(found + len(separator))
        if len(connection.buffer) > limit:
            raise ValueError("the engine's answer has oversized headers")
        if connection.eof:
            if connection.error is not None:
                raise connection.error
            raise asyncio.IncompleteReadError(bytes(connection.buffer), None)
        await connection.wait_for_data_beyond(len(connection.buffer))


async def _read_head(connection: _Connection) -> tuple[int, str, dict[str, str]]:
    """The status line and headers of the engine's answer."""
    head = await _read_until(connection, b"\r\n\r\n", _HEAD_LIMIT)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"the engine answered {lines[0][:80]!r}, not HTTP")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


async def _read_error_body(connection: _Connection, headers: Mapping[str, str]) -> bytes:
    length = headers.get("content-length", "")
    if not length.isdigit():
        await connection.wait_for_data()
        return connection.take(_ERROR_BODY_LIMIT)
    wanted = min(int(length), _ERROR_BODY_LIMIT)
    while len(connection.buffer) < wanted and not connection.eof:
        await connection.wait_for_data_beyond(len(connection.buffer))
    if len(connection.buffer) < wanted:
        raise asyncio.IncompleteReadError(bytes(connection.buffer), wanted)
    return connection.take(wanted)
