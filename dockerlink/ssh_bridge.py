"""The SSH bridge behind the panels' shell tab: a browser terminal to a container's own sshd.

The panels show ``https://ssh.<name>.<domain>/wetty`` in an iframe; nginx sends it to
``/v1/ssh/<name>/``, whose page opens a WebSocket speaking the terminal protocol (binary frames:
raw bytes both ways; a text frame ``{"type": "resize", "cols": C, "rows": R}`` resizes; other
text is typed). The bridge:

- asks in the terminal for ``login as: `` (echoed) and ``password: `` (not echoed);
- connects with asyncssh to ``127.0.0.1:<host_port_root + 22>`` of that dockerlink container,
  the only address and port it ever dials (the port comes from the container's own ``ports``
  label and must be where the engine publishes its port 22), within
  :data:`SSH_CONNECT_TIMEOUT_S` for the connection, the handshake and the login together;
- on wrong credentials prints a line and prompts again; otherwise asks for a PTY of the
  browser's size and a shell, and copies bytes both ways until either side ends. Output is read
  from SSH only as fast as the browser takes it (the SSH channel's window then holds the shell
  back), input only as fast as the SSH channel takes it, so a flood grows nothing here.

Host keys are accepted without a check: the peer is the container's own sshd on loopback,
reached through a port the engine publishes for that container, and there is no known_hosts
for customers' containers (their keys are made inside their images). Nothing else of
asyncssh's client set-up is used: no keys or agent of the service's user, no ssh config file.

Sockets: at most ``max_sessions`` are open at once in all and
:data:`SESSIONS_PER_CONTAINER` for one container (the routes are public: without a bound, anyone
could hold open sockets, and then SSH connections, until memory or descriptors ran out). Past
either bound the route answers 429 before the upgrade; a socket that finds the last slot taken
during its upgrade is closed with code 1013.

Brute force: :class:`LoginGuard` counts failed logins per container. After
:data:`MAX_FAILURES` failures within :data:`FAILURE_WINDOW_S`, the container's logins are
refused for :data:`LOCKOUT_S`, before any SSH connection is made. Attempts on one container
are made one at a time, so parallel sockets cannot overshoot the count. The guard lives in
memory: a restart of dockerlink forgets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import asyncssh

from .errors import PreconditionFailed, TooManyRequests
from .hosting import ManagedContainer, host_port_root, labels_of
from .terminal import (
    CLOSE_ENGINE_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    Resize,
    parse_resize,
)

__all__ = [
    "FAILURE_WINDOW_S",
    "LOCKOUT_S",
    "LOGIN_TIMEOUT_S",
    "MAX_FAILURES",
    "MAX_TYPED_AHEAD",
    "SESSIONS_PER_CONTAINER",
    "SSH_CONNECT_TIMEOUT_S",
    "LineEditor",
    "LoginGuard",
    "Resize",
    "SSHBridge",
    "SSHTarget",
    "Terminal",
    "parse_terminal_message",
    "ssh_target",
]

log = logging.getLogger("dockerlink.ssh")

MAX_FAILURES = 5
FAILURE_WINDOW_S = 300.0
LOCKOUT_S = 300.0
#: The TCP connection, SSH handshake and login together.
SSH_CONNECT_TIMEOUT_S = 15.0
#: Closing the SSH connection once either side has ended.
SSH_CLOSE_TIMEOUT_S = 5.0
#: The login dialogue (prompts and attempts) must end with a shell within this time.
LOGIN_TIMEOUT_S = 300.0
#: Sockets open at once for one container (several browser tabs, a reconnecting page).
SESSIONS_PER_CONTAINER = 8
#: Longest user name or password taken at the prompts (more is ignored).
MAX_LINE_BYTES = 256
#: Input held while the prompts run (typed ahead of them, or for the shell); more is dropped:
#: the prompts read it a byte at a time, so a megabyte pasted there would hold the event loop.
MAX_TYPED_AHEAD = 4096
#: Most bytes of shell output sent in one WebSocket frame.
OUTPUT_CHUNK_BYTES = 32 * 1024
DEFAULT_SIZE = (80, 24)

_ESC, _BACKSPACE, _DELETE, _CTRL_C, _CTRL_D, _CTRL_U = 0x1B, 0x08, 0x7F, 0x03, 0x04, 0x15


def parse_terminal_message(message: str | bytes) -> bytes | Resize:
    """One WebSocket message of the terminal protocol (the terminal's, :func:`parse_resize`):
    bytes to type, or a resize; a bad resize is dropped (``b""``) rather than ending a login."""
    if isinstance(message, bytes):
        return message
    try:
        resize = parse_resize(message)
    except ValueError:
        return b""
    return resize if resize is not None else message.encode("utf-8", "replace")


class Terminal(Protocol):
    """The browser's end: what the WebSocket adapter offers the bridge."""

    async def read(self) -> bytes | Resize | None:
        """The next input (None: the browser went away)."""

    async def write(self, data: bytes) -> None:
        """Send output (waits while the browser is slow; raises when it has gone)."""

    async def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class SSHTarget:
    container_id: str
    name: str
    port: int


def ssh_target(container: ManagedContainer) -> SSHTarget:
    """Where a dockerlink container's sshd is published: ``host_port_root + 22`` on the host.

    That port must be the one the engine publishes for the container's port 22, so the bridge
    never dials a port that belongs to anything else.
    """
    root = host_port_root(labels_of(container.info))
    bindings = (container.host_config.get("PortBindings") or {}).get("22/tcp") or []
    published = {str(binding.get("HostPort", "")) for binding in bindings}
    if root is None or root + 22 > 65535 or str(root + 22) not in published:
        raise PreconditionFailed(
            "this container does not publish its SSH port on host_port_root + 22"
        )
    return SSHTarget(container.id, container.name.lstrip("/"), root + 22)


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginGuard:
    """Failed SSH logins per container, and lock-outs (in memory; ``clock`` in seconds)."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = FAILURE_WINDOW_S,
        lockout_s: float = LOCKOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._clock = clock
        self._records: dict[str, _Record] = {}

    def refused_for(self, key: str) -> float:
        """Seconds until ``key`` takes logins again; 0 when it does now."""
        record = self._current(key)
        if record is None:
            return 0.0
        return max(0.0, record.locked_until - self._clock())

    def failed(self, key: str) -> bool:
        """Count a failed login; True when it locks ``key`` out."""
        now = self._clock()
        record = self._current(key) or self._records.setdefault(key, _Record())
        record.failures.append(now)
        if len(record.failures) >= self.max_failures:
            record.failures.clear()
            record.locked_until = now + self.lockout_s
            return True
        return False

    def succeeded(self, key: str) -> None:
        self._records.pop(key, None)

    def _current(self, key: str) -> _Record | None:
        """The record of ``key`` without failures older than the window (dropped when empty)."""
        record = self._records.get(key)
        if record is None:
            return None
        now = self._clock()
        while record.failures and record.failures[0] <= now - self.window_s:
            record.failures.popleft()
        if not record.failures and record.locked_until <= now:
            del self._records[key]
            return None
        return record


class LineEditor:
    """Reads lines typed in the terminal, echoing them or not; keeps what was typed after."""

    def __init__(self, terminal: Terminal) -> None:
        self._terminal = terminal
        self._pending = bytearray()
        self.size = DEFAULT_SIZE

    def take_pending(self) -> bytes:
        """What was typed after the last line (for the shell)."""
        pending, self._pending = bytes(self._pending), bytearray()
        return pending

    async def _next_byte(self) -> int | None:
        while not self._pending:
            message = await self._terminal.read()
            if message is None:
                return None
            if isinstance(message, Resize):
                self.size = (message.cols, message.rows)
            else:
                self._pending += message[:MAX_TYPED_AHEAD]  # (read only once all before is taken)
        return self._pending.pop(0)

    async def read_line(self, *, echo: bool) -> str | None:
        """One line (Enter ends it; Ctrl-C gives ""; Ctrl-D on an empty line or a closed
        terminal gives None). Escape sequences (arrow keys...) are dropped."""
        line = bytearray()
        while True:
            byte = await self._next_byte()
            if byte is None:
                return None
            if byte in (0x0D, 0x0A):
                if byte == 0x0D and self._pending[:1] == b"\n":
                    self._pending.pop(0)
                await self._terminal.write(b"\r\n")
                return line.decode("utf-8", "replace")
            if byte in (_BACKSPACE, _DELETE):
                if line:
                    while line and 0x80 <= line[-1] < 0xC0:  # a UTF-8 continuation byte
                        line.pop()
                    if line:
                        line.pop()
                    if echo:
                        await self._terminal.write(b"\b \b")
            elif byte == _CTRL_C:
                await self._terminal.write(b"^C\r\n")
                return ""
            elif byte == _CTRL_D and not line:
                return None
            elif byte == _CTRL_U:
                if echo and line:
                    await self._terminal.write(b"\r\x1b[K")
                line.clear()
            elif byte == _ESC:
                await self._skip_escape_sequence()
            elif byte >= 0x20 and len(line) < MAX_LINE_BYTES:
                line.append(byte)
                if echo:
                    await self._terminal.write(bytes([byte]))

    async def _skip_escape_sequence(self) -> None:
        first = await self._next_byte()
        if first not in (ord("["), ord("O")):
            return
        while (byte := await self._next_byte()) is not None and not 0x40 <= byte <= 0x7E:
            pass


#: Opens an SSH connection to the target as user, with password (asyncssh's errors on failure).
SSHConnect = Callable[[SSHTarget, str, str], Awaitable[asyncssh.SSHClientConnection]]


async def asyncssh_connect(
    target: SSHTarget, username: str, password: str
) -> asyncssh.SSHClientConnection:
    """Password (or keyboard-interactive) login to the container's sshd on loopback."""
    return await asyncssh.connect(
        "127.0.0.1",
        target.port,
        username=username,
        password=password,
        known_hosts=None,  # the container's own sshd on loopback: see the module docstring
        client_keys=None,
        agent_path=None,
        config=None,
        preferred_auth=("keyboard-interactive", "password"),
        connect_timeout=SSH_CONNECT_TIMEOUT_S,
        login_timeout=SSH_CONNECT_TIMEOUT_S,
        keepalive_interval=60,
    )


class SSHBridge:
    """Runs one browser terminal: the login dialogue, then the SSH session."""

    def __init__(
        self,
        guard: LoginGuard | None = None,
        connect: SSHConnect = asyncssh_connect,
        *,
        login_timeout_s: float = LOGIN_TIMEOUT_S,
        max_sessions: int = 256,
        sessions_per_container: int = SESSIONS_PER_CONTAINER,
    ) -> None:
        self.guard = guard or LoginGuard()
        self._connect = connect
        self._login_timeout_s = login_timeout_s
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.max_sessions = max_sessions
        self.sessions_per_container = sessions_per_container
        #: Open sessions by container id, and in all.
        self._open: Counter[str] = Counter()
        self._open_total = 0

    def check_room(self, container_id: str) -> None:
        """TooManyRequests when no other session may open (checked before the upgrade)."""
        if self._open_total >= self.max_sessions:
            raise TooManyRequests(
                f"{self._open_total} SSH terminal sessions are open, the most allowed "
                "(ssh_max_sessions)"
            )
        if self._open[container_id] >= self.sessions_per_container:
            raise TooManyRequests(
                f"{self._open[container_id]} SSH terminal sessions are open for this container, "
                "the most allowed"
            )

    async def serve(self, terminal: Terminal, target: SSHTarget) -> None:
        """Until the shell ends, the browser goes away, or logins are refused."""
        key = target.container_id
        try:
            self.check_room(key)
        except TooManyRequests as exc:  # others took the last slots during the upgrade
            await terminal.write(f"{exc.message}: try again later.\r\n".encode())
            return await terminal.close(CLOSE_TRY_AGAIN, "too many sessions")
        self._open[key] += 1
        self._open_total += 1
        try:
            await self._serve(terminal, target)
        finally:
            self._open_total -= 1
            self._open[key] -= 1
            if not self._open[key]:
                del self._open[key]

    async def _serve(self, terminal: Terminal, target: SSHTarget) -> None:
        editor = LineEditor(terminal)
        try:
            async with asyncio.timeout(self._login_timeout_s):
                connection = await self._dialogue(terminal, target, editor)
        except TimeoutError:
            await terminal.write(b"\r\nNo login within the time allowed.\r\n")
            return await terminal.close(CLOSE_NORMAL, "login timed out")
        if connection is not None:
            await self._session(terminal, connection, editor, target)

    async def _dialogue(
        self, terminal: Terminal, target: SSHTarget, editor: LineEditor
    ) -> asyncssh.SSHClientConnection | None:
        """Prompts until a login succeeds (the connection), or None when it is over."""
        while True:
            if await self._refused(terminal, target):
                return None
            await terminal.write(b"login as: ")
            username = await editor.read_line(echo=True)
            if username is None:
                await terminal.close(CLOSE_NORMAL, "")
                return None
            if not username.strip():
                continue
            await terminal.write(b"password: ")
            password = await editor.read_line(echo=False)
            if password is None:
                await terminal.close(CLOSE_NORMAL, "")
                return None
            connection = await self._login(terminal, target, username, password)
            if connection is not None:
                return connection

    async def _refused(self, terminal: Terminal, target: SSHTarget) -> bool:
        wait_s = self.guard.refused_for(target.container_id)
        if not wait_s:
            return False
        minutes = max(1, math.ceil(wait_s / 60))
        await terminal.write(
            f"Too many failed logins for {target.name}: try again in {minutes} min.\r\n".encode()
        )
        await terminal.close(CLOSE_POLICY, "too many failed logins")
        return True

    async def _login(
        self, terminal: Terminal, target: SSHTarget, username: str, password: str
    ) -> asyncssh.SSHClientConnection | None:
        """An SSH connection as ``username``, or None after saying why in the terminal."""
        key = target.container_id
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = asyncio.Lock()
        async with turn:  # one attempt at a time per container: the count stays exact
            if self.guard.refused_for(key):
                return None  # the loop says so
            try:
                async with asyncio.timeout(SSH_CONNECT_TIMEOUT_S):
                    connection = await self._connect(target, username, password)
            except asyncssh.PermissionDenied:
                locked = self.guard.failed(key)
                log.warning(
                    "SSH login as %r to %s refused%s",
                    username,
                    target.name,
                    " (now locked out)" if locked else "",
                )
                await terminal.write(b"Access denied\r\n")
                return None
            except (OSError, TimeoutError, asyncssh.Error) as exc:
                reason = _reason(exc)
                log.warning("SSH to %s (port %d) failed: %s", target.name, target.port, reason)
                await terminal.write(
                    f"Could not reach the SSH server of {target.name}: {reason}\r\n".encode()
                )
                return None
            self.guard.succeeded(key)
            log.info("SSH login as %r to %s", username, target.name)
            return connection

    async def _session(
        self,
        terminal: Terminal,
        connection: asyncssh.SSHClientConnection,
        editor: LineEditor,
        target: SSHTarget,
    ) -> None:
        try:
            try:
                process = await connection.create_process(
                    term_type="xterm-256color",
                    term_size=editor.size,
                    encoding=None,
                    stderr=asyncssh.STDOUT,
                )
            except asyncssh.Error as exc:  # the server refused a session or a terminal
                reason = exc.reason or type(exc).__name__
                log.warning("SSH shell on %s refused: %s", target.name, reason)
                await terminal.write(f"The SSH server refused a shell: {reason}\r\n".encode())
                await terminal.close(CLOSE_ENGINE_ERROR, "the SSH server refused a shell")
                return
            typed_ahead = editor.take_pending()
            if typed_ahead:
                process.stdin.write(typed_ahead)

            async def output() -> None:
                while data := await process.stdout.read(OUTPUT_CHUNK_BYTES):
                    await terminal.write(data)

            async def keystrokes() -> None:
                while (message := await terminal.read()) is not None:
                    if isinstance(message, Resize):
                        process.change_terminal_size(message.cols, message.rows)
                    elif message:
                        process.stdin.write(message)
                        await process.stdin.drain()

            shell = asyncio.ensure_future(output())
            browser = asyncio.ensure_future(keystrokes())
            try:
                await asyncio.wait({shell, browser}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (shell, browser):
                    task.cancel()
                await asyncio.gather(shell, browser, return_exceptions=True)
            if shell.done() and not shell.cancelled() and shell.exception() is None:
                await terminal.close(CLOSE_NORMAL, "the shell ended")
        finally:
            connection.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.wait_closed(), SSH_CLOSE_TIMEOUT_S)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {SSH_CONNECT_TIMEOUT_S:g} s"
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
