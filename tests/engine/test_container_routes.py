"""The container routes against the real engine, checked with the engine's own inspect."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from docker_api import DockerClient, NotFound
from dockerlink import __version__

from ..conftest import TEST_IMAGE, free_port_root, wait_for

GIB = 1 << 30

MakeContainer = Callable[..., Any]


async def state_of(docker: DockerClient, ref: str) -> str:
    return str((await docker.containers.inspect(ref))["State"]["Status"])


async def exec_output(docker: DockerClient, ref: str, *cmd: str) -> str:
    result = await docker.execs.run(ref, list(cmd), timeout=20)
    return result.text()


async def test_create_gives_the_container_everything_the_spec_lists(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("create")
    root = await free_port_root(docker, 5000)
    response = await api.put(
        "/v1/container",
        json={
            "name": name,
            "host_port_root": float(root),  # a whole JSON number written as 10000.0 is accepted
            "memory": 0.5,
            "cpulimit": 1.5,
            "ports": ["3000/tcp", "53/udp", "3000/tcp"],
            "image": TEST_IMAGE,
            "commands": ["echo first > /tmp/cmd1", "echo second > /tmp/cmd2"],
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"Id", "Warnings"}
    assert body["Warnings"] == []
    cleanup.append(body["Id"])

    info = await docker.containers.inspect(body["Id"])
    assert info["Name"] == f"/{name}"
    assert info["State"]["Status"] == "created"  # created, not started
    labels = info["Config"]["Labels"]
    assert labels["dockerlink"] == f"v{__version__}"
    assert labels["ports"] == str(root)
    expected_ports = {"22/tcp", "80/tcp", "443/tcp", "3000/tcp", "53/udp"}
    assert set(info["Config"]["ExposedPorts"]) == expected_ports
    bindings = info["HostConfig"]["PortBindings"]
    assert set(bindings) == expected_ports
    for key, binding in bindings.items():
        assert binding == [{"HostIp": "", "HostPort": str(root + int(key.split("/")[0]))}]
    host_config = info["HostConfig"]
    assert host_config["Memory"] == GIB // 2
    assert host_config["CpuQuota"] / host_config["CpuPeriod"] == pytest.approx(1.5)
    assert info["Config"]["Volumes"] == {"/var/www": {}}
    assert info["Config"]["WorkingDir"] == "/var/www/html"
    assert info["Config"]["User"] == "root"
    assert info["Config"]["Image"] == TEST_IMAGE
    # Safe defaults: bounded processes, no privilege gain through setuid, rotated logs.
    assert host_config["PidsLimit"] == 1024
    assert host_config["SecurityOpt"] == ["no-new-privileges:true"]
    assert host_config["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "3", "max-size": "10m"},
    }
    assert info["Config"]["Cmd"] == [
        "sh",
        "-c",
        "sh /var/www/starter.sh && { :; echo first > /tmp/cmd1\n\n}"
        " && { :; echo second > /tmp/cmd2\n\n} && /usr/sbin/sshd -D",
    ]

    # The commands really run at start, and the ports are really published.
    assert (await api.post("/v1/container/start", params={"id": name})).status_code == 204
    started = await docker.containers.inspect(name)
    assert any(m["Destination"] == "/var/www" and m["Type"] == "volume" for m in started["Mounts"])
    published = started["NetworkSettings"]["Ports"]
    assert published["3000/tcp"][0]["HostPort"] == str(root + 3000)
    assert published["53/udp"][0]["HostPort"] == str(root + 53)

    async def commands_ran() -> bool:
        out = await exec_output(docker, name, "cat", "/tmp/cmd1", "/tmp/cmd2")
        return out == "first\nsecond\n"

    await wait_for(commands_ran)


async def test_create_without_commands_drops_the_placeholder(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    container_id = await make_container()
    info = await docker.containers.inspect(container_id)
    assert info["Config"]["Cmd"] == ["sh", "-c", "sh /var/www/starter.sh && /usr/sbin/sshd -D"]
    assert (await api.post("/v1/container/start", params={"id": container_id})).status_code == 204
    await wait_for(lambda: state_of(docker, container_id), timeout=5)
    assert await state_of(docker, container_id) == "running"


async def test_create_errors(
    api: httpx.AsyncClient,
    docker: DockerClient,
    make_container: MakeContainer,
    unique_name: Callable[[str], str],
) -> None:
    existing = await make_container()
    info = await docker.containers.inspect(existing)
    name = info["Name"].lstrip("/")
    root = int(info["Config"]["Labels"]["ports"])
    before = {c["Id"] for c in await docker.containers.list(all=True)}

    base = {"host_port_root": await free_port_root(docker, 5000), "memory": 0.25, "cpulimit": 0.5}
    taken = await api.put("/v1/container", json={**base, "name": name})
    assert taken.status_code == 409
    assert taken.text == f"the name {name} is already in use\n"

    overlap = await api.put(
        "/v1/container", json={**base, "name": unique_name("ov"), "host_port_root": root + 4000}
    )
    assert overlap.status_code == 409
    assert f"/{name}" in overlap.text and "overlap" in overlap.text

    no_image = await api.put(
        "/v1/container", json={**base, "name": unique_name("img"), "image": "no-such-image:1"}
    )
    assert no_image.status_code == 404
    assert no_image.text == "no such image: no-such-image:1\n"
    assert no_image.headers["content-type"] == "text/plain; charset=utf-8"

    ncpu = int((await docker.info())["NCPU"])
    too_many = await api.put(
        "/v1/container", json={**base, "name": unique_name("cpu"), "cpulimit": ncpu + 1}
    )
    assert too_many.status_code == 400
    assert "cpulimit" in too_many.text

    assert {c["Id"] for c in await docker.containers.list(all=True)} == before


async def test_create_without_image_and_without_base_image_is_400(
    engine_settings: Any, docker: DockerClient, unique_name: Callable[[str], str]
) -> None:
    from dataclasses import replace

    from ..conftest import serve

    async with serve(replace(engine_settings, base_image=None)) as api:
        response = await api.put(
            "/v1/container",
            json={
                "name": unique_name("noimg"),
                "host_port_root": await free_port_root(docker, 5000),
                "memory": 0.25,
                "cpulimit": 0.5,
            },
        )
    assert response.status_code == 400
    assert "image" in response.text


async def test_power_cycle_and_wrong_states(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    container_id = await make_container()
    short = container_id[:12]  # a unique id prefix works as an id

    stop = await api.post("/v1/container/stop", params={"id": short})
    assert (stop.status_code, stop.text) == (406, "Already stopped\n")
    restart = await api.post("/v1/container/restart", params={"id": short})
    assert (restart.status_code, restart.text) == (406, "Not running\n")

    assert (await api.post("/v1/container/start", params={"id": short})).status_code == 204
    assert await state_of(docker, container_id) == "running"
    again = await api.post("/v1/container/start", params={"id": short})
    assert (again.status_code, again.text) == (406, "Already running\n")

    started_at = (await docker.containers.inspect(container_id))["State"]["StartedAt"]
    restart = await api.post("/v1/container/restart", params={"id": short, "t": "1"})
    assert restart.status_code == 204
    after = await docker.containers.inspect(container_id)
    assert after["State"]["Status"] == "running"
    assert after["State"]["StartedAt"] != started_at

    stop = await api.post("/v1/container/stop", params={"id": short, "t": "1"})
    assert stop.status_code == 204
    assert await state_of(docker, container_id) == "exited"

    bad_t = await api.post("/v1/container/stop", params={"id": short, "t": "301"})
    assert bad_t.status_code == 400
    assert "t must be" in bad_t.text


async def test_start_refused_by_the_engine_answers_with_its_reason(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    container_id = await make_container()
    root = int((await docker.containers.inspect(container_id))["Config"]["Labels"]["ports"])
    with socket.socket() as squatter:  # something else on the host holds the block's port 80
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("0.0.0.0", root + 80))
        squatter.listen()
        response = await api.post("/v1/container/start", params={"id": container_id})
    assert response.status_code in {409, 500}
    assert str(root + 80) in response.text
    assert response.text.count("\n") == 1
    assert await state_of(docker, container_id) != "running"


async def test_delete(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    container_id = await make_container()
    volume = (await docker.containers.inspect(container_id))["Mounts"][0]["Name"]
    assert (await api.post("/v1/container/start", params={"id": container_id})).status_code == 204

    running = await api.delete("/v1/container", params={"id": container_id})
    assert (running.status_code, running.text) == (
        412,
        "docker needs to be stopped before deleting it\n",
    )
    assert await state_of(docker, container_id) == "running"

    assert (
        await api.post("/v1/container/stop", params={"id": container_id, "t": "0"})
    ).status_code == 204
    deleted = await api.delete("/v1/container", params={"id": container_id})
    assert deleted.status_code == 204
    assert deleted.content == b""
    with pytest.raises(NotFound):
        await docker.containers.inspect(container_id)
    volumes = await docker.get_json("/volumes")
    assert volume not in {v["Name"] for v in volumes["Volumes"] or []}

    gone = await api.delete("/v1/container", params={"id": container_id})
    assert (gone.status_code, gone.text) == (404, f"no such container: {container_id}\n")


async def test_delete_can_keep_the_volume(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    container_id = await make_container()
    volume = (await docker.containers.inspect(container_id))["Mounts"][0]["Name"]
    response = await api.delete(
        "/v1/container", params={"id": container_id, "deletevolume": "false"}
    )
    assert response.status_code == 204
    volumes = await docker.get_json("/volumes")
    assert volume in {v["Name"] for v in volumes["Volumes"] or []}
    await docker.request("DELETE", f"/volumes/{volume}")


async def test_patch_applies_limits_live_both_ways(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    container_id = await make_container(memory=0.25, cpulimit=0.5)
    assert (await api.post("/v1/container/start", params={"id": container_id})).status_code == 204

    up = await api.patch(
        "/v1/container", params={"id": container_id}, json={"memory": 1, "cpulimit": 1.25}
    )
    assert up.status_code == 200, up.text
    assert up.json() == {"Warnings": []}
    host_config = (await docker.containers.inspect(container_id))["HostConfig"]
    assert host_config["Memory"] == GIB
    assert host_config["CpuQuota"] / host_config["CpuPeriod"] == pytest.approx(1.25)

    down = await api.patch("/v1/container", params={"id": container_id}, json={"memory": 0.125})
    assert down.status_code == 200, down.text
    host_config = (await docker.containers.inspect(container_id))["HostConfig"]
    assert host_config["Memory"] == GIB // 8
    assert host_config["CpuQuota"] / host_config["CpuPeriod"] == pytest.approx(1.25)
    # The running container's cgroup really has the new limit.
    limit = await exec_output(
        docker, container_id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    )
    if limit.strip():
        assert int(limit) == GIB // 8

    empty = await api.patch("/v1/container", params={"id": container_id}, json={})
    assert empty.status_code == 400
    listed = (await api.get("/v1/container", params={"id": container_id})).json()
    assert listed["success"][container_id]["memory"] == 0.125
    assert listed["success"][container_id]["cpulimit"] == 1.25


async def test_containers_of_the_original_service_keep_working(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """The Go service wrote the same labels and a 10 ms CPU period; updates keep that period."""
    name = unique_name("orig")
    root = await free_port_root(docker, 5000)
    created = await docker.containers.create(
        {
            "Image": TEST_IMAGE,
            "Cmd": ["sh", "-c", "sh /var/www/starter.sh && /usr/sbin/sshd -D"],
            "Labels": {"dockerlink": "v1.0.0", "ports": str(root)},
            "ExposedPorts": {"22/tcp": {}, "80/tcp": {}, "443/tcp": {}},
            "HostConfig": {"Memory": GIB // 4, "CpuPeriod": 10000, "CpuQuota": 5000},
        },
        name=name,
    )
    cleanup.append(created["Id"])
    assert (await api.post("/v1/container/start", params={"id": name})).status_code == 204
    response = await api.patch(
        "/v1/container", params={"id": name}, json={"cpulimit": 0.75, "memory": 0.5}
    )
    assert response.status_code == 200, response.text
    host_config = (await docker.containers.inspect(name))["HostConfig"]
    assert (host_config["CpuPeriod"], host_config["CpuQuota"]) == (10000, 7500)
    assert host_config["Memory"] == GIB // 2
    listed = (await api.get("/v1/container", params={"id": name})).json()["success"][name]
    assert listed["dockerlink"] == "v1.0.0"
    assert listed["host_port_root"] == root
    assert (await api.post("/v1/container/stop", params={"id": name, "t": "0"})).status_code == 204


async def test_foreign_containers_get_412_whatever_their_state(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    foreign = unique_name("foreign")
    old = unique_name("old")
    for name, labels in ((foreign, {}), (old, {"dockerlink": "1.0"})):
        created = await docker.containers.create(
            {"Image": TEST_IMAGE, "Cmd": ["sleep", "600"], "Labels": labels}, name=name
        )
        cleanup.append(created["Id"])
    await docker.containers.start(foreign)
    message = "this docker has not been created with dockerlink"
    calls = [
        ("POST", "/v1/container/start", None),
        ("POST", "/v1/container/stop", None),
        ("POST", "/v1/container/restart", None),
        ("DELETE", "/v1/container", None),
        ("PATCH", "/v1/container", {"memory": 1}),
    ]
    for method, path, body in calls:
        response = await api.request(method, path, params={"id": foreign}, json=body)
        assert (response.status_code, response.text) == (412, message + "\n"), (method, path)
        response = await api.request(method, path, params={"id": old}, json=body)
        assert (response.status_code, response.text) == (412, message + " or is too old\n")
    assert await state_of(docker, foreign) == "running"
    assert await state_of(docker, old) == "created"
    # Listing shows them, marked as not dockerlink's.
    listed = (await api.get("/v1/container", params={"id": foreign})).json()
    assert listed["success"][foreign]["dockerlink"] == "not_dockerlink"
    assert listed["success"][foreign]["host_port_root"] is None


async def test_unknown_container_is_404_on_every_action(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/v1/container/start"),
        ("POST", "/v1/container/stop"),
        ("POST", "/v1/container/restart"),
        ("DELETE", "/v1/container"),
    ]:
        response = await api.request(method, path, params={"id": "dltest-nothing-here"})
        assert (response.status_code, response.text) == (
            404,
            "no such container: dltest-nothing-here\n",
        )
    patch = await api.patch(
        "/v1/container", params={"id": "dltest-nothing-here"}, json={"memory": 1}
    )
    assert patch.status_code == 404


async def test_listing(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    running_id = await make_container()
    stopped_id = await make_container()
    assert (await api.post("/v1/container/start", params={"id": running_id})).status_code == 204

    everything = (await api.get("/v1/container")).json()
    assert set(everything) == {"error", "success"}
    assert everything["error"] == {}
    assert {running_id, stopped_id} <= set(everything["success"])
    running = everything["success"][running_id]
    assert running["state"] == "running"
    assert isinstance(running["started_at"], int) and "exit_code" not in running
    assert running["name"].startswith("/dltest-")
    assert running["dockerlink"] == f"v{__version__}"
    assert running["ports"] == {"22/tcp": {}, "80/tcp": {}, "443/tcp": {}}
    stopped = everything["success"][stopped_id]
    assert stopped["state"] == "created"
    assert stopped["exit_code"] == 0 and "started_at" not in stopped

    only_running = (await api.get("/v1/container", params={"running": "true"})).json()["success"]
    assert running_id in only_running and stopped_id not in only_running
    not_running = (await api.get("/v1/container/", params={"running": "false"})).json()["success"]
    assert stopped_id in not_running and running_id not in not_running
    # With ids, running is ignored (whatever it holds), as the spec says.
    asked = await api.get("/v1/container", params={"id": stopped_id, "running": "maybe"})
    assert asked.status_code == 200, asked.text
    assert set(asked.json()["success"]) == {stopped_id}

    name = running["name"].lstrip("/")
    by_id = await api.get(
        "/v1/container",
        params=[
            ("id", name),
            ("id", f"/{name}"),  # as the engine writes names: keyed as asked
            ("id", stopped_id[:12]),
            ("id", "dltest-missing"),
            ("id", "/dltest-missing"),
            ("running", "true"),
        ],
    )
    body = by_id.json()
    assert set(body["success"]) == {name, f"/{name}", stopped_id[:12]}  # running ignored
    assert body["success"][f"/{name}"] == body["success"][name]
    assert body["error"] == {
        "dltest-missing": "no such container: dltest-missing",
        "/dltest-missing": "no such container: dltest-missing",
    }


async def test_env_and_health(
    api: httpx.AsyncClient, engine_sock: str, docker: DockerClient
) -> None:
    env = (await api.get("/v1/env")).json()
    assert env == {"docker_sock": engine_sock, "port_area_size": "5000", "base_image": TEST_IMAGE}
    health = await api.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "engine": (await docker.version())["Version"]}


async def test_engine_unreachable_is_503_and_health_degraded(
    engine_settings: Any, tmp_path: Any
) -> None:
    from dataclasses import replace

    from ..conftest import serve

    settings = replace(engine_settings, docker_sock=str(tmp_path / "nothing.sock"))
    async with serve(settings) as api:
        listing = await api.get("/v1/container")
        assert listing.status_code == 503
        assert listing.text.startswith("docker engine unavailable: ")
        health = await api.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
        assert health.json()["engine"] is None


async def test_an_answer_by_id_follows_every_change_of_the_container(
    api: httpx.AsyncClient,
    docker: DockerClient,
    make_container: MakeContainer,
    unique_name: Callable[[str], str],
) -> None:
    """``GET /v1/container?id=X`` asked again gives a JSON text kept from the previous answer
    while the mirror has not changed: every change of the container shows in the next answer,
    whether dockerlink made it or the engine's own API did (an event)."""
    name = unique_name("kept")

    async def answer(ref: str) -> dict[str, Any]:
        response = await api.get("/v1/container", params={"id": ref})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def shows(ref: str, field: str, value: Any) -> bool:
        return bool((await answer(ref))["success"].get(ref, {}).get(field) == value)

    async def unknown(ref: str) -> bool:
        return await answer(ref) == {"error": {ref: f"no such container: {ref}"}, "success": {}}

    assert await unknown(name)
    container_id = await make_container(name=name, memory=0.5)
    await wait_for(lambda: shows(name, "state", "created"))
    await wait_for(lambda: shows(container_id, "memory", 0.5))
    first = await api.get("/v1/container", params={"id": name})
    again = await api.get("/v1/container", params={"id": name})
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]

    patch = await api.patch("/v1/container", params={"id": name}, json={"memory": 0.25})
    assert patch.status_code == 200, patch.text
    await wait_for(lambda: shows(name, "memory", 0.25))
    await wait_for(lambda: shows(container_id, "memory", 0.25))

    assert (await api.post("/v1/container/start", params={"id": name})).status_code == 204
    await wait_for(lambda: shows(name, "state", "running"))
    assert (await api.post("/v1/container/stop", params={"id": name, "t": "1"})).status_code == 204
    await wait_for(lambda: shows(container_id, "state", "exited"))

    # Changes the engine's API makes reach the mirror through its events.
    await docker.containers.start(container_id)
    await wait_for(lambda: shows(container_id, "state", "running"))
    await docker.containers.update(container_id, {"Memory": GIB // 8, "MemorySwap": GIB // 8})
    await wait_for(lambda: shows(name, "memory", 0.125))
    renamed = unique_name("renamed")
    await docker.request("POST", f"/containers/{container_id}/rename", params={"name": renamed})
    await wait_for(lambda: shows(container_id, "name", f"/{renamed}"))
    await wait_for(lambda: shows(renamed, "name", f"/{renamed}"))
    await wait_for(lambda: unknown(name))
    await docker.containers.kill(container_id)
    await wait_for(lambda: shows(renamed, "state", "exited"))

    assert (await api.delete("/v1/container", params={"id": container_id})).status_code == 204
    for ref in (container_id, renamed):
        assert await unknown(ref)
