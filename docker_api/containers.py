"""Container operations: ``docker.containers.<op>(...)``."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ._util import as_dict, as_list
from ._util import path_segment as _ref
from .errors import NotModified
from .streams import Frame, FrameDecoder, iter_json_lines

if TYPE_CHECKING:
    from .client import DockerClient

__all__ = ["Containers", "encode_filters"]

#: Extra seconds a stop or restart may take beyond its grace period (kill, cleanup, network).
STOP_MARGIN_S = 15.0


def encode_filters(filters: Mapping[str, Sequence[str]] | None) -> str | None:
    """Filters as the engine wants them: a JSON object of string lists, in one query value."""
    if not filters:
        return None
    return orjson.dumps({key: list(values) for key, values in filters.items()}).decode()


class Containers:
    def __init__(self, client: DockerClient) -> None:
        self._client = client

    async def list(
        self,
        *,
        all: bool = True,
        filters: Mapping[str, Sequence[str]] | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /containers/json``. Note the ``name`` and ``id`` filters match substrings."""
        params = {"all": all, "limit": limit, "filters": encode_filters(filters)}
        result = await self._client.get_json("/containers/json", params=params, timeout=timeout)
        return as_list(result)

    async def inspect(self, container_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """``GET /containers/{id}/json``; the id may be a full id, a unique prefix or a name."""
        result = await self._client.get_json(
            f"/containers/{_ref(container_id)}/json", timeout=timeout
        )
        return as_dict(result)

    async def create(
        self, config: Mapping[str, Any], *, name: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """``POST /containers/create``: returns ``{"Id": ..., "Warnings": [...]}``.

        ``config`` is the engine's create body (Config fields plus ``HostConfig``).
        ``Warnings`` is always a list (the engine may send null).
        """
        result = as_dict(
            await self._client.request(
                "POST",
                "/containers/create",
                params={"name": name},
                json=dict(config),
                timeout=timeout,
            )
        )
        result["Warnings"] = list(result.get("Warnings") or [])
        return result

    async def start(self, container_id: str, *, timeout: float | None = None) -> bool:
        """Start; returns False when it was already running (the engine's 304)."""
        result = await self._client.request(
            "POST", f"/containers/{_ref(container_id)}/start", timeout=timeout, not_modified_ok=True
        )
        return result is not NotModified

    async def stop(
        self, container_id: str, *, t: int | None = None, timeout: float | None = None
    ) -> bool:
        """Stop, giving the process ``t`` seconds before SIGKILL; False when already stopped.

        The call blocks for up to ``t`` seconds, so its own timeout is ``t`` plus the client's.
        """
        result = await self._client.request(
            "POST",
            f"/containers/{_ref(container_id)}/stop",
            params={"t": t},
            timeout=timeout if timeout is not None else self._stop_timeout(t),
            not_modified_ok=True,
        )
        return result is not NotModified

    async def restart(
        self, container_id: str, *, t: int | None = None, timeout: float | None = None
    ) -> None:
        """Restart (also starts a stopped container), with ``t`` seconds of grace for the stop."""
        await self._client.request(
            "POST",
            f"/containers/{_ref(container_id)}/restart",
            params={"t": t},
            timeout=timeout if timeout is not None else self._stop_timeout(t),
        )

    async def kill(
        self, container_id: str, *, signal: str = "SIGKILL", timeout: float | None = None
    ) -> None:
        """Send a signal; a container that is not running raises Conflict."""
        await self._client.request(
            "POST",
            f"/containers/{_ref(container_id)}/kill",
            params={"signal": signal},
            timeout=timeout,
        )

    async def remove(
        self,
        container_id: str,
        *,
        force: bool = False,
        volumes: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Remove; a running container raises Conflict unless ``force``.

        ``volumes`` also removes the container's anonymous volumes.
        """
        await self._client.request(
            "DELETE",
            f"/containers/{_ref(container_id)}",
            params={"force": force, "v": volumes},
            timeout=timeout,
        )

    async def update(
        self, container_id: str, resources: Mapping[str, Any], *, timeout: float | None = None
    ) -> builtins.list[str]:
        """``POST /containers/{id}/update`` with Resources fields and/or ``RestartPolicy``;
        returns the warnings (a list).

        On cgroup v1, raising ``Memory`` above the stored ``MemorySwap`` needs ``MemorySwap`` in
        the same call, and ``NanoCpus`` cannot replace ``CpuQuota``/``CpuPeriod`` (or the reverse).
        """
        result = await self._client.request(
            "POST",
            f"/containers/{_ref(container_id)}/update",
            json=dict(resources),
            timeout=timeout,
        )
        warnings = result.get("Warnings") if isinstance(result, dict) else None
        return list(warnings or [])

    async def wait(
        self, container_id: str, *, condition: str = "not-running", timeout: float | None = None
    ) -> dict[str, Any]:
        """Block until the condition holds; returns ``{"StatusCode": n, "Error": ...}``.

        The engine answers only when the container exits, so pass the longest wait you accept.
        """
        result = await self._client.request(
            "POST",
            f"/containers/{_ref(container_id)}/wait",
            params={"condition": condition},
            timeout=timeout,
        )
        return as_dict(result)

    async def stats(self, container_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """One stats sample at once (``stream=false&one-shot=true``).

        ``precpu_stats`` is zeroed in such a sample: CPU percentages need two samples. For a
        container that is not running, ``read`` starts with ``0001-`` and figures are zero.
        """
        result = await self._client.get_json(
            f"/containers/{_ref(container_id)}/stats",
            params={"stream": False, "one-shot": True},
            timeout=timeout,
        )
        return as_dict(result)

    async def stats_stream(
        self, container_id: str, *, read_timeout: float | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Streamed stats: one sample a second; from the second on, ``precpu_stats`` is filled.

        After the container stops the engine keeps sending empty samples until it is removed.
        ``read_timeout`` bounds the wait for each sample (default: the client's timeout).
        """
        limit = self._client.timeout if read_timeout is None else read_timeout
        async with self._client.stream(
            "GET",
            f"/containers/{_ref(container_id)}/stats",
            params={"stream": True},
            read_timeout=limit,
        ) as response:
            async for sample in iter_json_lines(self._client.iter_raw(response)):
                yield sample

    @contextlib.asynccontextmanager
    async def logs(
        self,
        container_id: str,
        *,
        tty: bool,
        follow: bool = False,
        tail: int | None = None,
        since: float | None = None,
        timestamps: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        timeout: float | None = None,
    ) -> AsyncGenerator[AsyncIterator[Frame], None]:
        """``GET /containers/{id}/logs``: the container's output, opened and streamed.

        Usage::

            async with docker.containers.logs(cid, tty=False, tail=100) as frames:
                async for frame in frames:   # Frame(stream, data), stdout and stderr in order
                    ...

        ``tty`` must be the container's ``Config.Tty``: it decides the framing (a TTY
        container's output is one raw stream, yielded as stdout). ``tail``: the last N lines
        (None: all); ``since``: unix seconds. The context is entered once the engine has
        answered (errors raise there); leaving it closes the engine connection, which is how a
        followed log is stopped. The body is read only as fast as the frames are consumed, so a
        slow consumer holds at most one read and one frame in memory.

        ``timeout`` (default: the client's) bounds the wait for the answer and, unless
        ``follow``, each read of the body. A followed log waits for as long as the container
        prints nothing, and ends when it stops.
        """
        limit = self._client.timeout if timeout is None else timeout
        params: dict[str, str | int | bool | None] = {
            "follow": follow,
            "stdout": stdout,
            "stderr": stderr,
            "timestamps": timestamps,
            "tail": "all" if tail is None else tail,
            "since": None if not since else f"{since:.6f}",
        }
        async with self._client.stream(
            "GET",
            f"/containers/{_ref(container_id)}/logs",
            params=params,
            connect_timeout=limit,
            read_timeout=None if follow else limit,
        ) as response:
            frames = _frames(self._client.iter_raw(response), FrameDecoder(tty=tty))
            async with contextlib.aclosing(frames):
                yield frames

    def _stop_timeout(self, t: int | None) -> float:
        grace = 10 if t is None else max(t, 0)
        return grace + max(self._client.timeout, STOP_MARGIN_S)


async def _frames(
    chunks: AsyncIterator[bytes], decoder: FrameDecoder
) -> AsyncGenerator[Frame, None]:
    async for chunk in chunks:
        for frame in decoder.feed(chunk):
            yield frame
