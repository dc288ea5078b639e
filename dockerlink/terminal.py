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

Speed. On Sanic's own WebSocket (``dockerlink serve``) a session's bytes go through a
:class:`DirectRelay`, in the event loop's callbacks, with the same protocol, backpressure and
ends as :meth:`TerminalSessions.bridge`, which serves any other socket (ASGI, tests).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State

import docker_api
from docker_api import DockerClient, HijackedStream

from .errors import TooManyRequests, engine_error_answer
from .settings import Settings

__all__ = [
    "CLOSE_ENGINE_ERROR",
    "CLOSE_INVALID_DATA",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TIMEOUT_S",
    "CLOSE_TRY_AGAIN",
    "HELD_INPUT_LIMIT",
    "RESIZE_COST",
    "SESSION_MARKER",
    "SUBPROTOCOL",
    "DirectRelay",
    "Session",
    "TerminalSessions",
    "TerminalSocket",
    "close_or_drop",
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
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_ENGINE_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
#: How long a closing handshake may wait for a client that does not read before its
#: connection is dropped.
CLOSE_TIMEOUT_S = 5.0
#: How long a failed write waits for the output to end (the shell exited) before it counts.
EXIT_GRACE_S = 1.0
#: Largest terminal a resize may ask for.
MAX_TERMINAL_SIDE = 4096


class TerminalSocket(Protocol):
    """What a session needs of a WebSocket (Sanic's, in the service)."""

    async def recv(self, timeout: float | None = None) -> str | bytes | None: ...

    async def send(self, message: str | bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


async def close_or_drop(socket: TerminalSocket, code: int, reason: str) -> None:
    """Close ``socket`` with ``code``; a client that does not read its socket gets
    ``CLOSE_TIMEOUT_S``, then its connection is dropped. (Sanic's ``close`` waits, without a
    bound, for room to send the close frame: a stopped client would hold up what follows, the
    end of the session's processes included.)"""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await socket.close(code, reason)
    except TimeoutError:
        fail = getattr(socket, "fail_connection", None)
        if callable(fail):
            fail(1006)


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
    #: Its bytes go through a DirectRelay (Sanic's WebSocket), not the generic bridge.
    relayed: bool = False


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

    async def serve(
        self, container_id: str, socket: TerminalSocket, relay: DirectRelay | None = None
    ) -> None:
        """A whole session on an upgraded socket: start, bridge, close the socket, end.

        ``relay``: the socket's :class:`DirectRelay` (Sanic's own WebSocket), else the bytes go
        through :meth:`bridge` (any other socket).
        """
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
                if relay is not None:
                    code, reason = await self.relay(session, relay)
                else:
                    code, reason = await self.bridge(session, socket)
                session.reason = reason
            if relay is not None:
                await relay.stop()
            if session is None:
                log.info("terminal session in %s refused: %s", container_id[:12], reason)
            with contextlib.suppress(Exception):
                await close_or_drop(socket, code, reason)
        finally:
            if relay is not None:  # (again, for an exception or a cancellation: it is idempotent)
                await relay.stop()
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

    async def relay(self, session: Session, relay: DirectRelay) -> tuple[int, str]:
        """:meth:`bridge`'s work through a :class:`DirectRelay`: until the shell exits, the
        client leaves or input stops; the close code and reason to send."""
        assert session.stream is not None
        exec_id = session.exec_id
        assert exec_id is not None

        async def resize(size: Resize) -> None:
            try:
                await self.docker.execs.resize(exec_id, cols=size.cols, rows=size.rows)
            except docker_api.APIError as exc:  # the shell is ending: its output will say so
                log.debug("terminal resize refused: %s", exc.message)

        session.relayed = True
        relay.attach(session.stream, resize)
        try:  # (serve stops the relay, before closing the socket)
            outcome = await relay.wait()
        except _ClientGone:
            return CLOSE_NORMAL, "client went away"
        except docker_api.DockerError as exc:
            return CLOSE_ENGINE_ERROR, _reason(engine_error_answer(exc)[1])
        if isinstance(outcome, _OutputEnded):
            return CLOSE_NORMAL, await self._exit_note(session)
        return outcome

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
        try:
            return f"shell exited with code {await self.docker.execs.exit_code(session.exec_id)}"
        except docker_api.DockerError:
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


# -- the direct relay on Sanic's WebSocket ---------------------------------------------------------

#: Input held back (before the shell is attached, or behind a resize or a full stdin) beyond
#: which dockerlink stops reading the client's socket until it is written.
HELD_INPUT_LIMIT = 64 * 1024
_DATA_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})
#: Tasks handed to Sanic's own handling of control frames (pongs, the closing handshake).
_control_tasks: set[asyncio.Task[None]] = set()


class _OutputEnded:
    """The shell's output ended (it exited): the close reason gives its exit code."""


