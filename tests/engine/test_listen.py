"""A real ``dockerlink serve`` on its default ``host`` list answers on both loopback addresses,
as a panel whose runtime tries ``::1`` first for ``localhost`` needs."""

from __future__ import annotations

import asyncio
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import unix_connect

from docker_api import DockerClient, NotFound
from dockerlink.listen import BACKLOG
from dockerlink.settings import Settings

from ..conftest import TEST_IMAGE, create_body, engine_required, free_port, wait_for
from ..dockerlink_process import DockerlinkProcess, dockerlink_command
from ..unit.test_listen import ipv6_loopback
from ._api import create_and_start
from .terminal_client import SUBPROTOCOL, Screen


def require_ipv6_loopback() -> None:
    if not ipv6_loopback():
        reason = "this machine has no IPv6 loopback: ::1 cannot be bound, so not tested"
        if engine_required():  # CI: a machine without it must not pass by skipping
            pytest.fail(reason)
        pytest.skip(reason)


async def test_the_default_hosts_answer_on_ipv4_and_ipv6_loopback(
    engine_sock: str, tmp_path: Path
) -> None:
    require_ipv6_loopback()
    default_hosts = Settings().host
    assert default_hosts == "127.0.0.1,::1"
    server = DockerlinkProcess(
        tmp_path,
        {"docker_sock": engine_sock, "data_dir": str(tmp_path / "data"), "host": default_hosts},
    )
    server.start()
    try:
        await server.until_healthy()
        for base in (f"http://[::1]:{server.port}", f"http://127.0.0.1:{server.port}"):
            async with httpx.AsyncClient(base_url=base, timeout=10) as panel:
                # The panels' layout lists containers on every page.
                listing = await panel.get("/v1/container")
                assert listing.status_code == 200, (base, listing.text)
                assert set(listing.json()) == {"success", "error"}
        assert (
            f"listening on http://127.0.0.1:{server.port}, http://[::1]:{server.port}"
            in server.log_text()
        )
        # Both listen with the same backlog (Sanic listened on the first again, with 100).
        listening = subprocess.run(
            ["ss", "-Hltn", f"sport = :{server.port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        backlogs = sorted(line.split()[2] for line in listening if line.strip())
        assert backlogs == [str(BACKLOG)] * 2, listening
    finally:
        assert server.stop() == 0, server.log_tail()


def test_a_public_address_anywhere_in_the_list_needs_a_token(tmp_path: Path) -> None:
    process = DockerlinkProcess(
        tmp_path, {"host": "127.0.0.1,::1,0.0.0.0", "port": str(free_port())}
    )
    result = subprocess.run(
        dockerlink_command(), env=process.env, cwd=tmp_path, capture_output=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "dockerlink: invalid setting api_token: refusing to listen on 0.0.0.0 without a token: "
        "set api_token, or allow_unauthenticated=true to accept anyone who can reach the port"
    ]


async def test_a_request_on_the_second_address_is_answered_when_dockerlink_stops(
    engine_sock: str,
    tmp_path: Path,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """SIGTERM lets requests under way finish on every listen address, not only the first
    (the others' connections were aborted once Sanic's own had none left)."""
    require_ipv6_loopback()
    hook = tmp_path / "slow-create-hook"
    hook.write_text("#!/bin/sh\nsleep 2\n")
    hook.chmod(0o755)
    server = DockerlinkProcess(
        tmp_path,
        {
            "docker_sock": engine_sock,
            "data_dir": str(tmp_path / "data"),
            "host": "127.0.0.1,::1",
            "base_image": TEST_IMAGE,
            "hook_on_create": str(hook),
        },
    )
    server.start()
    name = unique_name("drain")
    cleanup.append(name)
    try:
        await server.until_healthy()
        async with httpx.AsyncClient(base_url=f"http://[::1]:{server.port}", timeout=30) as panel:
            body = await create_body(docker, name)
            creating = asyncio.ensure_future(panel.put("/v1/container", json=body))

            async def hook_running() -> bool:  # the container exists: its create hook runs
                try:
                    await docker.containers.inspect(name)
                except NotFound:
                    return False
                return True

            await wait_for(hook_running, timeout=20, interval=0.05)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            created = await creating
        assert created.status_code == 200, created.text
    finally:
        assert server.stop() == 0, server.log_tail()


async def test_a_unix_socket_serves_the_api_and_a_terminal(
    engine_sock: str,
    tmp_path: Path,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """``host=...,unix:/path``: what a proxy on the same machine reaches dockerlink through
    (nginx's ``proxy_pass http://unix:/path:``); the file goes with dockerlink."""
    with tempfile.TemporaryDirectory(prefix="dl-") as short:  # a socket's path is short
        path = Path(short) / "api.sock"
        server = DockerlinkProcess(
            tmp_path,
            {
                "docker_sock": engine_sock,
                "data_dir": str(tmp_path / "data"),
                "host": f"127.0.0.1,unix:{path}",
                "base_image": TEST_IMAGE,
                "exec_user": "admin",
            },
        )
        server.start()
        try:
            await server.until_healthy()
            assert f"listening on {server.url}, unix:{path}" in server.log_text()
            assert stat.S_IMODE(path.lstat().st_mode) == 0o660
            transport = httpx.AsyncHTTPTransport(uds=str(path))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost", timeout=30
            ) as panel:
                container = await create_and_start(panel, docker, cleanup, unique_name("unix"))
                listing = await panel.get("/v1/container", params={"id": container})
                assert listing.json()["success"][container]["state"] == "running", listing.text
            async with unix_connect(
                str(path),
                f"ws://localhost/v1/container/terminal?id={container}",
                subprotocols=[SUBPROTOCOL],
                open_timeout=30,
            ) as ws:
                screen = Screen(ws)
                await screen.type("echo through-the-$((6*7))-socket\n")
                await screen.expect("through-the-42-socket")
            requests = [line for line in server.log_text().splitlines() if "terminal?id=" in line]
            assert any(" 101 " in line for line in requests), requests
        finally:
            assert server.stop() == 0, server.log_tail()
        assert not path.exists()  # removed at the stop
