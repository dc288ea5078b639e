"""A remote engine: dockerlink drives a dockerd that listens on loopback TCP with --tlsverify.

The shared test engine is left alone: this module starts a second, private dockerd
(tests/engines.py: its own data root, exec root, pidfile, containerd namespace, no bridge and no
iptables), listening on loopback TCP too, loads the test image into it, and stops it by the pid
in its own pidfile at the end, always. Certificates are made with openssl.
Containers on it have no network (``--bridge none``), so the routes tested here are the ones
that need none: create, list, start, stop, patch, delete.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from docker_api import DockerClient, NotFound
from dockerlink.engine import engine_client
from dockerlink.settings import Settings

from ..certs import PKI, make_pki
from ..conftest import TEST_IMAGE, free_port, serve
from ..engines import SecondEngine, require_second_engine
from ..unit.test_cli import run_cli

GIB = 1 << 30
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class RemoteEngine:
    address: str  # tcp://127.0.0.1:<port>
    unix_sock: str  # the same engine's local socket, for checking what the routes did
    pki: PKI


@pytest.fixture(scope="module")
def remote_engine(engine_sock: str) -> Iterator[RemoteEngine]:
    require_second_engine()
    port = free_port()
    pki_folder = Path(tempfile.mkdtemp(prefix="dltls-pki-", dir="/tmp"))
    pki = make_pki(pki_folder)
    engine = SecondEngine(
        "tls",
        extra_args=[
            "--host", f"tcp://127.0.0.1:{port}",
            "--tlsverify",
            "--tlscacert", str(pki.ca_cert),
            "--tlscert", str(pki.server_cert),
            "--tlskey", str(pki.server_key),
        ],
    )  # fmt: skip
    try:
        engine.start()
        engine.load_image(TEST_IMAGE, engine_sock)
        yield RemoteEngine(f"tcp://127.0.0.1:{port}", engine.sock, pki)
    finally:
        engine.destroy()
        shutil.rmtree(pki_folder, ignore_errors=True)


@pytest.fixture
def remote_settings(remote_engine: RemoteEngine, tmp_path: Path) -> Settings:
    return Settings(
        docker_sock=remote_engine.address,
        docker_cert_path=remote_engine.pki.client_dir,
        base_image=TEST_IMAGE,
        data_dir=tmp_path / "data",
        docker_timeout=20,
        stop_timeout=2,
        sample_interval=1,
    )


async def test_the_container_routes_through_a_tls_engine(
    remote_engine: RemoteEngine,
    remote_settings: Settings,
    docker: DockerClient,
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("tls")
    async with (
        DockerClient(remote_engine.unix_sock, timeout=20) as remote,
        serve(remote_settings) as api,
    ):
        health = await api.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["engine"] == (await remote.version())["Version"]

        created = await api.put(
            "/v1/container",
            json={"name": name, "host_port_root": 30000, "memory": 0.25, "cpulimit": 0.5},
        )
        assert created.status_code == 200, created.text
        container_id = created.json()["Id"]
        try:
            info = await remote.containers.inspect(container_id)
            assert info["Name"] == f"/{name}"
            assert info["Config"]["Labels"]["ports"] == "30000"
            with pytest.raises(NotFound):  # made on the remote engine, not the shared one
                await docker.containers.inspect(container_id)

            listed = await api.get("/v1/container", params={"id": name})
            assert listed.json()["success"][name]["state"] == "created"
            every = await api.get("/v1/container")
            assert container_id in every.json()["success"]

            assert (await api.post("/v1/container/start", params={"id": name})).status_code == 204
            assert (await remote.containers.inspect(name))["State"]["Running"]

            # A hijacked stream (the terminal's exec attach) over TLS too.
            async with engine_client(remote_settings) as tls_client:
                exec_id = await tls_client.execs.create(
                    container_id, ["sh", "-c", "echo over-$((20+22))"], tty=True
                )
                stream = await tls_client.execs.attach(exec_id, tty=True)
                output = b""
                while b"over-42" not in output and (chunk := await stream.read()):
                    output += chunk
                await stream.aclose()
                assert b"over-42" in output

            patched = await api.patch("/v1/container", params={"id": name}, json={"memory": 0.5})
            assert patched.status_code == 200, patched.text
            info = await remote.containers.inspect(name)
            assert info["HostConfig"]["Memory"] == GIB // 2

            assert (await api.post("/v1/container/stop", params={"id": name})).status_code == 204
            assert not (await remote.containers.inspect(name))["State"]["Running"]

            assert (await api.delete("/v1/container", params={"id": name})).status_code == 204
            with pytest.raises(NotFound):
                await remote.containers.inspect(container_id)
        finally:
            with contextlib.suppress(NotFound):
                await remote.containers.remove(container_id, force=True, volumes=True)


async def test_a_wrong_client_certificate_is_refused(
    remote_engine: RemoteEngine, remote_settings: Settings
) -> None:
    rogue = replace(remote_settings, docker_cert_path=remote_engine.pki.rogue_client_dir)
    async with serve(rogue) as api:
        listed = await api.get("/v1/container")
        assert listed.status_code == 503
        # The engine resets the connection, or sends a TLS alert (seen on the first read).
        assert listed.text.startswith(
            (
                f"docker engine unavailable: connection to {remote_engine.address} failed: ",
                f"docker engine unavailable: TLS with {remote_engine.address} failed: ",
            )
        )
        assert "client certificate" in listed.text
        health = await api.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"


def test_dockerlink_check_over_tls(remote_engine: RemoteEngine, tmp_path: Path) -> None:
    env = {"DOCKERLINK_DOCKER_SOCK": remote_engine.address, "DOCKERLINK_DATA_DIR": str(tmp_path)}
    good = run_cli(
        "check",
        cwd=tmp_path,
        env={**env, "DOCKERLINK_DOCKER_CERT_PATH": str(remote_engine.pki.client_dir)},
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"at {remote_engine.address}, API " in good.stdout
    rogue = run_cli(
        "check",
        cwd=tmp_path,
        env={**env, "DOCKERLINK_DOCKER_CERT_PATH": str(remote_engine.pki.rogue_client_dir)},
    )
    assert rogue.returncode == 1
    assert "engine: PROBLEM: docker engine unavailable: " in rogue.stdout
    plain = run_cli("check", cwd=tmp_path, env=env)  # tcp:// without certificates
    assert plain.returncode == 2
    assert plain.stderr.startswith("dockerlink: invalid setting docker_sock: ")
