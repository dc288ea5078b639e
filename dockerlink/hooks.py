"""Lifecycle hooks: the operator's executables, run when dockerlink acts on a container.

Each of ``hook_on_create``, ``hook_on_delete``, ``hook_on_start`` and ``hook_on_stop`` names an
executable. It runs without a shell, with dockerlink's own environment (less the API token) plus:

    DOCKERLINK_EVENT              create, delete, start, stop or restart
    DOCKERLINK_CONTAINER_ID       the full id
    DOCKERLINK_CONTAINER_NAME     the name, without the engine's leading "/"
    DOCKERLINK_HOST_PORT_ROOT     the first port of its host port block (empty if unknown)
    DOCKERLINK_PORTS              its exposed ports, e.g. "22/tcp 80/tcp 443/tcp"

in a process group of its own, with stdin closed, stdout and stderr captured together (the first
``OUTPUT_LIMIT_BYTES`` are kept), for at most ``hook_timeout`` seconds, after which the whole
group is killed. Output goes through a pipe, not a file: a hook printing without end fills
neither memory nor disk. A background process the hook leaves behind does not hold the action
up, but must send its output elsewhere: once the hook exited, the pipe is closed.
A hook fails when it exits non-zero, times out or cannot be run; what that means for the
action is the domain's policy (:mod:`dockerlink.hosting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .logs import current_request_id
from .settings import Settings

__all__ = [
    "HOOK_ERROR_HEADER",
    "OUTPUT_LIMIT_BYTES",
    "HookFailure",
    "HookTarget",
    "Hooks",
    "hook_environment",
]

log = logging.getLogger("dockerlink.hooks")

#: The response header that reports a failed hook whose action was kept.
HOOK_ERROR_HEADER = "X-Dockerlink-Hook-Error"
#: Output kept from a hook (stdout and stderr together); the rest is read and dropped.
OUTPUT_LIMIT_BYTES = 16 * 1024
#: Environment variables never passed to a hook: whoever reads them controls every container.
#: Settings never passed to a hook (in a .env or the environment, either spelling).
_SECRET_NAMES = frozenset(
    {"api_token", "dockerlink_api_token", "webhook_secret", "dockerlink_webhook_secret"}
)
_HEADER_TEXT_MAX = 200


@dataclass(frozen=True, slots=True)
class HookTarget:
    """The container a hook is told about."""

    id: str
    name: str
    host_port_root: int | None
    ports: tuple[str, ...]

    @classmethod
    def of(
        cls, container_id: str, name: str, host_port_root: int | None, ports: list[str]
    ) -> HookTarget:
        return cls(container_id, name.lstrip("/"), host_port_root, tuple(sort_ports(ports)))


def sort_ports(ports: list[str]) -> list[str]:
    """``["443/tcp", "22/tcp", "53/udp"]`` -> by number, then protocol."""

    def key(spec: str) -> tuple[int, str]:
        number, _, proto = spec.partition("/")
        return (int(number) if number.isdigit() else 1 << 20, proto)

    return sorted(set(ports), key=key)


@dataclass(frozen=True, slots=True)
class HookFailure:
    """A hook that did not succeed: why, and what it printed."""

    setting: str
    event: str
    exit_code: int | None
    timed_out: bool
    output: str
    error: str | None = None
    timeout_s: float | None = None

    @property
    def reason(self) -> str:
        if self.error is not None:
            return f"could not run: {self.error}"
        if self.timed_out:
            return f"timed out after {self.timeout_s:g} s, killed"
        if self.exit_code is not None and self.exit_code < 0:
            return f"killed by signal {-self.exit_code}"
        return f"exit {self.exit_code}"

    @property
    def first_line(self) -> str:
        for line in self.output.splitlines():
            if line.strip():
                return line.strip()
        return ""

    def summary(self) -> str:
        """``hook_on_start failed (exit 3): <its first line of output>``."""
        head = f"{self.setting} failed ({self.reason})"
        return f"{head}: {self.first_line}" if self.first_line else head

    def header_value(self) -> str:
        """:meth:`summary` made safe for a header: printable ASCII, one line, bounded."""
        text = "".join(c if " " <= c <= "~" else "?" for c in self.summary())
        return text[:_HEADER_TEXT_MAX]


def hook_environment(base: Mapping[str, str], target: HookTarget, event: str) -> dict[str, str]:
    """The hook's environment: ``base`` (less secrets) plus the container's facts."""
    env = {k: v for k, v in base.items() if k.lower() not in _SECRET_NAMES}
    env.update(
        {
            "DOCKERLINK_EVENT": event,
            "DOCKERLINK_CONTAINER_ID": target.id,
            "DOCKERLINK_CONTAINER_NAME": target.name,
            "DOCKERLINK_HOST_PORT_ROOT": (
                "" if target.host_port_root is None else str(target.host_port_root)
            ),
            "DOCKERLINK_PORTS": " ".join(target.ports),
        }
    )
    return env


class Hooks:
    """Runs the configured hooks; :meth:`run` returns None on success, a failure otherwise."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.paths: dict[str, Path | None] = {
            "create": settings.hook_on_create,
            "delete": settings.hook_on_delete,
            "start": settings.hook_on_start,
            "stop": settings.hook_on_stop,
        }
        self.timeout_s = settings.hook_timeout
        self._environ = environ

    async def run(
        self, hook: str, target: HookTarget, *, event: str | None = None
    ) -> HookFailure | None:
        """Run ``hook_on_<hook>`` (if set) for ``target``; ``event`` defaults to ``hook``."""
        path = self.paths[hook]
        if path is None:
            return None
        event = event or hook
        setting = f"hook_on_{hook}"
        base = os.environ if self._environ is None else self._environ
        started = time.monotonic()
        failure = await _run_one(
            setting, event, path, hook_environment(base, target, event), self.timeout_s
        )
        elapsed = time.monotonic() - started
        if failure is None:
            log.info(
                "[%s] %s ran for %s (%s) in %.2f s",
                current_request_id(),
                setting,
                target.name,
                event,
                elapsed,
            )
        else:
            log.warning(
                "[%s] %s for %s (%s) %s after %.2f s; output: %s",
                current_request_id(),
                setting,
                target.name,
                event,
                failure.reason,
                elapsed,
                failure.output.strip() or "(none)",
            )
        return failure