#: What a held resize counts for against HELD_INPUT_LIMIT: each is an engine call, so resizes
#: between keystrokes fill the hold as bytes do (resizes in a row are held as one).
RESIZE_COST = 64


def _held_cost(item: bytes | Resize) -> int:
    return RESIZE_COST if isinstance(item, Resize) else len(item)


class DirectRelay:
    """A session's two directions on Sanic's own WebSocket, run in the event loop's callbacks.

    The generic bridge (:meth:`TerminalSessions.bridge`) costs a keystroke several task
    switches: Sanic hands each frame to a task, queues it, wakes the task awaiting ``recv``,
    which writes it to the engine; output wakes another task, which awaits ``send``. Here:

    - input: the WebSocket's ``data_received`` is replaced, for this connection only, by
      :meth:`_client_data`, which parses the frames with the same sans-I/O protocol object
      Sanic uses (``ws.ws_proto``), writes binary and text frames' bytes to the shell's stdin
      at once, and hands every other frame (ping, pong, close) and what the protocol has to
      send back to Sanic's own handling, unchanged. It is installed before the handler runs
      (the ``websocket.handler.before`` signal), so no frame ever goes Sanic's other way.
      Input is held in order (and the client's socket no longer read beyond
      ``HELD_INPUT_LIMIT``) while the shell is not yet attached, a resize is being applied,
      or the shell does not read its stdin.
    - output: the hijacked stream hands each chunk to :meth:`output_received`, which frames
      it and writes it to the client's socket at once while that socket's write buffer is
      under its high-water mark; otherwise it stops reading the engine and sends the chunk
      through Sanic's ``send``, which waits for room, then reads on (the backpressure of the
      generic bridge, unchanged).
    - idle: one timer, re-armed only when it fires, instead of a timeout per ``recv``.
    """

    def __init__(self, ws: WebsocketImplProtocol, idle_s: float) -> None:
        assert ws.io_proto is not None
        assert ws.io_proto.transport is not None
        self.ws = ws
        self.loop = asyncio.get_running_loop()
        self.transport = ws.io_proto.transport
        self.high_water = self.transport.get_write_buffer_limits()[1]
        self.idle_s = idle_s
        self.last_input = self.loop.time()
        self.idle_timer = self.loop.call_later(idle_s, self._check_idle)
        #: The outcome: a close code and reason, _OutputEnded, or an exception.
        self.outcome: asyncio.Future[tuple[int, str] | _OutputEnded] = self.loop.create_future()
        self.stream: HijackedStream | None = None
        self.resize: Callable[[Resize], Awaitable[None]] | None = None
        #: Input waiting for the worker, in order: bytes to type and resizes.
        self.held: collections.deque[bytes | Resize] = collections.deque()
        self.held_bytes = 0
        self.worker: asyncio.Task[None] | None = None
        self.input_paused = False
        self.text: bytearray | None = None
        #: Output waiting for Sanic's send, in order, and the task sending it.
        self.unsent: collections.deque[bytes] = collections.deque()
        self.sending: asyncio.Task[None] | None = None
        ws.data_received = self._client_data  # type: ignore[method-assign]

    @staticmethod
    def supports(ws: object) -> bool:
        """Sanic's own WebSocket on a live connection (not ASGI's, not a test's)."""
        return (
            type(ws) is WebsocketImplProtocol
            and ws.io_proto is not None
            and ws.io_proto.transport is not None
            and ws.ws_proto.state is State.OPEN
        )

    def attach(self, stream: HijackedStream, resize: Callable[[Resize], Awaitable[None]]) -> None:
        """The shell is there: type what was held, then relay both ways."""
        self.stream = stream
        self.resize = resize
        if self.held and self.worker is None and not self.outcome.done():
            self.worker = asyncio.create_task(self._work(), name="terminal.input")
        stream.deliver_to(self)

    async def wait(self) -> tuple[int, str] | _OutputEnded:
        """Until the session ends; raises _ClientGone or the engine's DockerError."""
        return await asyncio.shield(self.outcome)

    async def stop(self) -> None:
        """Relay nothing more (idempotent); the client's frames are parsed and dropped."""
        self._finish(_ClientGone())
        self.idle_timer.cancel()
        tasks = [t for t in (self.worker, self.sending) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.held.clear()
        self.held_bytes = 0
        self.unsent.clear()
        self._resume_input()  # for Sanic's closing handshake

    # -- client -> shell ---------------------------------------------------------------------

    def _client_data(self, data: bytes) -> None:
        protocol = self.ws.ws_proto
        protocol.receive_data(data)
        to_send = protocol.data_to_send()
        others: list[Event] = []
        for event in protocol.events_received():
            if isinstance(event, Frame) and event.opcode in _DATA_OPCODES:
                self._frame(event)
            else:
                others.append(event)
        if to_send or others:
            task = asyncio.create_task(self.ws.async_data_received(to_send, others))
            _control_tasks.add(task)
            task.add_done_callback(_control_tasks.discard)
        if protocol.state is not State.OPEN:
            self._finish(_ClientGone())

    def _frame(self, frame: Frame) -> None:
        if self.outcome.done():
            return
        self.last_input = self.loop.time()
        if frame.opcode is Opcode.TEXT:
            self.text = bytearray()
        if self.text is None:  # a binary frame or its continuation: the bytes as they come
            self._type(bytes(frame.data))
            return
        self.text += frame.data
        if frame.fin:
            self._text_message(bytes(self.text))
            self.text = None

    def _text_message(self, raw: bytes) -> None:
        try:
            resize = parse_resize(raw.decode())
        except UnicodeDecodeError:
            self._finish((CLOSE_INVALID_DATA, "a text message must be UTF-8"))
            return
        except ValueError as exc:
            self._finish((CLOSE_POLICY, str(exc)))
            return
        if resize is None:
            self._type(raw)
        else:
            self._hold(resize)

    def _type(self, data: bytes) -> None:
        if not data:
            return
        if self.stream is None or self.worker is not None:
            self._hold(data)
            return
        try:
            taken = self.stream.write_nowait(data)
        except docker_api.DockerError as exc:
            self._finish(exc)
            return
        if not taken:  # the shell is not reading: wait for it, holding what comes meanwhile
            self.worker = asyncio.create_task(self._work(), name="terminal.input")

    def _hold(self, item: bytes | Resize) -> None:
        if isinstance(item, Resize) and self.held and isinstance(self.held[-1], Resize):
            self.held[-1] = item  # only the newest of resizes in a row matters
        else:
            self.held.append(item)
            self.held_bytes += _held_cost(item)
            if self.held_bytes > HELD_INPUT_LIMIT and not self.input_paused:
                self.input_paused = True
                self.transport.pause_reading()
        if self.stream is not None and self.worker is None:
            self.worker = asyncio.create_task(self._work(), name="terminal.input")

    async def _work(self) -> None:
        """Write what was held, in order, waiting for the shell and for each resize."""
        assert self.stream is not None
        assert self.resize is not None
        try:
            while True:
                await self.stream.drain()
                if not self.held:
                    break
                item = self.held.popleft()
                self.held_bytes -= _held_cost(item)
                if isinstance(item, Resize):
                    await self.resize(item)
                else:
                    self.stream.write_nowait(item)
                if self.input_paused and self.held_bytes <= HELD_INPUT_LIMIT:
                    self._resume_input()
        except docker_api.DockerError as exc:
            self._finish(exc)
        finally:
            self.worker = None
        self._resume_input()

    def _resume_input(self) -> None:
        if self.input_paused and self.ws.ws_proto.state is State.OPEN:
            self.input_paused = False
            self.transport.resume_reading()

    def _check_idle(self) -> None:
        idle_for = self.loop.time() - self.last_input
        if idle_for >= self.idle_s:
            self._finish((CLOSE_NORMAL, f"no input for {self.idle_s:g} s (terminal_idle_timeout)"))
        else:
            self.idle_timer = self.loop.call_later(self.idle_s - idle_for, self._check_idle)

    # -- shell -> client (the stream's sink) -------------------------------------------------

    def output_received(self, data: bytes) -> None:
        if self.outcome.done():
            return
        ws = self.ws
        protocol = ws.ws_proto
        if (
            self.sending is None
            and protocol.state is State.OPEN
            and not ws.conn_mutex.locked()
            and not self.transport.is_closing()
            and self.transport.get_write_buffer_size() < self.high_water
        ):
            protocol.send_binary(data)
            for chunk in protocol.data_to_send():
                self.transport.write(chunk)
            return
        self.unsent.append(data)
        if self.sending is None:
            assert self.stream is not None
            self.stream.pause_output()
            self.sending = asyncio.create_task(self._send(), name="terminal.out")

    async def _send(self) -> None:
        """Sanic's send, which waits for room in the client's socket; then read on."""
        assert self.stream is not None
        try:
            while self.unsent:
                await self.ws.send(self.unsent.popleft())
        except Exception:  # the socket's own closed/failed errors vary by version
            self._finish(_ClientGone())
            return
        finally:
            self.sending = None
        self.stream.resume_output()

    def output_ended(self, error: docker_api.DockerError | None) -> None:
        self._finish(_OutputEnded() if error is None else error)

    def _finish(self, outcome: tuple[int, str] | _OutputEnded | BaseException) -> None:
        if self.outcome.done():
            return
        if isinstance(outcome, BaseException):
            self.outcome.set_exception(outcome)
            self.outcome.exception()  # retrieved: the session reads it, or no one needs it
        else:
            self.outcome.set_result(outcome)
