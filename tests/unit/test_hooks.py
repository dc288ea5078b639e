"""The hook runner on its own: environment, output, timeout, and how failures are reported."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from dockerlink.hooks import OUTPUT_LIMIT_BYTES, HookFailure, Hooks, HookTarget, sort_ports
from dockerlink.settings import Settings

from ..conftest import wait_for
from ..engines import process_alive

TARGET = HookTarget.of("f00d" * 16, "/web1", 10000, ["443/tcp", "22/tcp", "80/tcp", "53/udp"])


def script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def hooks_for(tmp_path: Path, timeout_s: float = 10, **paths: Path) -> Hooks:
    settings = Settings(data_dir=tmp_path, hook_timeout=timeout_s, **paths)  # type: ignore[arg-type]
    return Hooks(settings, environ={"PATH": os.environ["PATH"], "OPERATOR_SETTING": "kept"})


def test_ports_sort_by_number_then_protocol() -> None:
    assert sort_ports(["443/tcp", "53/udp", "22/tcp", "53/tcp", "22/tcp"]) == [
        "22/tcp",
        "53/tcp",
        "53/udp",
        "443/tcp",
    ]


async def test_the_hook_gets_the_container_facts_and_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    hook = script(tmp_path, "hook", f"env > {out}\n")
    hooks = hooks_for(tmp_path, hook_on_start=hook)
    assert await hooks.run("start", TARGET, event="restart") is None
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["DOCKERLINK_EVENT"] == "restart"
    assert env["DOCKERLINK_CONTAINER_ID"] == "f00d" * 16
    assert env["DOCKERLINK_CONTAINER_NAME"] == "web1"  # without the engine's leading /
    assert env["DOCKERLINK_HOST_PORT_ROOT"] == "10000"
    assert env["DOCKERLINK_PORTS"] == "22/tcp 53/udp 80/tcp 443/tcp"
    assert env["OPERATOR_SETTING"] == "kept"  # the hook's own settings pass through
    assert env["PATH"] == os.environ["PATH"]


async def test_the_api_token_and_the_webhook_secret_are_never_passed_to_a_hook(
    tmp_path: Path,
) -> None:
    out = tmp_path / "env.txt"
    hook = script(tmp_path, "hook", f"env > {out}\n")
    settings = Settings(data_dir=tmp_path, hook_on_stop=hook)
    hooks = Hooks(
        settings,
        environ={
            "DOCKERLINK_API_TOKEN": "secret-secret-secret",
            "api_token": "secret2",
            "DOCKERLINK_WEBHOOK_SECRET": "secret3",
            "webhook_secret": "secret4",
            "A": "b",
        },
    )
    assert await hooks.run("stop", TARGET) is None
    text = out.read_text()
    assert "secret" not in text
    assert "A=b" in text
    assert "DOCKERLINK_EVENT=stop" in text


async def test_an_unknown_port_root_is_empty(tmp_path: Path) -> None:
    out = tmp_path / "root.txt"
    hook = script(tmp_path, "hook", f'printf "[%s]" "$DOCKERLINK_HOST_PORT_ROOT" > {out}\n')
    hooks = hooks_for(tmp_path, hook_on_delete=hook)
    assert await hooks.run("delete", HookTarget.of("abc", "old", None, [])) is None
    assert out.read_text() == "[]"


async def test_no_hook_configured_runs_nothing(tmp_path: Path) -> None:
    hooks = hooks_for(tmp_path)
    for event in ("create", "delete", "start", "stop"):
        assert hooks.paths[event] is None
        assert await hooks.run(event, TARGET) is None


async def test_a_failing_hook_reports_its_exit_code_and_output(tmp_path: Path) -> None:
    hook = script(tmp_path, "hook", "echo 'first line' ; echo 'to stderr' >&2 ; exit 3\n")
    failure = await hooks_for(tmp_path, hook_on_start=hook).run("start", TARGET)
    assert failure is not None
    assert (failure.setting, failure.event, failure.exit_code) == ("hook_on_start", "start", 3)
    assert not failure.timed_out
    assert failure.output == "first line\nto stderr"  # stdout and stderr together
    assert failure.summary() == "hook_on_start failed (exit 3): first line"
    assert failure.header_value() == "hook_on_start failed (exit 3): first line"


async def test_a_hook_that_runs_too_long_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    hook = script(
        tmp_path,
        "hook",
        # a child in the same group, which must die too; then the hook itself waits
        f"sleep 300 & echo $! > {child_pid_file}\necho started\nwait\n",
    )
    hooks = hooks_for(tmp_path, timeout_s=0.5, hook_on_create=hook)
    started = time.monotonic()
    failure = await hooks.run("create", TARGET)
    assert time.monotonic() - started < 5
    assert failure is not None
    assert failure.timed_out
    assert failure.reason == "timed out after 0.5 s, killed"
    assert failure.output == "started"
    assert failure.summary() == "hook_on_create failed (timed out after 0.5 s, killed): started"
    child = int(child_pid_file.read_text())

    await wait_for(lambda: not process_alive(child), timeout=5)  # a zombie counts as gone


async def test_a_background_child_holding_the_output_does_not_hold_the_action(
    tmp_path: Path,
) -> None:
    # The hook exits at once, but leaves a process (in a new session) with its output open.
    pid_file = tmp_path / "pid"
    hook = script(tmp_path, "hook", f"setsid sleep 30 &\necho $! > {pid_file}\necho done\n")
    started = time.monotonic()
    try:
        assert await hooks_for(tmp_path, hook_on_start=hook).run("start", TARGET) is None
        assert time.monotonic() - started < 5
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_output_is_capped(tmp_path: Path) -> None:
    hook = script(tmp_path, "hook", "head -c 100000 /dev/zero | tr '\\0' x; exit 1\n")
    failure = await hooks_for(tmp_path, hook_on_stop=hook).run("stop", TARGET)
    assert failure is not None
    assert failure.output.count("x") == OUTPUT_LIMIT_BYTES
    assert f"{100000 - OUTPUT_LIMIT_BYTES} more bytes of output dropped" in failure.output


async def test_output_goes_through_a_pipe_read_as_it_comes(tmp_path: Path) -> None:
    """Not a file: 50 MB of output take no disk, and the hook is not held up writing them."""
    hook = script(
        tmp_path,
        "hook",
        "stat -L -c %F /proc/self/fd/1 /proc/self/fd/2\n"
        "head -c 50000000 /dev/zero | tr '\\0' x\nexit 1\n",
    )
    failure = await hooks_for(tmp_path, timeout_s=60, hook_on_stop=hook).run("stop", TARGET)
    assert failure is not None
    assert failure.reason == "exit 1"
    assert failure.output.startswith("fifo\nfifo\nxxx")
    kept = len("fifo\nfifo\n") + failure.output.count("x")
    assert kept == OUTPUT_LIMIT_BYTES
    dropped = len("fifo\nfifo\n") + 50_000_000 - OUTPUT_LIMIT_BYTES
    assert failure.output.endswith(f"\n[dockerlink: {dropped} more bytes of output dropped]")


async def test_the_output_pipe_is_closed_once_the_hook_exited(tmp_path: Path) -> None:
    """A background child that writes on gets a broken pipe, not an ever-growing file."""
    pid_file = tmp_path / "pid"
    report = tmp_path / "report"
    hook = script(
        tmp_path,
        "hook",
        f"(trap '' PIPE; sleep 0.5; echo late || echo write-failed > {report}) &\n"
        f"echo $! > {pid_file}\necho done\n",
    )
    opened_before = len(os.listdir("/proc/self/fd"))
    assert await hooks_for(tmp_path, hook_on_start=hook).run("start", TARGET) is None
    assert len(os.listdir("/proc/self/fd")) == opened_before  # both ends of the pipe closed
    await wait_for(lambda: report.exists(), timeout=5)
    assert report.read_text() == "write-failed\n"


async def test_a_hook_that_cannot_run_is_a_failure(tmp_path: Path) -> None:
    hook = script(tmp_path, "hook", "exit 0\n")
    hooks = hooks_for(tmp_path, hook_on_start=hook)
    hook.unlink()  # removed after start-up
    failure = await hooks.run("start", TARGET)
    assert failure is not None
    assert failure.reason.startswith("could not run: ")
    assert failure.exit_code is None


async def test_a_hook_killed_by_a_signal_says_so(tmp_path: Path) -> None:
    hook = script(tmp_path, "hook", "kill -TERM $$\n")
    failure = await hooks_for(tmp_path, hook_on_start=hook).run("start", TARGET)
    assert failure is not None
    assert failure.reason == "killed by signal 15"


async def test_a_cancelled_action_leaves_no_hook_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    hook = script(tmp_path, "hook", f"echo $$ > {pid_file}\nexec sleep 300\n")
    task = asyncio.ensure_future(hooks_for(tmp_path, hook_on_start=hook).run("start", TARGET))
    await wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid = int(pid_file.read_text())

    await wait_for(lambda: not process_alive(pid), timeout=5)


def test_header_values_are_one_printable_line() -> None:
    output = "\n  caf\u00e9\tbad\x00 " + "y" * 500 + "\r\nsecond line"
    value = HookFailure("hook_on_stop", "stop", 1, False, output).header_value()
    assert value.startswith("hook_on_stop failed (exit 1): caf??bad? yyy")
    assert len(value) <= 200
    assert all(" " <= c <= "~" for c in value)
