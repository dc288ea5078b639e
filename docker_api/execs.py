"""Exec operations: ``docker.execs.<op>(...)``, and :meth:`Execs.run` to run one to completion."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._util import as_dict, path_segment
from .errors import DockerError, ExecTimeout
from .hijack import HijackedStream
from .streams import Frame, FrameDecoder, StreamType

if TYPE_CHECKING:
    from .client import DockerClient

__all__ = ["ExecResult", "Execs"]

#: How long to wait, after the stream ends, for the engine to record the exit code.
EXIT_CODE_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class ExecResult:
    """A finished exec: its exit code and what it wrote.

    ``output`` is stdout and stderr interleaved in the order the frames arrived, kept once; with
    ``max_output_bytes`` it is the first that many bytes and ``dropped`` counts the bytes read
    after them and thrown away. :attr:`stdout` and :attr:`stderr` are cut out of ``output`` on
    demand, each whole (up to the bound) and in order.
    """

    exit_code: int
    output: bytes
    dropped: int = 0
    #: Where ``output`` switches stream: offsets, starting with stdout (a switch at 0 when it
    #: starts with stderr). Empty: all stdout.
    switches: array[int] = field(default_factory=lambda: array("I"))

    @property
    def stdout(self) -> bytes:
        return self._stream(0)

    @property
    def stderr(self) -> bytes:
        return self._stream(1)

    def _stream(self, parity: int) -> bytes:
        bounds = [0, *self.switches, len(self.output)]
        view = memoryview(self.output)
        return b"".join(view[bounds[i] : bounds[i + 1]] for i in range(parity, len(bounds) - 1, 2))

    def text(self) -> str:
        """``output`` as text, invalid UTF-8 replaced."""
        return self.output.decode("utf-8", "replace")


class _Collector:
    """Output kept once, up to ``limit`` bytes; the rest counted and dropped."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.output = bytearray()
        self.switches = array("I")
        self.dropped = 0
        self._stderr = False

    def add(self, frame: Frame) -> None:
        data = frame.data
        room = len(data) if self.limit is None else max(self.limit - len(self.output), 0)
        if room < len(data):
            self.dropped += len(data) - room
            data = data[:room]
        if not data:
            return
        stderr = frame.stream is StreamType.STDERR
        if stderr != self._stderr:
            self.switches.append(len(self.output))
            self._stderr = stderr
        self.output += data

    def result(self, exit_code: int) -> ExecResult:
        return ExecResult(exit_code, bytes(self.output), self.dropped, self.switches)