async def _run_one(
    setting: str, event: str, path: Path, env: dict[str, str], timeout_s: float
) -> HookFailure | None:
    output = _Output(asyncio.get_running_loop())
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                str(path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output.write_fd,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group, killed whole on timeout
            )
        except OSError as exc:
            return HookFailure(setting, event, None, False, "", error=exc.strerror or str(exc))
        finally:
            output.close_write_end()
        timed_out = False
        try:
            async with asyncio.timeout(timeout_s):
                await process.wait()
        except TimeoutError:
            timed_out = True
            _kill_group(process.pid)
            await process.wait()
        except BaseException:  # cancelled: leave nothing running behind us
            _kill_group(process.pid)
            raise
        text = output.finish()
    finally:
        output.close()
    code = process.returncode
    if not timed_out and code == 0:
        return None
    return HookFailure(setting, event, code, timed_out, text, timeout_s=timeout_s)


class _Output:
    """A hook's stdout and stderr: a pipe read as the hook writes, keeping the first
    ``OUTPUT_LIMIT_BYTES`` and counting the rest, so that a hook printing without end costs
    neither memory nor disk, nor much CPU: past the limit the pipe is emptied into /dev/null
    in the kernel (``splice``), every ``DRAIN_INTERVAL_S`` rather than at each write.

    asyncio's own pipes would make ``wait()`` wait for every holder of the pipe to close it, a
    background child the hook leaves behind included; here the pipe is read until the hook
    exits, then emptied and closed. (Such a child that writes to it later gets SIGPIPE, as a
    program whose terminal closed: it should send its output elsewhere.)
    """

    #: Reads made to empty the pipe once the hook exited (a child may write on meanwhile).
    FINAL_READS = 16
    #: Past the limit: how often the pipe is emptied, and how many moves each time (a hook
    #: printing faster than PIPE_SIZE * DRAIN_MOVES per interval waits for room).
    DRAIN_INTERVAL_S = 0.01
    DRAIN_MOVES = 4
    #: The pipe's size (Linux's unprivileged most; best effort).
    PIPE_SIZE = 1 << 20

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.read_fd, fcntl.F_SETPIPE_SZ, self.PIPE_SIZE)
        self.kept = bytearray()
        self.dropped = 0
        self.reading = True
        self.null_fd = -1
        self.drain_timer: asyncio.TimerHandle | None = None
        loop.add_reader(self.read_fd, self._readable)

    def _readable(self) -> None:
        self._read()
        if self.reading and len(self.kept) == OUTPUT_LIMIT_BYTES:  # from now on, drained
            self.loop.remove_reader(self.read_fd)
            self.drain_timer = self.loop.call_later(self.DRAIN_INTERVAL_S, self._drain)

    def _drain(self) -> None:
        for _ in range(self.DRAIN_MOVES):
            if not self._read():
                break
        if self.reading:
            self.drain_timer = self.loop.call_later(self.DRAIN_INTERVAL_S, self._drain)

    def _read(self) -> bool:
        """One read; False once nothing more is there now (or ever)."""
        room = OUTPUT_LIMIT_BYTES - len(self.kept)
        try:
            if room == 0:  # what is dropped goes to /dev/null in the kernel, never copied here
                moved = os.splice(
                    self.read_fd, self._null(), self.PIPE_SIZE, flags=os.SPLICE_F_NONBLOCK
                )
                self.dropped += moved
                if moved:
                    return True
                data = b""
            else:
                data = os.read(self.read_fd, room)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._stop_reading()
            return False
        self.kept += data
        return True

    def _null(self) -> int:
        if self.null_fd < 0:
            self.null_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        return self.null_fd

    def close_write_end(self) -> None:
        """Once the hook has it (or could not be started): only the hook may hold it."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def finish(self) -> str:
        """What the hook wrote: the pipe emptied, then closed."""
        for _ in range(self.FINAL_READS):
            if not (self.reading and self._read()):
                break
        self.close()
        text = self.kept.decode("utf-8", "replace").rstrip("\n")
        if self.dropped > 0:
            text += f"\n[dockerlink: {self.dropped} more bytes of output dropped]"
        return text

    def _stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            if self.drain_timer is not None:
                self.drain_timer.cancel()
            else:
                self.loop.remove_reader(self.read_fd)

    def close(self) -> None:
        """Both ends closed (idempotent)."""
        self.close_write_end()
        self._stop_reading()
        for fd in (self.read_fd, self.null_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.null_fd = -1


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
