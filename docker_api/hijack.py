"""The hijacked connection: an exec or attach call upgraded to a raw, two-way byte stream.

``POST /exec/{id}/start`` (and ``/containers/{id}/attach``) sent with ``Connection: Upgrade`` and
``Upgrade: tcp`` answers ``101 UPGRADED``; from then on the connection carries the process's
stdin one way and its output the other, with no HTTP framing. This module speaks that exchange
on a connection of its own (not one of the client's pooled ones: an interactive session holds
its connection for hours and must not starve ordinary calls), and gives back a
:class:`HijackedStream`.

Reads are pulled by the caller: nothing is read from the engine until :meth:`HijackedStream.read`
is called, and the socket's receive buffer and the stream's own buffer (``READ_LIMIT`` bytes)
are all that is held meanwhile, so a reader slower than the process's output holds the process
back instead of growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping

import orjson

from .errors import EngineTimeout, EngineUnreachable, error_for_status

__all__ = ["READ_LIMIT", "HijackedStream", "open_hijacked"]

#: Most bytes one read returns, and the size at which the stream stops reading the socket.
READ_LIMIT = 64 * 1024
#: Longest status line plus headers accepted in the engine's answer.
_HEAD_LIMIT = 64 * 1024
#: Most bytes of an error body read (the engine's messages are short JSON objects).
_ERROR_BODY_LIMIT = 64 * 1024


class HijackedStream:
    """A process's stdin (``write``) and output (``read``) over the upgraded connection.

    With a TTY the output is the raw terminal bytes; without one it is multiplexed frames
    (feed them to :class:`~docker_api.streams.FrameDecoder`).
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, address: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._address = address

    async def read(self, max_bytes: int = READ_LIMIT) -> bytes:
        """Up to ``max_bytes`` of output, waiting as long as it takes; ``b""`` once it ended."""
        try:
            return await self._reader.read(max_bytes)
        except (OSError, ssl.SSLError) as exc:
            raise EngineUnreachable(f"connection to {self._address} failed: {exc}") from exc

    async def write(self, data: bytes, *, timeout: float | None = None) -> None:
        """Send ``data`` to the process's stdin; waits while the process does not read it."""
        try:
            self._writer.write(data)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError as exc:
            raise EngineTimeout(f"the process took no input for {timeout:g} s") from exc
        except (OSError, ssl.SSLError) as exc:
            raise EngineUnreachable(f"connection to {self._address} failed: {exc}") from exc

    async def close_stdin(self) -> None:
        """Half-close: the process reads end of file on stdin, its output still arrives."""
        with contextlib.suppress(OSError, RuntimeError):
            if self._writer.can_write_eof():
                self._writer.write_eof()

    async def aclose(self) -> None:
        """Close the connection (the process itself is not stopped by this)."""
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
            async with asyncio.timeout(2):
                await self._writer.wait_closed()

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
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            if unix_path is not None:
                reader, writer = await asyncio.open_unix_connection(unix_path, limit=READ_LIMIT)
            else:
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None, limit=READ_LIMIT
                )
            writer.write(request)
            await writer.drain()
            status, reason, headers = await _read_head(reader)
            if status == 101:
                return HijackedStream(reader, writer, address=address)
            error_body = await _read_error_body(reader, headers)
    except TimeoutError as exc:
        if writer is not None:
            writer.close()
        raise EngineTimeout(f"no answer from the engine within {timeout:g} s") from exc
    except (
        OSError,
        ssl.SSLError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        ValueError,
    ) as exc:
        if writer is not None:
            writer.close()
        raise EngineUnreachable(f"connection to {address} failed: {exc}") from exc
    writer.close()
    raise error_for_status(status, error_body, headers.get("content-type", ""), reason)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    """The status line and headers of the engine's answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > _HEAD_LIMIT:
        raise ValueError("the engine's answer has oversized headers")
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


async def _read_error_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    length = headers.get("content-length", "")
    if length.isdigit():
        return await reader.readexactly(min(int(length), _ERROR_BODY_LIMIT))
    return await reader.read(_ERROR_BODY_LIMIT)
