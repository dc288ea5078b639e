"""Terminal sessions: a login shell in a container, bridged to a WebSocket.

One session is one TTY exec (``bash -l`` where the image has bash, else ``sh -l``) run as
``exec_user`` in the container's working directory, started on a hijacked connection of its own
(:meth:`docker_api.Execs.attach`), and a WebSocket carrying its bytes (see the README's
"Terminal" section for the protocol).

Ending a session. Closing the attach connection does not end a TTY exec: the engine keeps the
terminal's master side open, so the shell never gets a hangup and runs on (seen on 20.10: the
shell and a ``sleep`` it started were still there after the connection closed). So every
process of a session carries ``DOCKERLINK_TERMINAL=<random id>`` in its environment, and when
the session ends, whatever the reason (client gone, idle, shell exited, dockerlink stopping),
another exec (as ``exec_user``, the only user whose processes' environments it may read)
sends SIGHUP, then SIGKILL, to every process that carries the marker and to every process in
the sessions (``setsid`` sessions) those processes lead: background jobs, ``nohup``, and
programs that cleared their environment but stayed in the shell's session all end.

Memory. Output is read from the engine only when the previous chunk has been handed to the
WebSocket, and the WebSocket's send waits while its write buffer is full, so a shell printing
without end is held back by the slowest reader; what one session holds is bounded by the
hijacked stream's buffer, one chunk, and the WebSocket's write buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Protocol

import orjson

import docker_api
from docker_api import DockerClient, HijackedStream

from .errors import TooManyRequests, engine_error_answer
from .settings import Settings

__all__ = [
    "CLOSE_ENGINE_ERROR",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TRY_AGAIN",
    "SESSION_MARKER",
    "SUBPROTOCOL",
    "Session",
    "TerminalSessions",
    "TerminalSocket",
    "parse_resize",
]

log = logging.getLogger("dockerlink.terminal")

#: The WebSocket subprotocol dockerlink selects (a browser also offers ``bearer.<token>``).
SUBPROTOCOL = "dockerlink.terminal"
#: Environment variable that tags every process of one session.
SESSION_MARKER = "DOCKERLINK_TERMINAL"
#: A login shell: bash where the image has it, else sh. ``exec`` keeps the exec's own pid.
SHELL = (
    "/bin/sh",
    "-c",
    "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l",
)
SHELL_ENV = {"TERM": "xterm-256color"}
#: Ends a session's processes; ``$1`` is ``DOCKERLINK_TERMINAL=<id>``. Pass one finds the
#: processes carrying the marker and the sessions they lead; SIGHUP lets shells and editors
#: save; pass two, after a short pause, kills what is left (including what forked meanwhile).
#: Busybox grep stops at a NUL, hence the ``tr``; ``stat``'s 6th field is the session id (the
#: 2nd, the command name, may hold spaces, so the fields are counted after its ``)``).
_END_SESSION = """
marker=$1 sids=" "
marked() { tr "\\0" "\\n" 2>/dev/null < "$1/environ" | grep -qxF "$marker"; }
sid_of() { s=$(cat "$1/stat" 2>/dev/null) || return 1; set -- ${s##*) }; echo "$4"; }
collect() {
    for d in /proc/[0-9]*; do
        marked "$d" && sids="$sids$(sid_of "$d") "
    done
}
signal() {
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [ "$p" = "$$" ] && continue
        if marked "$d"; then kill "-$1" "$p" 2>/dev/null; continue; fi
        s=$(sid_of "$d") || continue
        case "$sids" in *" $s "*) kill "-$1" "$p" 2>/dev/null ;; esac
    done
}
collect
[ "$sids" = " " ] && exit 0
signal HUP
sleep 0.3
collect
signal KILL
true
"""

#: WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_ENGINE_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
#: How long a failed write waits for the output to end (the shell exited) before it counts.
EXIT_GRACE_S = 1.0
#: Largest terminal a resize may ask for.
MAX_TERMINAL_SIDE = 4096


class TerminalSocket(Protocol):
    """What a session needs of a WebSocket (Sanic's, in the service)."""

    async def recv(self, timeout: float | None = None) -> str | bytes | None: ...

    async def send(self, message: str | bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class _ClientGone(Exception):
    """The client closed the WebSocket or the connection broke."""


@dataclass(frozen=True, slots=True)
class Resize:
    cols: int
    rows: int


def parse_resize(text: str) -> Resize | None:
    """A ``{"type": "resize", "cols": C, "rows": R}`` message, or None for any other text.

    Raises ValueError (with a one-line reason) for a resize message with bad sizes.
    """
    if not text.startswith("{"):
        return None
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "resize":
        return None
    return Resize(_side(message, "cols"), _side(message, "rows"))


def _side(message: dict[str, object], name: str) -> int:
    value = message.get(name)
    if type(value) is not int or not 1 <= value <= MAX_TERMINAL_SIDE:
        raise ValueError(f"resize: {name} must be a whole number from 1 to {MAX_TERMINAL_SIDE}")
    return value


@dataclass(eq=False)
class Session:
    """One open terminal: the container, the exec, its marker and (once started) its stream."""

    container_id: str
    marker: str = field(default_factory=lambda: secrets.token_hex(16))
    exec_id: str | None = None
    stream: HijackedStream | None = None
    ended: bool = False
    #: Why it ended, for the log line.
    reason: str = "connection lost"


class TerminalSessions:
    """The open sessions of one service: opening, bridging and ending them, and the limit."""

    def __init__(self, docker: DockerClient, settings: Settings) -> None:
        self.docker = docker
        self.settings = settings
        self.open: set[Session] = set()
        self._ending: set[asyncio.Task[None]] = set()

    def check_room(self) -> None:
        """429 when ``terminal_max_sessions`` are open (checked before the upgrade)."""
        if len(self.open) >= self.settings.terminal_max_sessions:
            raise TooManyRequests(
                f"{len(self.open)} terminal sessions are open, the most allowed "
                "(terminal_max_sessions)"
            )

    async def start(self, container_id: str) -> Session:
        """Take a slot and start the shell; the caller must :meth:`end` the session."""
        self.check_room()
        session = Session(container_id)
        self.open.add(session)  # before any await: the slot is taken at once
        try:
            session.exec_id = await self.docker.execs.create(
                container_id,
                SHELL,
                user=self.settings.exec_user,
                env={**SHELL_ENV, SESSION_MARKER: session.marker},
                tty=True,
                stdin=True,
            )
            session.stream = await self.docker.execs.attach(session.exec_id, tty=True)
        except BaseException:
            await self._end_surely(session)
            raise
        return session

    async def serve(self, container_id: str, socket: TerminalSocket) -> None:
        """A whole session on an upgraded socket: start, bridge, close the socket, end."""
        session: Session | None = None
        try:
            try:
                session = await self.start(container_id)
            except TooManyRequests as exc:  # others took the last slots during the upgrade
                code, reason = CLOSE_TRY_AGAIN, exc.message
            except docker_api.DockerError as exc:
                code, reason = CLOSE_ENGINE_ERROR, _reason(engine_error_answer(exc)[1])
            else:
                log.info(
                    "terminal session opened in %s (%d open)", container_id[:12], len(self.open)
                )
                code, reason = await self.bridge(session, socket)
                session.reason = reason
            if session is None:
                log.info("terminal session in %s refused: %s", container_id[:12], reason)
            with contextlib.suppress(Exception):
                await socket.close(code, reason)
        finally:
            if session is not None:
                await self._end_surely(session)

    async def _end_surely(self, session: Session) -> None:
        """End the session in a task of its own: Sanic cancels a WebSocket's handler as soon
        as its connection is lost, and the processes must end all the same."""
        ending = asyncio.create_task(self.end(session), name="terminal.end")
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)
        await asyncio.shield(ending)

    async def bridge(self, session: Session, socket: TerminalSocket) -> tuple[int, str]:
        """Carry bytes both ways until the shell exits, the client leaves or input stops.

        Returns the close code and reason to send (the client may already be gone).
        """
        assert session.stream is not None
        output = asyncio.create_task(self._output(session.stream, socket), name="terminal.out")
        given = asyncio.create_task(self._input(session, socket), name="terminal.in")
        try:
            done, _ = await asyncio.wait({output, given}, return_when=asyncio.FIRST_COMPLETED)
            if output not in done and isinstance(given.exception(), docker_api.DockerError):
                # Typing into a shell that just exited fails first: let its output end.
                done, _ = await asyncio.wait({output}, timeout=EXIT_GRACE_S)
                done = done or {given}
        finally:
            for task in (output, given):
                task.cancel()
            await asyncio.gather(output, given, return_exceptions=True)
        finished = output if output in done else given
        error = finished.exception()
        if isinstance(error, _ClientGone):
            return CLOSE_NORMAL, "client went away"
        if isinstance(error, docker_api.DockerError):
            return CLOSE_ENGINE_ERROR, _reason(engine_error_answer(error)[1])
        if error is not None:
            raise error
        if finished is output:
            return CLOSE_NORMAL, await self._exit_note(session)
        return given.result()

    async def end(self, session: Session) -> None:
        """End every process of the session in the container, and free its slot (idempotent)."""
        if session.ended:
            return
        session.ended = True
        try:
            if session.exec_id is not None:
                await self._end_processes(session)
        finally:
            self.open.discard(session)
            if session.stream is not None:
                await session.stream.aclose()
            log.info("terminal session in %s ended: %s", session.container_id[:12], session.reason)

    async def end_all(self) -> None:
        """End every open session (dockerlink is stopping)."""
        await asyncio.gather(
            *(self.end(s) for s in list(self.open)), *self._ending, return_exceptions=True
        )

    # -- the two directions ---------------------------------------------------------------------

    async def _output(self, stream: HijackedStream, socket: TerminalSocket) -> None:
        """Engine -> client, one chunk at a time: the next read waits for the send."""
        while True:
            data = await stream.read()
            if not data:
                return
            try:
                await socket.send(data)
            except Exception as exc:  # the socket's own closed/failed errors vary by version
                raise _ClientGone() from exc

    async def _input(self, session: Session, socket: TerminalSocket) -> tuple[int, str]:
        """Client -> engine until the client leaves (raises) or is idle too long (returns)."""
        assert session.stream is not None
        assert session.exec_id is not None
        idle_s = self.settings.terminal_idle_timeout
        while True:
            message = await _receive(socket, idle_s)
            if message is None:
                return CLOSE_NORMAL, f"no input for {idle_s:g} s (terminal_idle_timeout)"
            if isinstance(message, bytes):
                await session.stream.write(message)
                continue
            try:
                resize = parse_resize(message)
            except ValueError as exc:
                return CLOSE_POLICY, str(exc)
            if resize is None:
                await session.stream.write(message.encode())
                continue
            try:
                await self.docker.execs.resize(session.exec_id, cols=resize.cols, rows=resize.rows)
            except docker_api.APIError as exc:  # the shell is ending: its output will say so
                log.debug("terminal resize refused: %s", exc.message)

    # -- helpers -------------------------------------------------------------------------------

    async def _exit_note(self, session: Session) -> str:
        """``shell exited with code N`` (or without the code when the engine cannot say)."""
        assert session.exec_id is not None
        with contextlib.suppress(docker_api.DockerError):
            for _ in range(20):  # the code is recorded just after the output closes
                info = await self.docker.execs.inspect(session.exec_id)
                if not info.get("Running") and isinstance(info.get("ExitCode"), int):
                    return f"shell exited with code {info['ExitCode']}"
                await asyncio.sleep(0.05)
        return "shell exited"

    async def _end_processes(self, session: Session) -> None:
        try:
            result = await self.docker.execs.run(
                session.container_id,
                ["sh", "-c", _END_SESSION, "sh", f"{SESSION_MARKER}={session.marker}"],
                timeout=self.settings.docker_timeout,
                user=self.settings.exec_user,
                workdir="/",
            )
        except docker_api.DockerError as exc:
            # A stopped or removed container took the processes with it.
            if not isinstance(exc, docker_api.NotFound | docker_api.Conflict):
                log.warning(
                    "could not end terminal processes in %s: %s",
                    session.container_id[:12],
                    exc.message,
                )
            return
        if result.exit_code != 0:
            log.warning(
                "could not end terminal processes in %s: exit code %d: %s",
                session.container_id[:12],
                result.exit_code,
                result.text().strip() or "no output",
            )


async def _receive(socket: TerminalSocket, timeout_s: float) -> str | bytes | None:
    """The next message; None after ``timeout_s`` without one; _ClientGone once closed."""
    try:
        return await socket.recv(timeout=timeout_s)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise _ClientGone() from None  # Sanic cancels a pending recv when the socket closes
    except Exception as exc:
        raise _ClientGone() from exc


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    encoded = text.encode()
    return text if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "..."
