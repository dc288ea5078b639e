"""``GET /v1/container/logs`` when the engine's stream breaks half-way (a real engine that is
killed mid-answer): the client gets a cut answer, never one that looks complete."""

from __future__ import annotations

import logging
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dockerlink.settings import Settings
from tests.conftest import serve

from .fakes import fake_engine_client

CID = "5" * 64


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


class BrokenBody(httpx.AsyncByteStream):
    """Two frames (the second split across reads), then the connection fails."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield frame(1, b"first line\n")
        second = frame(2, b"second line\n")
        yield second[:5]
        yield second[5:]
        raise httpx.ReadError("connection reset by peer")


def engine(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/containers/json"):
        return httpx.Response(200, json=[])
    if path.endswith(f"/containers/{CID}/json"):
        return httpx.Response(
            200,
            json={
                "Id": CID,
                "Name": "/web1",
                "State": {"Running": True, "Status": "running"},
                "HostConfig": {},
                "Config": {"Tty": False, "Labels": {"dockerlink": "v1.0.0", "ports": "10000"}},
            },
        )
    if path.endswith(f"/containers/{CID}/logs"):
        assert request.url.params["tail"] == "100"
        return httpx.Response(200, stream=BrokenBody())
    return httpx.Response(404, json={"message": "not here"})


async def test_an_engine_failure_mid_answer_cuts_the_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(docker_sock="/fake.sock", data_dir=tmp_path / "data")
    received = b""
    async with (
        serve(settings, docker=fake_engine_client(engine)) as client,
        client.stream("GET", "/v1/container/logs", params={"id": CID}) as response,
    ):
        assert response.status_code == 200
        chunks = response.aiter_raw()
        while len(received) < len(b"first line\nsecond line\n"):
            received += await anext(chunks)
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            await anext(chunks)
    assert received == b"first line\nsecond line\n"  # what came before the failure, unframed
    cut = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith(f"logs of {CID} cut: engine error") for m in cut), cut
