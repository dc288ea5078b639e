"""Fixtures shared by every test: settings, a served app, and the real test engine.

Engine tests are marked ``engine``. They need the engine that ``scripts/engine up`` starts (or the
socket in ``DOCKERLINK_TEST_DOCKER_SOCK``). Without one they skip on a laptop, but fail when
``DOCKERLINK_REQUIRE_ENGINE=1`` (set by ``scripts/test`` in CI), so CI never passes by skipping.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import sanic_testing.testing
from sanic import Sanic

from docker_api import DockerClient, DockerError, NotFound
from dockerlink.app import create_app
from dockerlink.settings import Settings

Sanic.test_mode = True  # many apps named "dockerlink" in one process
# sanic-testing's ASGI client sends "Host: mockserver:1234", which the rule on requests a browser
# makes for another site refuses when no token is set (only loopback names and allowed_hosts are
# accepted). Pose as what a panel on the same host sends; tests of that rule set their own Host.
sanic_testing.testing.ASGI_HOST = "127.0.0.1"

REPO = Path(__file__).resolve().parent.parent
TEST_IMAGE = "dockerlink-test:latest"
TEST_TOKEN = "test-token-0123456789abcdef"


def engine_socket_path() -> str:
    return os.environ.get("DOCKERLINK_TEST_DOCKER_SOCK", str(REPO / ".engine" / "docker.sock"))


def engine_required() -> bool:
    return os.environ.get("DOCKERLINK_REQUIRE_ENGINE", "") not in {"", "0", "false"}


async def _engine_answers(path: str) -> str | None:
    try:
        async with DockerClient(path, timeout=5) as docker:
            await docker.ping()
    except DockerError as exc:
        return exc.message
    return None


@pytest.fixture(scope="session")
def engine_sock() -> str:
    """The test engine's socket; fails (CI) or skips (laptop) when it does not answer."""
    path = engine_socket_path()
    problem = asyncio.run(_engine_answers(path))
    if problem is not None:
        message = f"no test engine at {path} ({problem}); run scripts/engine up"
        if engine_required():
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
async def docker(engine_sock: str) -> AsyncIterator[DockerClient]:
    async with DockerClient(engine_sock, timeout=30) as client:
        yield client


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Names for engine objects that no other test (or run) uses: ``dltest-<word>-<random>``."""

    def make(word: str = "c") -> str:
        return f"dltest-{word}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
async def cleanup(docker: DockerClient) -> AsyncIterator[list[str]]:
    """Append container ids or names; they are force-removed (with volumes) after the test."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        with suppress(NotFound):
            await docker.containers.remove(ref, force=True, volumes=True)


#: Port blocks at fixed places (the fuzz test's seed containers).
FIXED_BLOCKS = range(10000, 11000)
#: Where test servers listen: above the fixed blocks and below the host port blocks tests create
#: (20000 and up), since dockerlink refuses a block that holds its own listen port.
LISTEN_PORTS = range(11000, 20000)


def free_port() -> int:
    """A free loopback TCP port from :data:`LISTEN_PORTS`."""
    for port in random.sample(LISTEN_PORTS, 500):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {LISTEN_PORTS}")


@pytest.fixture
def engine_settings(engine_sock: str, tmp_path: Path) -> Settings:
    return Settings(
        docker_sock=engine_sock,
        base_image=TEST_IMAGE,
        data_dir=tmp_path / "data",
        docker_timeout=20,
        stop_timeout=2,
        sample_interval=1,
    )


@asynccontextmanager
async def serve_app(
    settings: Settings, **app_kwargs: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """Run the app on a free loopback port in this event loop; yield it and a client for it."""
    settings = replace(settings, host="127.0.0.1", port=free_port())
    app = create_app(settings, **app_kwargs)
    server = await app.create_server(
        host=settings.host, port=settings.port, return_asyncio_server=True, access_log=False
    )
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    # (bytes: a token outside ASCII is sent as its UTF-8)
    token = settings.api_token
    headers = {b"Authorization": f"Bearer {token}".encode()} if token else {}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.port}", headers=headers, timeout=60
        ) as client:
            yield app, client
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()


@asynccontextmanager
async def serve(settings: Settings, **app_kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app on a free loopback port in this event loop; yield a client for it."""
    async with serve_app(settings, **app_kwargs) as (_app, client):
        yield client


@pytest.fixture
async def api(engine_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """dockerlink served against the test engine."""
    async with serve(engine_settings) as client:
        yield client


async def wait_for(
    check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.1
) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def host_ports_free(root: int) -> bool:
    """Nothing else on the host (another engine, a server) holds the block's usual ports."""
    for port in (root + 22, root + 80, root + 443):
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


async def free_port_root(docker: DockerClient, span: int = 5000) -> int:
    """The start of ``span`` host ports that no container's block (by its ``ports`` label) meets.

    Other containers' blocks are assumed to be up to 5000 ports long (the default size).
    """
    taken = []
    for summary in await docker.containers.list(all=True, filters={"label": ["ports"]}):
        label = (summary.get("Labels") or {}).get("ports", "")
        if label.isdigit():
            taken.append(int(label))
    for root in range(20000, 65536 - span, 1000):
        clear = all(other + 5000 <= root or root + span <= other for other in taken)
        if clear and host_ports_free(root):
            return root
    raise AssertionError("no free port block on the test engine")


async def create_body(docker: DockerClient, name: str, **fields: Any) -> dict[str, Any]:
    """A ``PUT /v1/container`` body: a free port block, 0.25 GiB, half a CPU, and ``fields``."""
    return {
        "name": name,
        "host_port_root": await free_port_root(docker, 5000),
        "memory": 0.25,
        "cpulimit": 0.5,
        **fields,
    }


async def create_container(
    client: httpx.AsyncClient, docker: DockerClient, cleanup: list[str], name: str, **fields: Any
) -> str:
    """``PUT /v1/container`` with a free port block; returns the full id (removed after)."""
    for _attempt in range(5):
        response = await client.put("/v1/container", json=await create_body(docker, name, **fields))
        if response.status_code == 409 and "overlap" in response.text:
            continue  # another test took the block meanwhile
        assert response.status_code == 200, response.text
        container_id = str(response.json()["Id"])
        cleanup.append(container_id)
        return container_id
    raise AssertionError("could not find a free port block")


@pytest.fixture
async def make_container(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> Callable[..., Any]:
    """Create a container through ``PUT /v1/container``; returns the full id (removed after)."""

    async def make(**fields: Any) -> str:
        name = fields.pop("name", None) or unique_name("c")
        return await create_container(api, docker, cleanup, name, **fields)

    return make
