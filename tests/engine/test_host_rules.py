"""Rules that keep a create or a resize from reaching past the container onto the host.

Each refusal is a 400 naming the field, and the engine holds no container by the refused name
afterwards (or the same limits, for a resize).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from docker_api import DockerClient
from dockerlink.units import GIB
from tests.conftest import TEST_IMAGE, create_container, free_port_root


async def refused_create(
    api: httpx.AsyncClient, docker: DockerClient, cleanup: list[str], name: str, **fields: Any
) -> str:
    """``PUT /v1/container`` that must answer 400 and create nothing; the message."""
    cleanup.append(name)  # removed after the test, should the rule ever fail
    body = {
        "name": name,
        "host_port_root": await free_port_root(docker, 5000),
        "memory": 0.25,
        "cpulimit": 0.5,
        **fields,
    }
    answer = await api.put("/v1/container", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.text.count("\n") == 1
    assert await docker.containers.list(all=True, filters={"name": [f"^/{name}$"]}) == []
    return answer.text


async def test_host_port_root_below_min_host_port_is_refused(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    text = await refused_create(api, docker, cleanup, unique_name("low"), host_port_root=1000)
    assert text == "host_port_root must be at least 1024 (min_host_port)\n"


async def test_a_block_holding_dockerlinks_own_port_is_refused(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    own = api.base_url.port
    assert own is not None
    root = min(own - 100, 65536 - 5000)
    text = await refused_create(api, docker, cleanup, unique_name("own"), host_port_root=root)
    assert text == (
        f"host_port_root {root}: its block {root}-{root + 4999} holds dockerlink's own port {own}\n"
    )


async def test_more_than_64_ports_is_refused_and_64_are_published(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    ports = [f"{port}/tcp" for port in range(1000, 1065)]
    text = await refused_create(api, docker, cleanup, unique_name("ports"), ports=ports)
    assert text == "ports has 65 entries, more than 64\n"

    container_id = await create_container(
        api, docker, cleanup, unique_name("ports"), ports=ports[:64]
    )
    bindings = (await docker.containers.inspect(container_id))["HostConfig"]["PortBindings"]
    assert len(bindings) == 64 + 3  # with 22, 80 and 443/tcp


async def test_memory_above_the_engines_total_is_refused_on_create_and_resize(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    total = (await docker.info())["MemTotal"]
    above = total / GIB + 0.5
    text = await refused_create(api, docker, cleanup, unique_name("mem"), memory=above)
    assert text == f"memory {above:g} GiB is more than the engine's {total / GIB:.2f} GiB\n"

    container_id = await create_container(api, docker, cleanup, unique_name("mem"))
    before = (await docker.containers.inspect(container_id))["HostConfig"]
    answer = await api.patch("/v1/container", params={"id": container_id}, json={"memory": above})
    assert answer.status_code == 400, answer.text
    assert answer.text.startswith(f"memory {above:g} GiB is more than the engine's ")
    after = (await docker.containers.inspect(container_id))["HostConfig"]
    assert (after["Memory"], after["MemorySwap"]) == (before["Memory"], before["MemorySwap"])
    # A container that is not there, or not dockerlink's, is said first (404, 412).
    missing = unique_name("none")
    answer = await api.patch("/v1/container", params={"id": missing}, json={"memory": above})
    assert (answer.status_code, answer.text) == (404, f"no such container: {missing}\n")
    foreign = unique_name("foreign")
    cleanup.append(foreign)
    await docker.containers.create({"Image": TEST_IMAGE, "Cmd": ["true"]}, name=foreign)
    answer = await api.patch("/v1/container", params={"id": foreign}, json={"cpulimit": 64})
    assert (answer.status_code, answer.text) == (
        412,
        "this docker has not been created with dockerlink\n",
    )
    # Up to the total is fine.
    answer = await api.patch("/v1/container", params={"id": container_id}, json={"memory": 0.5})
    assert answer.status_code == 200, answer.text
