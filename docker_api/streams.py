"""Decoding of the engine's streamed bodies: multiplexed exec/attach frames and JSON lines."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson

__all__ = ["Frame", "FrameDecoder", "StreamType", "iter_json_lines"]

_HEADER = struct.Struct(">BxxxL")


class StreamType(IntEnum):
    """The stream a multiplexed frame belongs to (the first byte of its header)."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    SYSTEMERR = 3


@dataclass(frozen=True, slots=True)
class Frame:
    stream: StreamType
    data: bytes


class FrameDecoder:
    """Incremental decoder for the engine's multiplexed stream (exec/attach with Tty=false).

    Each frame is an 8-byte header ``>BxxxL`` (stream type, three zero bytes, payload length)
    followed by the payload. Headers and payloads may be split across reads and one read may carry
    several frames, so bytes are buffered until a frame is complete. With ``tty=True`` the stream
    has no framing and every byte is stdout.
    """

    def __init__(self, *, tty: bool = False) -> None:
        self._tty = tty
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> Iterator[Frame]:
        """Add bytes read from the stream; yield every frame they complete."""
        if self._tty:
            if chunk:
                yield Frame(StreamType.STDOUT, bytes(chunk))
            return
        self._buffer += chunk
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= _HEADER.size:
            kind, length = _HEADER.unpack_from(buffer, offset)
            end = offset + _HEADER.size + length
            if len(buffer) < end:
                break
            payload = bytes(buffer[offset + _HEADER.size : end])
            offset = end
            if payload:
                yield Frame(_stream_type(kind), payload)
        del buffer[:offset]

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero at EOF means a torn stream)."""
        return len(self._buffer)


def _stream_type(kind: int) -> StreamType:
    try:
        return StreamType(kind)
    except ValueError:
        # Unknown stream ids are not defined by the engine; keep the bytes rather than lose them.
        return StreamType.STDOUT


async def iter_json_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """Decode a body of newline-separated JSON objects (events, streamed stats).

    Lines are split on ``\\n`` regardless of how the transport chunks them; blank lines are
    skipped, and a line that is not a JSON object is skipped rather than ending the stream.
    """
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            obj = _decode_line(line)
            if obj is not None:
                yield obj
    obj = _decode_line(pending)
    if obj is not None:
        yield obj


def _decode_line(line: bytes) -> dict[str, Any] | None:
    line = line.strip()
    if not line:
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None
