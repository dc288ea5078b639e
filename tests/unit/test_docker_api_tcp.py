"""docker_api over TCP: addresses, plain text, and TLS against a small local TLS server.

The server is a few lines of asyncio that answer ``/_ping`` and ``/v1.41/version`` like an engine
and require a client certificate signed by the test CA, as ``dockerd --tlsverify`` does. The
real engine over TLS is tested in tests/engine/test_remote_engine.py.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

import docker_api
from docker_api import DockerClient, TLSConfig

from ..certs import PKI, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A keep-alive HTTP/1.1 loop that answers like an engine speaking API 1.41."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            if path == "/_ping":
                body, extra = b"OK", b"Api-Version: 1.41\r\n"
            elif path.endswith("/version"):
                body = orjson.dumps({"Version": "99.0-tls", "ApiVersion": "1.41"})
                body, extra = body, b"Content-Type: application/json\r\n"
            else:
                body, extra = b'{"message":"page not found"}', b""
            status = b"200 OK" if body != b'{"message":"page not found"}' else b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\n" + extra
                + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def tls_engine(pki: PKI) -> AsyncIterator[int]:
    """A fake engine on 127.0.0.1 with TLS that requires a client certificate; yields its port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(pki.server_cert, pki.server_key)
    server = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port


async def test_tls_with_the_right_client_certificate_negotiates(tls_engine: int, pki: PKI) -> None:
    tls = TLSConfig.from_cert_path(pki.client_dir)
    async with DockerClient(f"tcp://127.0.0.1:{tls_engine}", tls=tls, timeout=5) as docker:
        version = await docker.version()
        assert version["Version"] == "99.0-tls"
        assert docker.api_version == "1.41"
        assert docker.address == f"tcp://127.0.0.1:{tls_engine}"


async def test_a_client_certificate_from_another_ca_is_refused_clearly(
    tls_engine: int, pki: PKI
) -> None:
    tls = TLSConfig.from_cert_path(pki.rogue_client_dir)
    async with DockerClient(f"tcp://127.0.0.1:{tls_engine}", tls=tls, timeout=5) as docker:
        with pytest.raises(docker_api.EngineUnreachable) as caught:
            await docker.ping()
    message = caught.value.message
    assert f"tcp://127.0.0.1:{tls_engine} failed: " in message
    assert "refused our client certificate" in message


async def test_an_engine_certificate_from_another_ca_does_not_verify(
    tls_engine: int, pki: PKI
) -> None:
    rogue_ca = pki.root / "rogue-ca.pem"
    tls = TLSConfig(rogue_ca, pki.client_dir / "cert.pem", pki.client_dir / "key.pem")
    async with DockerClient(f"tcp://127.0.0.1:{tls_engine}", tls=tls, timeout=5) as docker:
        with pytest.raises(docker_api.EngineUnreachable, match="certificate did not verify"):
            await docker.ping()


async def test_plain_tcp_to_a_closed_port_is_unreachable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        async with DockerClient(f"tcp://127.0.0.1:{port}", timeout=5) as docker:
            with pytest.raises(
                docker_api.EngineUnreachable, match=rf"cannot connect to tcp://127\.0\.0\.1:{port}"
            ):
                await docker.ping()


@pytest.mark.parametrize(
    ("address", "tls", "expected"),
    [
        ("tcp://10.0.0.5", False, "tcp://10.0.0.5:2375"),
        ("tcp://10.0.0.5", True, "tcp://10.0.0.5:2376"),
        ("tcp://docker.example:4243", True, "tcp://docker.example:4243"),
        ("tcp://[::1]:2376/", True, "tcp://[::1]:2376"),
        ("unix:///run/docker.sock", False, "/run/docker.sock"),
        ("/run/docker.sock", False, "/run/docker.sock"),
    ],
)
async def test_addresses_and_default_ports(
    address: str, tls: bool, expected: str, pki: PKI
) -> None:
    config = TLSConfig.from_cert_path(pki.client_dir) if tls else None
    async with DockerClient(address, tls=config) as docker:
        assert docker.address == expected


@pytest.mark.parametrize("address", ["tcp://", "tcp://host:port", "tcp://h:70000", "tcp://h/x"])
def test_malformed_tcp_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="tcp://"):
        DockerClient(address)


def test_tls_is_for_tcp_only(pki: PKI) -> None:
    with pytest.raises(ValueError, match="tcp"):
        DockerClient("/run/docker.sock", tls=TLSConfig.from_cert_path(pki.client_dir))


def test_unloadable_certificates_name_the_file(pki: PKI, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"CA certificate .*missing\.pem"):
        TLSConfig(tmp_path / "missing.pem", tmp_path / "c", tmp_path / "k").ssl_context()
    mismatched = TLSConfig(pki.ca_cert, pki.client_dir / "cert.pem", pki.server_key)
    with pytest.raises(ValueError, match=r"client certificate .*cert\.pem"):
        mismatched.ssl_context()
