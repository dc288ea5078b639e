"""The SSH bridge's login guard, line editor and message parsing, with an injected clock.

A stand-in for the SSH connection counts the logins tried (what a real sshd cannot tell us:
that a locked-out container gets none); the real sshd is in tests/engine/test_ssh_bridge.py.
"""

from __future__ import annotations

import asyncio
from collections import deque

import asyncssh
import pytest

from dockerlink.errors import PreconditionFailed, TooManyRequests
from dockerlink.hosting import ManagedContainer
from dockerlink.ssh_bridge import (
    MAX_TYPED_AHEAD,
    LineEditor,
    LoginGuard,
    Resize,
    SSHBridge,
    SSHTarget,
    parse_terminal_message,
    ssh_target,
)

from .clock import Clock

TARGET = SSHTarget(container_id="c0ffee" * 10 + "abcd", name="web1", port=10022)


class FakeTerminal:
    """Input given up front (then the browser goes away); output and close code recorded."""

    def __init__(self, *inputs: bytes | Resize) -> None:
        self.inputs: deque[bytes | Resize] = deque(inputs)
        self.output = bytearray()
        self.closed: int | None = None

    async def read(self) -> bytes | Resize | None:
        return self.inputs.popleft() if self.inputs else None

    async def write(self, data: bytes) -> None:
        self.output += data

    async def close(self, code: int, reason: str) -> None:
        self.closed = code

    @property
    def text(self) -> str:
        return self.output.decode()


