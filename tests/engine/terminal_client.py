"""A terminal client for tests and the bench: dockerlink's terminal WebSocket, without a browser."""

from __future__ import annotations

import asyncio
import base64
import json
import re

from websockets.asyncio.client import ClientConnection, connect

SUBPROTOCOL = "dockerlink.terminal"


def bearer_subprotocol(token: str) -> str:
    """``bearer.<token as base64url without padding>``, as a browser offers it."""
    return "bearer." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def socket_url(base_url: str, container: str) -> str:
    return base_url.replace("http://", "ws://", 1) + f"/v1/container/terminal?id={container}"


def open_terminal(
    base_url: str, container: str, token: str | None, *, max_queue: int = 16
) -> connect:
    """``async with open_terminal(...) as ws``; the token goes as the subprotocol."""
    protocols = [SUBPROTOCOL] + ([bearer_subprotocol(token)] if token else [])
    return connect(
        socket_url(base_url, container),
        subprotocols=protocols,  # type: ignore[arg-type]
        compression=None,
        max_queue=max_queue,
        open_timeout=30,
    )


class Screen:
    """What the shell printed so far, and waiting for a pattern in it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.output = bytearray()

    async def type(self, text: str) -> None:
        await self.ws.send(text.encode())

    async def resize(self, cols: int, rows: int) -> None:
        await self.ws.send(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    async def expect(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        """The first match of ``pattern`` in output not yet matched; fails after ``timeout``."""
        regex = re.compile(pattern)
        async with asyncio.timeout(timeout):
            while True:
                text = self.output.decode("utf-8", "replace")
                found = regex.search(text)
                if found:
                    del self.output[: len(text[: found.end()].encode())]
                    return found
                message = await self.ws.recv()
                assert isinstance(message, bytes), f"text frame from the server: {message!r}"
                self.output += message

    async def until_closed(self, timeout: float = 15) -> tuple[int | None, str | None]:
        """Read until the server closes; its close code and reason."""
        async with asyncio.timeout(timeout):
            async for message in self.ws:
                assert isinstance(message, bytes)
                self.output += message
        return self.ws.close_code, self.ws.close_reason
