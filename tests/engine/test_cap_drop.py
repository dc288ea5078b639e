"""``cap_drop`` (default ``NET_RAW``): a container cannot open raw or packet sockets.

The proof is a real attempt from inside, as root in the container, with two busybox applets that
need CAP_NET_RAW: ``arping`` (an AF_PACKET socket) and ``traceroute`` (a raw ICMP socket), both
aimed at the container's gateway. The same attempts from a container made with ``cap_drop`` empty
succeed, so the refusal is the dropped capability and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from docker_api import DockerClient
from dockerlink.settings import Settings
from tests.conftest import serve
from tests.engine._api import create_and_start


async def gateway_of(docker: DockerClient, container_id: str) -> str:
    settings = (await docker.containers.inspect(container_id))["NetworkSettings"]
    gateway = settings.get("Gateway") or next(
        (n["Gateway"] for n in (settings.get("Networks") or {}).values() if n.get("Gateway")), ""
    )
    assert gateway, "the container has no gateway"
    return str(gateway)


async def raw_socket_attempts(docker: DockerClient, container_id: str) -> dict[str, str]:
    """What ``arping`` and ``traceroute`` to the gateway print, with their exit codes."""
    gateway = await gateway_of(docker, container_id)
    results = {}
    for name, cmd in (
        ("arping", ["arping", "-c", "1", "-w", "2", "-I", "eth0", gateway]),
        ("traceroute", ["traceroute", "-n", "-m", "1", "-q", "1", "-w", "1", gateway]),
    ):
        result = await docker.execs.run(container_id, cmd, timeout=20, user="root")
        results[name] = f"exit {result.exit_code}: {result.text().strip()}"
    return results


async def test_new_containers_cannot_open_raw_sockets(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    assert engine_settings.cap_drop == ("NET_RAW",)
    async with serve(engine_settings) as api:
        dropped = await create_and_start(api, docker, cleanup, unique_name("capdrop"))
    async with serve(replace(engine_settings, cap_drop=())) as api:
        kept = await create_and_start(api, docker, cleanup, unique_name("capkeep"))

    assert (await docker.containers.inspect(dropped))["HostConfig"]["CapDrop"] == ["NET_RAW"]
    assert not (await docker.containers.inspect(kept))["HostConfig"]["CapDrop"]

    refused = await raw_socket_attempts(docker, dropped)
    assert refused == {
        "arping": "exit 1: arping: socket: Operation not permitted",
        "traceroute": "exit 1: traceroute: socket: Operation not permitted",
    }
    allowed = await raw_socket_attempts(docker, kept)
    assert allowed["arping"].startswith("exit 0: ARPING "), allowed
    assert "Received 1 response" in allowed["arping"]
    assert allowed["traceroute"].startswith("exit 0: traceroute to "), allowed