class RefusingSSH:
    """Every login is refused, as sshd refuses a wrong password; counts the attempts."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []

    async def __call__(
        self, target: SSHTarget, username: str, password: str
    ) -> asyncssh.SSHClientConnection:
        assert target == TARGET
        self.attempts.append((username, password))
        raise asyncssh.PermissionDenied("Permission denied")


def test_five_failures_within_the_window_lock_out_for_five_minutes() -> None:
    clock = Clock(1000)
    guard = LoginGuard(clock=clock)
    for _ in range(4):
        assert guard.failed("a") is False
        clock.now += 10
    assert guard.refused_for("a") == 0
    assert guard.failed("a") is True  # the fifth, 40 s after the first
    assert guard.refused_for("a") == 300
    assert guard.refused_for("b") == 0  # per container
    clock.now += 299
    assert guard.refused_for("a") == 1
    clock.now += 1
    assert guard.refused_for("a") == 0
    assert guard.failed("a") is False  # the count starts again after a lock-out


def test_failures_older_than_five_minutes_do_not_count() -> None:
    clock = Clock(1000)
    guard = LoginGuard(clock=clock)
    for _ in range(4):
        guard.failed("a")
    clock.now += 300
    assert guard.failed("a") is False  # the four earlier ones left the window
    for _ in range(3):
        assert guard.failed("a") is False
    assert guard.failed("a") is True


def test_a_successful_login_clears_the_count() -> None:
    guard = LoginGuard(clock=Clock())
    for _ in range(4):
        guard.failed("a")
    guard.succeeded("a")
    for _ in range(4):
        assert guard.failed("a") is False


@pytest.mark.parametrize(
    ("message", "parsed"),
    [
        (b"ls\r", b"ls\r"),
        ("ls\r", b"ls\r"),
        ('{"type": "resize", "cols": 120, "rows": 40}', Resize(120, 40)),
        ('{"type": "resize", "cols": 0, "rows": 40}', b""),
        ('{"type": "resize", "cols": 1.5, "rows": 40}', b""),
        ('{"type": "resize", "cols": true, "rows": 40}', b""),
        ('{"type": "resize", "cols": 5000, "rows": 40}', b""),
        ('{"type": "other"}', b'{"type": "other"}'),
        ("{not json", b"{not json"),
    ],
)
def test_terminal_messages(message: str | bytes, parsed: bytes | Resize) -> None:
    assert parse_terminal_message(message) == parsed


async def test_the_line_editor_handles_editing_keys_and_keeps_what_was_typed_ahead() -> None:
    terminal = FakeTerminal(
        Resize(90, 30),
        b"adx\x7fm\x1b[Din",  # a backspace, and a left arrow (dropped)
        "é\x7f\r\nsecret\rls -l".encode(),  # a two-byte letter erased; \r\n is one Enter
        b"\r",
    )
    editor = LineEditor(terminal)
    assert await editor.read_line(echo=True) == "admin"
    assert editor.size == (90, 30)
    assert terminal.text == "adx\b \bminé\b \b\r\n"
    assert await editor.read_line(echo=False) == "secret"
    assert "secret" not in terminal.text
    assert editor.take_pending() == b"ls -l"  # typed before the shell was there: goes to it
    assert await editor.read_line(echo=True) == ""
    assert await editor.read_line(echo=True) is None  # the browser went away


async def test_ctrl_c_abandons_the_line_and_ctrl_d_closes() -> None:
    editor = LineEditor(FakeTerminal(b"adm\x03", b"\x04"))
    assert await editor.read_line(echo=True) == ""
    assert await editor.read_line(echo=True) is None


async def test_wrong_credentials_prompt_again_then_lock_out_without_trying_ssh() -> None:
    ssh = RefusingSSH()
    bridge = SSHBridge(LoginGuard(clock=Clock()), connect=ssh)
    terminal = FakeTerminal(*[b"admin\rwrong\r"] * 7)
    await bridge.serve(terminal, TARGET)
    assert len(ssh.attempts) == 5
    assert ssh.attempts[0] == ("admin", "wrong")
    assert terminal.text == (
        "login as: admin\r\npassword: \r\nAccess denied\r\n" * 5
        + "Too many failed logins for web1: try again in 5 min.\r\n"
    )
    assert terminal.closed == 1008

    # Another browser, locked out from the start: no prompt, no SSH connection.
    late = FakeTerminal(b"admin\rdockerlink-test\r")
    await bridge.serve(late, TARGET)
    assert len(ssh.attempts) == 5
    assert late.text == "Too many failed logins for web1: try again in 5 min.\r\n"
    assert late.closed == 1008


async def test_parallel_sockets_cannot_overshoot_the_count() -> None:
    ssh = RefusingSSH()
    bridge = SSHBridge(LoginGuard(clock=Clock()), connect=ssh)
    terminals = [FakeTerminal(b"admin\rwrong\r") for _ in range(20)]
    await asyncio.gather(*(bridge.serve(terminal, TARGET) for terminal in terminals))
    assert len(ssh.attempts) == 5


async def test_an_unreachable_sshd_is_not_a_failed_login() -> None:
    async def unreachable(
        target: SSHTarget, username: str, password: str
    ) -> asyncssh.SSHClientConnection:
        raise ConnectionRefusedError(111, "Connection refused")

    guard = LoginGuard(clock=Clock())
    terminal = FakeTerminal(b"admin\rpw\r")
    await SSHBridge(guard, connect=unreachable).serve(terminal, TARGET)
    assert "Could not reach the SSH server of web1: Connection refused\r\nlogin as: " in (
        terminal.text
    )
    assert guard.refused_for(TARGET.container_id) == 0
    assert guard._records == {}


def container(root: str, host_port: str | None) -> ManagedContainer:
    bindings = {"22/tcp": [{"HostIp": "", "HostPort": host_port}]} if host_port else {}
    return ManagedContainer(
        {
            "Id": "f" * 64,
            "Name": "/web1",
            "Config": {"Labels": {"dockerlink": "v1.0.0", "ports": root}},
            "HostConfig": {"PortBindings": bindings},
        }
    )


def test_the_target_is_the_published_port_22_of_the_block() -> None:
    assert ssh_target(container("10000", "10022")) == SSHTarget("f" * 64, "web1", 10022)


@pytest.mark.parametrize(
    ("root", "host_port"),
    [("10000", "10023"), ("10000", None), ("", "10022"), ("65530", "65552")],
)
def test_no_target_unless_port_22_is_published_at_root_plus_22(
    root: str, host_port: str | None
) -> None:
    with pytest.raises(PreconditionFailed, match="does not publish its SSH port"):
        ssh_target(container(root, host_port))


class SilentTerminal(FakeTerminal):
    """A browser that opens the socket and never types."""

    async def read(self) -> bytes | Resize | None:
        await asyncio.Event().wait()
        return None


async def test_a_login_that_never_comes_times_out() -> None:
    ssh = RefusingSSH()
    terminal = SilentTerminal()
    await SSHBridge(LoginGuard(clock=Clock()), connect=ssh, login_timeout_s=0.05).serve(
        terminal, TARGET
    )
    assert terminal.text == "login as: \r\nNo login within the time allowed.\r\n"
    assert terminal.closed == 1000
    assert ssh.attempts == []


async def test_sessions_are_bounded_per_container_and_in_all() -> None:
    bridge = SSHBridge(
        LoginGuard(clock=Clock()), connect=RefusingSSH(), max_sessions=3, sessions_per_container=2
    )
    other = SSHTarget(container_id="beef" * 16, name="web2", port=11022)
    third = SSHTarget(container_id="f00d" * 16, name="web3", port=12022)
    silent = [SilentTerminal() for _ in range(3)]
    served = [asyncio.ensure_future(bridge.serve(silent[i], TARGET)) for i in range(2)]
    await asyncio.sleep(0)  # each has taken its slot and prompts
    assert [terminal.text for terminal in silent[:2]] == ["login as: "] * 2

    with pytest.raises(
        TooManyRequests, match="2 SSH terminal sessions are open for this container"
    ):
        bridge.check_room(TARGET.container_id)
    bridge.check_room(other.container_id)  # another container: room
    served.append(asyncio.ensure_future(bridge.serve(silent[2], other)))
    await asyncio.sleep(0)
    with pytest.raises(
        TooManyRequests, match=r"^3 SSH terminal sessions are open, .*_max_sessions"
    ):
        bridge.check_room(third.container_id)
    # One that got past the check before the others took the slots: closed with 1013.
    late = FakeTerminal(b"admin\rpw\r")
    await bridge.serve(late, third)
    assert late.closed == 1013
    assert late.text.endswith("try again later.\r\n")

    served[0].cancel()  # the browser went away
    await asyncio.gather(served[0], return_exceptions=True)
    bridge.check_room(TARGET.container_id)  # room again, for that container and in all
    bridge.check_room(third.container_id)
    for task in served[1:]:
        task.cancel()
    await asyncio.gather(*served, return_exceptions=True)
    assert bridge._open == {}
    assert bridge._open_total == 0


async def test_a_megabyte_pasted_at_a_prompt_is_cut_to_what_a_prompt_can_use() -> None:
    """The prompts read a byte at a time: a megabyte held there blocked the event loop for
    seconds (one WebSocket message may be 1 MiB, on a public route)."""
    terminal = FakeTerminal(b"x" * (1 << 20), b"\radmin\r")
    editor = LineEditor(terminal)
    assert await editor.read_line(echo=False) == "x" * 256
    assert await editor.read_line(echo=True) == "admin"
    assert terminal.text == "\r\nadmin\r\n"
    assert len(editor._pending) == 0
    big = LineEditor(FakeTerminal(b"admin\r" + b"y" * (1 << 20)))
    assert await big.read_line(echo=False) == "admin"
    assert big.take_pending() == b"y" * (MAX_TYPED_AHEAD - len(b"admin\r"))


class NoShellConnection:
    """An SSH login that succeeds, on a server that refuses to open a session channel."""

    def __init__(self) -> None:
        self.closed = False

    async def create_process(self, **_: object) -> None:
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "no shells")

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


async def test_a_shell_the_server_refuses_is_said_and_closed_with_1011() -> None:
    connection = NoShellConnection()

    async def accepting(
        target: SSHTarget, username: str, password: str
    ) -> asyncssh.SSHClientConnection:
        return connection  # type: ignore[return-value]

    terminal = FakeTerminal(b"admin\rright\r")
    await SSHBridge(LoginGuard(clock=Clock()), connect=accepting).serve(terminal, TARGET)
    assert terminal.text.endswith("The SSH server refused a shell: no shells\r\n")
    assert terminal.closed == 1011
    assert connection.closed
