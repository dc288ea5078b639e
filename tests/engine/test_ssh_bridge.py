"""The SSH bridge (``/v1/ssh/<name>/socket``) against a real container's sshd, without a browser.

The test image's ``/usr/sbin/sshd`` is dropbear, and ``admin`` logs in with the password
``dockerlink-test`` (scripts/lib/build-test-image.sh). Each test serves its own app, so each
starts with an empty count of failed logins. The browser test, through nginx and TLS, is in
test_ssh_sites.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import asyncssh
import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import TEST_IMAGE, TEST_TOKEN, create_container, serve, wait_for
from ._api import create_and_start

PASSWORD = "dockerlink-test"


@dataclass
class Screen:
    """A WebSocket terminal: what it printed so far, and ways to type and to wait."""

    ws: ClientConnection
    text: str = ""

    async def expect(self, wanted: str, timeout: float = 20) -> str:
        """Read until ``wanted`` appears after what was already matched; returns all so far."""
        async with asyncio.timeout(timeout):
            while wanted not in self.text:
                message = await self.ws.recv()
                assert isinstance(message, bytes), message
                self.text += message.decode("utf-8", "replace")
        seen, _, self.text = self.text.partition(wanted)
        return seen + wanted

    async def type(self, keys: str) -> None:
        await self.ws.send(keys.encode())

    async def resize(self, cols: int, rows: int) -> None:
        await self.ws.send(orjson.dumps({"type": "resize", "cols": cols, "rows": rows}).decode())

    async def closed(self, timeout: float = 20) -> int | None:
        """Wait for the server to close; its close code. Output until then is kept."""
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    message = await self.ws.recv()
                    if isinstance(message, bytes):
                        self.text += message.decode("utf-8", "replace")
        return self.ws.close_code


@contextlib.asynccontextmanager
async def terminal(api: httpx.AsyncClient, name: str) -> AsyncIterator[Screen]:
    url = str(api.base_url).replace("http://", "ws://") + f"/v1/ssh/{name}/socket"
    async with connect(
        url, subprotocols=[Subprotocol("dockerlink.terminal")], open_timeout=20
    ) as ws:
        yield Screen(ws)


async def refused(api: httpx.AsyncClient, name: str) -> tuple[int, str]:
    """The HTTP answer to an upgrade the route refuses."""
    url = str(api.base_url).replace("http://", "ws://") + f"/v1/ssh/{name}/socket"
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, open_timeout=20):
            pass
    response = info.value.response
    return response.status_code, response.body.decode() if response.body else ""


async def ssh_answers(port: int) -> bool:
    """The container's sshd completes an SSH handshake on host port ``port`` (and refuses a
    wrong password): ready. Made from the test, so dockerlink's count of failures is untouched.

    A banner alone is not enough: right after start, dropbear in the test image has been seen
    to send its banner and then not finish a first handshake (about 1 start in 8).
    """
    try:
        async with asyncio.timeout(3):
            connection = await asyncssh.connect(
                "127.0.0.1",
                port,
                username="admin",
                password="not-the-password",
                known_hosts=None,
                client_keys=None,
                agent_path=None,
                config=None,
                preferred_auth=("password",),
            )
    except asyncssh.PermissionDenied:
        return True
    except (OSError, TimeoutError, asyncssh.Error):
        return False
    connection.close()
    raise AssertionError("sshd accepted a wrong password")


async def ssh_container(
    api: httpx.AsyncClient, docker: DockerClient, cleanup: list[str], name: str
) -> dict[str, Any]:
    """A running dockerlink container whose sshd answers; its inspect."""
    container_id = await create_and_start(api, docker, cleanup, name)
    info = await docker.containers.inspect(container_id)
    root = int(info["Config"]["Labels"]["ports"])
    await wait_for(lambda: ssh_answers(root + 22), timeout=45, interval=0.2)
    return info


@pytest.fixture
async def token_api(engine_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """dockerlink with a token: the SSH routes must not need it."""
    async with serve(replace(engine_settings, api_token=TEST_TOKEN)) as client:
        yield client


async def test_a_wrong_password_then_the_right_one_gives_admin_a_shell(
    token_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("ssh")
    await ssh_container(token_api, docker, cleanup, name)
    async with terminal(token_api, name) as screen:
        await screen.resize(100, 33)
        await screen.expect("login as: ")
        await screen.type("admin\r")
        assert await screen.expect("password: ") == "admin\r\npassword: "  # the name is echoed
        await screen.type("not-the-password\r")
        assert await screen.expect("login as: ") == "\r\nAccess denied\r\nlogin as: "

        await screen.type("admin\r")
        await screen.expect("password: ")
        await screen.type(PASSWORD + "\r")
        banner = await screen.expect("$ ")  # busybox sh's prompt
        assert PASSWORD not in banner  # never echoed
        await screen.type("whoami\r")
        await screen.expect("whoami\r\nadmin\r\n")
        await screen.type("stty size\r")  # the size sent before the login
        await screen.expect("stty size\r\n33 100\r\n")
        await screen.resize(120, 40)
        await screen.type("stty size\r")
        await screen.expect("\r\n40 120\r\n")
        await screen.type("exit\r")
        assert await screen.closed() == 1000  # the shell ended


async def admin_processes(docker: DockerClient, container: str) -> list[str]:
    """Processes of admin in the container (the SSH session's shell and what it runs)."""
    result = await docker.execs.run(container, ["ps", "-o", "pid,user,args"], timeout=10)
    return [line for line in result.text().splitlines()[1:] if line.split()[1] == "admin"]


async def test_the_ssh_session_ends_when_the_browser_goes_away(
    token_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("ssh")
    info = await ssh_container(token_api, docker, cleanup, name)
    container = info["Id"]
    assert await admin_processes(docker, container) == []
    async with terminal(token_api, name) as screen:
        await screen.expect("login as: ")
        await screen.type(f"admin\r{PASSWORD}\r")
        await screen.type("echo started-$((40+2)); sleep 2001\r")
        await screen.expect("started-42")

        async def running() -> bool:
            return any("sleep 2001" in line for line in await admin_processes(docker, container))

        await wait_for(running, timeout=10)
    # the socket is closed: dockerlink closes the SSH connection, sshd ends the session

    async def gone() -> bool:
        return await admin_processes(docker, container) == []

    await wait_for(gone, timeout=10, interval=0.2)


async def test_five_failures_lock_the_container_out_without_trying_ssh(
    token_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("ssh")
    await ssh_container(token_api, docker, cleanup, name)
    async with terminal(token_api, name) as screen:
        for _attempt in range(5):
            await screen.expect("login as: ")
            await screen.type("admin\rwrong-password\r")  # typed ahead: both lines are read
            await screen.expect("Access denied\r\n")
        assert await screen.closed() == 1008
        assert screen.text == f"Too many failed logins for {name}: try again in 5 min.\r\n"

    # The next socket is refused at once, before any prompt (so before any SSH connection;
    # tests/unit/test_ssh_bridge.py counts the connections tried).
    async with terminal(token_api, name) as screen:
        assert await screen.closed() == 1008
        assert screen.text == f"Too many failed logins for {name}: try again in 5 min.\r\n"


async def test_only_dockerlink_containers_by_name_and_only_while_running(
    token_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("ssh")
    container_id = await create_container(token_api, docker, cleanup, name)  # not started
    assert await refused(token_api, name) == (409, "container is not running\n")
    missing = unique_name("none")
    assert await refused(token_api, missing) == (404, f"no such container: {missing}\n")
    # An id (or its prefix) is not a name: the bridge is reached by name only.
    assert await refused(token_api, container_id[:12]) == (
        404,
        f"no such container: {container_id[:12]}\n",
    )
    foreign = unique_name("foreign")
    cleanup.append(foreign)
    await docker.containers.create({"Image": TEST_IMAGE, "Cmd": ["sleep", "60"]}, name=foreign)
    assert await refused(token_api, foreign) == (
        412,
        "this docker has not been created with dockerlink\n",
    )
    assert await refused(token_api, "bad%20name") == (400, "name is not a container id or name\n")


async def test_ssh_bridge_false_answers_404_for_the_page_and_the_socket(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("ssh")
    async with serve(replace(engine_settings, api_token=TEST_TOKEN)) as api:
        await create_container(api, docker, cleanup, name)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=20) as browser:
            page = await browser.get(f"/v1/ssh/{name}/wetty")  # no token
            script = await browser.get(f"/v1/ssh/{name}/static/vendor/xterm.js")
        assert page.status_code == 200
        assert 'data-socket="socket"' in page.text  # relative: works behind nginx too
        assert 'src="static/vendor/xterm.js"' in page.text
        assert "frame-ancestors *" in page.headers["content-security-policy"]  # the panels
        assert "x-frame-options" not in page.headers
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
    async with serve(replace(engine_settings, api_token=TEST_TOKEN, ssh_bridge=False)) as api:
        assert await refused(api, name) == (404, "not found\n")
        for path in ("wetty", "static/vendor/xterm.js"):
            response = await api.get(f"/v1/ssh/{name}/{path}")
            assert (response.status_code, response.text) == (404, "not found\n")


async def test_past_ssh_max_sessions_the_socket_answers_429_until_one_closes(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("ssh")
    settings = replace(engine_settings, api_token=TEST_TOKEN, ssh_max_sessions=2)
    async with serve(settings) as api:
        await create_and_start(api, docker, cleanup, name)
        async with terminal(api, name) as first, terminal(api, name) as second:
            await first.expect("login as: ")
            await second.expect("login as: ")
            status, text = await refused(api, name)
            assert status == 429
            assert text == "2 SSH terminal sessions are open, the most allowed (ssh_max_sessions)\n"

        # Both closed by the client: their slots are free again.
        async def room() -> bool:
            with contextlib.suppress(InvalidStatus):
                async with terminal(api, name) as again:
                    await again.expect("login as: ")
                    return True
            return False

        await wait_for(room, timeout=20, interval=0.1)
