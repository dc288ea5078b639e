"""The ``dockerlink`` command's output and exit codes, run as a subprocess (no engine needed).

``dockerlink check`` against the real engine is in tests/engine/test_cli_check.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dockerlink import __version__

TOKEN = "cli-test-token-0123456789abcdef"


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m dockerlink ARGS`` in ``cwd`` with only ``env``'s settings (no .env around)."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("DOCKERLINK_")}
    return subprocess.run(
        [sys.executable, "-m", "dockerlink", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version(tmp_path: Path) -> None:
    result = run_cli("version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"dockerlink {__version__} (Docker Engine API 1.41 to 1.49)\n"
    assert result.stderr == ""


def test_version_needs_no_valid_settings(tmp_path: Path) -> None:
    result = run_cli("version", cwd=tmp_path, env={"DOCKERLINK_PORT": "not-a-port"})
    assert result.returncode == 0


def test_help_lists_every_command_and_the_exit_codes(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("serve", "check", "version"):
        assert f"    {command} " in result.stdout
    assert "exit status: 0 when all is well, 1 when `check` found a problem" in result.stdout
    assert ".env" in result.stdout


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("serve", ["Run the HTTP API", "one line per request", "log_format"]),
        ("check", ["data_dir", "negotiated API version", "exits 0 only when every check"]),
        ("version", ["Docker Engine API versions"]),
    ],
)
def test_each_command_explains_itself(tmp_path: Path, command: str, words: list[str]) -> None:
    result = run_cli(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: dockerlink {command}")
    text = " ".join(result.stdout.split())
    for word in words:
        assert word in text


def test_an_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("frobnicate", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


@pytest.mark.parametrize("command", ["check", "serve"])
def test_an_invalid_setting_is_exit_2_with_one_line_naming_it(tmp_path: Path, command: str) -> None:
    result = run_cli(command, cwd=tmp_path, env={"DOCKERLINK_PORT": "70000"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "dockerlink: invalid setting port: 70000 is outside 1..65535\n"


def test_an_invalid_setting_in_env_file_is_found_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("hook_on_create=/nonexistent/hook\n")
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("dockerlink: invalid setting hook_on_create: ")


def test_check_without_an_engine_is_exit_1_naming_the_problem(tmp_path: Path) -> None:
    sock = tmp_path / "missing.sock"
    result = run_cli(
        "check",
        cwd=tmp_path,
        env={"DOCKERLINK_DOCKER_SOCK": str(sock), "DOCKERLINK_DOCKER_TIMEOUT": "5"},
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "settings: ok"
    assert f"  docker_sock = {sock}" in lines
    assert f"data_dir: ok: {tmp_path / 'data'} does not exist yet" in result.stdout
    engine_lines = [line for line in lines if line.startswith("engine: ")]
    assert engine_lines == [
        f"engine: PROBLEM: docker engine unavailable: cannot connect to {sock}: "
        "[Errno 2] No such file or directory"
    ]
    assert "all is well" not in result.stdout
    assert result.stderr == "dockerlink check: 1 problem(s) found\n"


def test_check_tries_the_listen_addresses(tmp_path: Path) -> None:
    """Free: ok. In use (on a live host, by the running dockerlink): said, not a problem. An
    address that cannot be had: a problem, as serve would find."""
    no_engine = {"DOCKERLINK_DOCKER_SOCK": str(tmp_path / "missing.sock")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli(
            "check", cwd=tmp_path, env={**no_engine, "host": "127.0.0.1", "port": str(port)}
        )
    assert (
        f"listen: in use: cannot listen on http://127.0.0.1:{port}: Address already in use "
        "(by the running dockerlink, or another program)\n" in busy.stdout
    )
    assert busy.stderr == "dockerlink check: 1 problem(s) found\n"  # the engine only
    free = run_cli("check", cwd=tmp_path, env={**no_engine, "host": "127.0.0.1", "port": str(port)})
    assert f"listen: ok: can listen on http://127.0.0.1:{port}\n" in free.stdout
    nowhere = run_cli(
        "check",
        cwd=tmp_path,
        env={**no_engine, "host": "no-such-host.invalid", "DOCKERLINK_API_TOKEN": TOKEN},
    )
    assert "listen: PROBLEM: cannot listen on no-such-host.invalid: " in nowhere.stdout
    assert nowhere.stderr == "dockerlink check: 2 problem(s) found\n"


def with_data_dir(command: str, tmp_path: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``command`` with ``data_dir`` and no engine."""
    env = {
        "DOCKERLINK_DOCKER_SOCK": str(tmp_path / "missing.sock"),
        "DOCKERLINK_DATA_DIR": str(data_dir),
    }
    return run_cli(command, cwd=tmp_path, env=env)


def test_check_reports_a_data_dir_it_cannot_use(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = with_data_dir("check", tmp_path, not_a_dir)
    assert result.returncode == 1
    assert f"data_dir: PROBLEM: {not_a_dir} is not a directory\n" in result.stdout
    assert result.stderr == "dockerlink check: 2 problem(s) found\n"
    under_a_file = with_data_dir("check", tmp_path, not_a_dir / "data")
    assert under_a_file.returncode == 1
    problem = f"{not_a_dir / 'data'} cannot be created: {not_a_dir} is not a directory"
    assert f"data_dir: PROBLEM: {problem}" in under_a_file.stdout
    # serve says the same in one line, before it listens (not tracebacks once it does)
    served = with_data_dir("serve", tmp_path, not_a_dir / "data")
    assert (served.returncode, served.stderr) == (2, f"dockerlink: data_dir: {problem}\n")


def test_check_shows_the_settings_but_never_the_token(tmp_path: Path) -> None:
    result = run_cli(
        "check",
        cwd=tmp_path,
        env={
            "DOCKERLINK_DOCKER_SOCK": str(tmp_path / "missing.sock"),
            "DOCKERLINK_API_TOKEN": TOKEN,
            "DOCKERLINK_BASE_IMAGE": "hosting/base:1",
        },
    )
    assert TOKEN not in result.stdout + result.stderr
    assert "  api_token = (set, hidden)" in result.stdout
    assert "  base_image = hosting/base:1" in result.stdout
    assert "  hook_on_create = (none)" in result.stdout


def test_serve_shortens_the_gil_switch_interval_before_the_app_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A worker thread holding the GIL (the history writer, the sampler's reads) keeps the
    event loop waiting for it up to the switch interval: 1 ms, not Python's 5 ms."""
    import dockerlink.app
    from dockerlink import cli
    from dockerlink.settings import load_settings

    seen: list[float] = []

    class Made(Exception):
        pass

    def create_app(*args: object, **kwargs: object) -> None:
        seen.append(sys.getswitchinterval())
        raise Made

    before = sys.getswitchinterval()
    monkeypatch.setattr(dockerlink.app, "create_app", create_app)
    monkeypatch.setenv("DOCKERLINK_DATA_DIR", str(tmp_path))
    sys.setswitchinterval(0.005)  # Python's own
    try:
        with pytest.raises(Made):
            cli.serve(load_settings())
    finally:
        sys.setswitchinterval(before)
    assert seen == [pytest.approx(0.001)]