class Execs:
    def __init__(self, client: DockerClient) -> None:
        self._client = client

    async def create(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        user: str | None = None,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        tty: bool = False,
        stdin: bool = False,
        timeout: float | None = None,
    ) -> str:
        """``POST /containers/{id}/exec``: the exec id; a stopped container raises Conflict.

        ``stdin`` attaches the process's stdin (write to it through :meth:`attach`).
        """
        if not cmd:
            raise ValueError("an exec needs a command")
        body: dict[str, Any] = {
            "Cmd": list(cmd),
            "AttachStdin": stdin,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": tty,
            "User": user or "",
            "WorkingDir": workdir or "",
            "Env": [f"{key}={value}" for key, value in (env or {}).items()],
        }
        result = as_dict(
            await self._client.request(
                "POST", f"/containers/{path_segment(container_id)}/exec", json=body, timeout=timeout
            )
        )
        exec_id = result.get("Id")
        if not isinstance(exec_id, str) or not exec_id:
            raise DockerError("engine created an exec without an id")
        return exec_id

    async def start(
        self, exec_id: str, *, tty: bool = False, read_timeout: float | None = None
    ) -> AsyncGenerator[Frame, None]:
        """Start an exec and yield its output frames until it closes its streams.

        ``tty`` must be the value the exec was created with: it decides the framing (the
        Content-Type does not). ``read_timeout`` bounds each wait for data (None: no bound, so
        bound the whole iteration yourself, as :meth:`run` does).
        """
        decoder = FrameDecoder(tty=tty)
        async with self._client.stream(
            "POST",
            f"/exec/{path_segment(exec_id)}/start",
            json={"Detach": False, "Tty": tty},
            read_timeout=read_timeout,
        ) as response:
            async for chunk in self._client.iter_raw(response):
                for frame in decoder.feed(chunk):
                    yield frame

    async def attach(
        self, exec_id: str, *, tty: bool, timeout: float | None = None
    ) -> HijackedStream:
        """Start an exec on a connection of its own and return it as a two-way stream.

        Use it as ``async with await docker.execs.attach(...) as stream:``. ``timeout`` bounds
        the start (not the stream, which lasts as long as the process keeps its output open).
        Closing the stream does not end the process: with a TTY it keeps running.
        """
        return await self._client.hijack(
            f"/exec/{path_segment(exec_id)}/start",
            json={"Detach": False, "Tty": tty},
            timeout=timeout,
        )

    async def resize(
        self, exec_id: str, *, cols: int, rows: int, timeout: float | None = None
    ) -> None:
        """``POST /exec/{id}/resize``: the size of a running TTY exec's terminal."""
        if cols < 1 or rows < 1:
            raise ValueError("a terminal has at least one column and one row")
        await self._client.request(
            "POST",
            f"/exec/{path_segment(exec_id)}/resize",
            params={"h": rows, "w": cols},
            timeout=timeout,
        )

    async def inspect(self, exec_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """``GET /exec/{id}/json``: ``Running``, ``ExitCode`` (null while running), ``Pid``..."""
        return as_dict(
            await self._client.get_json(f"/exec/{path_segment(exec_id)}/json", timeout=timeout)
        )

    async def run(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        timeout: float,
        user: str | None = None,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        """Run a command to completion and return its exit code and output.

        ``timeout`` bounds the whole run; past it :class:`ExecTimeout` carries what was printed.
        ``max_output_bytes`` bounds what is kept (None: everything): output past it is still
        read, so the command runs to its end, but only counted (``dropped``).
        """
        if max_output_bytes is not None and not 0 <= max_output_bytes < 1 << 32:
            raise ValueError("max_output_bytes must be in 0..2**32-1")
        deadline = time.monotonic() + timeout
        exec_id = await self.create(
            container_id, cmd, user=user, workdir=workdir, env=env, timeout=timeout
        )
        collected = _Collector(max_output_bytes)
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                async for frame in self.start(exec_id):
                    collected.add(frame)
        except TimeoutError as exc:
            raise ExecTimeout(
                f"{cmd[0]} did not finish within {timeout:g} s",
                bytes(collected.output),
                dropped=collected.dropped,
            ) from exc
        exit_code = await self._exit_code(exec_id, deadline)
        return collected.result(exit_code)

    async def exit_code(self, exec_id: str, *, timeout: float | None = None) -> int:
        """The exit code of an exec whose output has ended (it is recorded just after, so this
        polls briefly); DockerError when the engine reports none. ``timeout``: for the whole
        (default: the client's)."""
        limit = self._client.timeout if timeout is None else timeout
        return await self._exit_code(exec_id, time.monotonic() + limit)

    async def _exit_code(self, exec_id: str, deadline: float) -> int:
        """The exit code, polling briefly: the streams may close just before it is recorded."""
        settle_until = min(deadline, time.monotonic() + EXIT_CODE_WAIT_S)
        while True:
            remaining = max(deadline - time.monotonic(), 0.5)
            info = await self.inspect(exec_id, timeout=remaining)
            code = info.get("ExitCode")
            if not info.get("Running") and isinstance(code, int):
                return code
            if time.monotonic() >= settle_until:
                raise DockerError(f"exec {exec_id[:12]} ended its output but reported no exit code")
            await asyncio.sleep(0.02)


def _loop_time(monotonic_deadline: float) -> float:
    """Convert a time.monotonic() deadline to the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
