"""The engine's event stream: ``docker.events.stream(...)`` and the reconnecting ``watch(...)``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .containers import encode_filters
from .errors import APIError, EngineConnectionError, UnsupportedEngineVersion
from .streams import iter_json_lines

if TYPE_CHECKING:
    from .client import DockerClient

__all__ = ["Events", "Reconnected"]


@dataclass(frozen=True, slots=True)
class Reconnected:
    """Yielded by :meth:`Events.watch` after the stream broke and was opened again.

    Events between ``since`` and the reconnection were asked for again, but the engine replays
    only its last 256 and none from before its own restart: a consumer that mirrors state should
    re-read it in full when it sees this.
    """

    since: str | None
    error: str


class Events:
    def __init__(self, client: DockerClient) -> None:
        self._client = client

    async def stream(
        self,
        *,
        filters: Mapping[str, Sequence[str]] | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """``GET /events``: yield event objects until the engine closes the stream.

        Read ``Action`` and ``Actor.ID`` (the old ``status``/``id`` fields are gone in API 1.52).
        ``since`` and ``until`` are unix times (fractions allowed) or RFC 3339 strings. Reads have
        no timeout: an idle engine sends nothing for as long as nothing happens.
        """
        params = {"filters": encode_filters(filters), "since": since, "until": until}
        async with self._client.stream(
            "GET", "/events", params=params, read_timeout=None
        ) as response:
            async for event in iter_json_lines(self._client.iter_raw(response)):
                yield event

    async def watch(
        self,
        *,
        filters: Mapping[str, Sequence[str]] | None = None,
        since: str | None = None,
        retry_delay_s: float = 0.5,
        max_retry_delay_s: float = 5.0,
        on_break: Callable[[str], None] | None = None,
    ) -> AsyncGenerator[dict[str, Any] | Reconnected, None]:
        """Like :meth:`stream`, but never ends: reconnects with ``since`` after any failure.

        After each reconnection a :class:`Reconnected` marker is yielded before further events.
        ``on_break`` is called with the reason as soon as the stream breaks, before waiting for
        the engine to answer again (a consumer that serves reads from what it saw stops here).
        Close the iterator (or cancel its task) to stop.
        """
        delay = retry_delay_s
        while True:
            try:
                async for event in self.stream(filters=filters, since=since):
                    since = _event_time(event) or since
                    delay = retry_delay_s
                    yield event
                error = "the engine closed the event stream"
            except (EngineConnectionError, APIError, UnsupportedEngineVersion) as exc:
                error = str(exc)
            if on_break is not None:
                on_break(error)
            while True:  # wait until the engine answers again
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_retry_delay_s)
                try:
                    await self._client.ping(timeout=min(self._client.timeout, 5.0))
                except (EngineConnectionError, APIError):
                    continue
                break
            yield Reconnected(since=since, error=error)


def _event_time(event: Mapping[str, Any]) -> str | None:
    nanos = event.get("timeNano")
    if isinstance(nanos, int) and nanos > 0:
        return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"
    seconds = event.get("time")
    if isinstance(seconds, int) and seconds > 0:
        return str(seconds)
    return None
