"""docker_api without an engine: framing, JSON lines, status mapping, negotiation, timeouts."""

from __future__ import annotations

import asyncio
import inspect
import ssl
import struct
import time
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest

import docker_api
from docker_api import DockerClient, FrameDecoder, StreamType
from docker_api import errors as engine_errors
from docker_api.streams import iter_json_lines


def streamed(body: bytes, size: int = 5) -> AsyncIterator[bytes]:
    """A response body that arrives in small reads, as a socket may deliver it."""

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return chunks()


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


# -- multiplexed frames ---------------------------------------------------------------------------


def decode_all(chunks: list[bytes], *, tty: bool = False) -> list[tuple[StreamType, bytes]]:
    decoder = FrameDecoder(tty=tty)
    out = [(f.stream, f.data) for chunk in chunks for f in decoder.feed(chunk)]
    assert decoder.pending == 0
    return out


def test_frames_split_at_every_byte() -> None:
    raw = frame(1, b"hello ") + frame(2, b"oops") + frame(1, b"world")
    chunks = [raw[i : i + 1] for i in range(len(raw))]
    assert decode_all(chunks) == [
        (StreamType.STDOUT, b"hello "),
        (StreamType.STDERR, b"oops"),
        (StreamType.STDOUT, b"world"),
    ]


def test_several_frames_in_one_read_and_header_split_across_reads() -> None:
    raw = frame(1, b"a" * 10) + frame(2, b"b" * 3) + frame(1, b"c" * 70000)
    cut = len(frame(1, b"a" * 10)) + 3  # inside the second header
    assert decode_all([raw[:cut], raw[cut:]]) == [
        (StreamType.STDOUT, b"a" * 10),
        (StreamType.STDERR, b"b" * 3),
        (StreamType.STDOUT, b"c" * 70000),
    ]


def test_zero_length_frames_are_skipped_and_torn_tail_is_pending() -> None:
    decoder = FrameDecoder()
    frames = list(decoder.feed(frame(1, b"") + frame(2, b"x") + frame(1, b"abc")[:5]))
    assert [(f.stream, f.data) for f in frames] == [(StreamType.STDERR, b"x")]
    assert decoder.pending == 5


def test_tty_stream_has_no_framing() -> None:
    assert decode_all([b"raw\r\n", b"bytes"], tty=True) == [
        (StreamType.STDOUT, b"raw\r\n"),
        (StreamType.STDOUT, b"bytes"),
    ]


def test_unknown_stream_id_keeps_the_bytes() -> None:
    assert decode_all([frame(7, b"kept")]) == [(StreamType.STDOUT, b"kept")]


async def test_json_lines_split_anywhere() -> None:
    body = b'{"a": 1}\n\n{"b": [1, 2]}\nnot json\n[1]\n{"c": "last"}'

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 3):
            yield body[i : i + 3]

    assert [obj async for obj in iter_json_lines(chunks())] == [
        {"a": 1},
        {"b": [1, 2]},
        {"c": "last"},
    ]


# -- a fake engine ------------------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def fake_engine(routes: dict[tuple[str, str], Handler], api: str = "1.41") -> DockerClient:
    """A client whose transport answers ping/version and the given (method, path) routes."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.raw_path.decode().split('?')[0]}")
        if request.url.path == "/_ping":
            return httpx.Response(200, text="OK", headers={"Api-Version": api})
        path = request.url.path
        if path.startswith("/v"):
            path = "/" + path.split("/", 2)[2]
        if path == "/version" and ("GET", "/version") not in routes:
            return httpx.Response(200, json={"Version": "20.10.24", "MinAPIVersion": "1.12"})
        handler = routes.get((request.method, path))
        if handler is None:
            return httpx.Response(404, json={"message": f"page not found: {path}"})
        return handler(request)

    client = DockerClient("/nonexistent.sock", timeout=2, transport=httpx.MockTransport(handle))
    client.seen = seen  # type: ignore[attr-defined]
    return client


async def test_start_and_stop_304_mean_already_in_that_state() -> None:
    docker = fake_engine(
        {
            ("POST", "/containers/web1/start"): lambda r: httpx.Response(304),
            ("POST", "/containers/web2/start"): lambda r: httpx.Response(204),
            ("POST", "/containers/web1/stop"): lambda r: httpx.Response(304),
        }
    )
    assert await docker.containers.start("web1") is False
    assert await docker.containers.start("web2") is True
    assert await docker.containers.stop("web1", t=3) is False


async def test_requests_use_the_negotiated_version_prefix() -> None:
    docker = fake_engine({("GET", "/containers/json"): lambda r: httpx.Response(200, json=[])})
    assert await docker.containers.list() == []
    assert docker.api_version == "1.41"
    assert "GET /v1.41/containers/json" in docker.seen  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("engine_api", "expected"),
    [("1.41", "1.41"), ("1.43", "1.43"), ("1.49", "1.49"), ("1.54", "1.49")],
)
async def test_negotiation_picks_the_highest_common_version(engine_api: str, expected: str) -> None:
    docker = fake_engine({}, api=engine_api)
    assert await docker.negotiate() == expected


async def test_engine_too_old_is_a_clear_error() -> None:
    docker = fake_engine({}, api="1.40")
    with pytest.raises(docker_api.UnsupportedEngineVersion, match=r"older than 1\.41"):
        await docker.negotiate()


async def test_engine_minimum_above_ours_is_a_clear_error() -> None:
    version = {"Version": "99.0", "MinAPIVersion": "1.50"}
    docker = fake_engine({("GET", "/version"): lambda r: httpx.Response(200, json=version)}, "1.60")
    with pytest.raises(docker_api.UnsupportedEngineVersion, match=r"accepts API 1\.50"):
        await docker.negotiate()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, docker_api.BadParameter),
        (404, docker_api.NotFound),
        (409, docker_api.Conflict),
        (500, docker_api.ServerError),
        (502, docker_api.ServerError),
        (503, docker_api.EngineUnavailable),
        (401, docker_api.APIError),
        (304, docker_api.NotModified),
    ],
)
async def test_statuses_become_exception_types(status: int, cls: type[Exception]) -> None:
    docker = fake_engine(
        {("GET", "/containers/x/json"): lambda r: httpx.Response(status, json={"message": "boom"})}
    )
    with pytest.raises(cls) as caught:
        await docker.containers.inspect("x")
    assert type(caught.value) is cls
    assert isinstance(caught.value, docker_api.APIError)
    assert caught.value.status_code == status
    if status != 304:
        assert caught.value.message == "boom"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"message":"No such container: x"}\n', "application/json", "No such container: x"),
        (b"plain words\n", "text/plain", "plain words"),
        (b"", "", "Not Found"),
        (b"{broken", "application/json", "{broken"),
    ],
)
def test_error_message_from_json_text_or_reason(
    body: bytes, content_type: str, expected: str
) -> None:
    error = engine_errors.error_for_status(404, body, content_type, "Not Found")
    assert isinstance(error, docker_api.NotFound)
    assert error.message == expected


async def test_a_raw_tls_error_on_read_is_engine_unreachable() -> None:
    # httpx does not wrap an ssl.SSLError raised by a read (a TLS 1.3 engine refusing our client
    # certificate alerts after the handshake); it must not escape as it is.
    def refuse(request: httpx.Request) -> httpx.Response:
        alert = ssl.SSLError(1, "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate")
        alert.reason = "SSLV3_ALERT_BAD_CERTIFICATE"  # as the ssl module sets it
        raise alert

    docker = DockerClient("/x.sock", timeout=2, transport=httpx.MockTransport(refuse))
    with pytest.raises(docker_api.EngineUnreachable, match=r"TLS with .* refused our client cert"):
        await docker.ping()


@pytest.mark.parametrize("status", [400, 500])
def test_an_ambiguous_id_prefix_is_a_bad_parameter(status: int) -> None:
    # Engine 20.10 answers 500 (errdefs.System) for a prefix that matches several containers.
    body = b'{"message":"Multiple IDs found with provided prefix: f"}'
    error = engine_errors.error_for_status(status, body, "application/json", "")
    assert type(error) is docker_api.BadParameter
    assert error.message == "Multiple IDs found with provided prefix: f"


def test_every_exception_class_is_exported_and_documented() -> None:
    classes = [
        obj
        for obj in vars(engine_errors).values()
        if inspect.isclass(obj) and issubclass(obj, docker_api.DockerError)
    ]
    doc = engine_errors.__doc__ or ""
    for cls in classes:
        assert cls.__name__ in engine_errors.__all__
        assert getattr(docker_api, cls.__name__) is cls
        assert cls.__name__ in doc


async def test_unreachable_socket_is_engine_unreachable(tmp_path: object) -> None:
    async with DockerClient(f"{tmp_path}/missing.sock", timeout=1) as docker:
        with pytest.raises(docker_api.EngineUnreachable, match=r"missing\.sock"):
            await docker.ping()


async def test_slow_engine_is_a_timeout_within_the_call_timeout() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_ping":
            return httpx.Response(200, headers={"Api-Version": "1.41"})
        if request.url.path.endswith("/version"):
            return httpx.Response(200, json={"MinAPIVersion": "1.12"})
        await asyncio.sleep(30)
        return httpx.Response(200, json={})

    docker = DockerClient("/x.sock", timeout=5, transport=httpx.MockTransport(handle))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(docker_api.EngineTimeout):
        await docker.containers.inspect("slow", timeout=0.2)
    assert loop.time() - started < 2


async def test_create_and_update_warnings_are_always_lists() -> None:
    docker = fake_engine(
        {
            ("POST", "/containers/create"): lambda r: httpx.Response(
                201, json={"Id": "abc", "Warnings": None}
            ),
            ("POST", "/containers/abc/update"): lambda r: httpx.Response(
                200, json={"Warnings": None}
            ),
        }
    )
    assert await docker.containers.create({"Image": "x"}, name="n") == {"Id": "abc", "Warnings": []}
    assert await docker.containers.update("abc", {"Memory": 1 << 30}) == []


async def test_path_segments_are_escaped() -> None:
    docker = fake_engine({})
    with pytest.raises(docker_api.NotFound):
        await docker.containers.inspect("a?b/c")
    assert "GET /v1.41/containers/a%3Fb%2Fc/json" in docker.seen  # type: ignore[attr-defined]


async def test_exec_run_collects_frames_and_exit_code() -> None:
    body = frame(1, b"out1 ") + frame(2, b"err1 ") + frame(1, b"out2")
    inspections = iter([{"Running": True, "ExitCode": None}, {"Running": False, "ExitCode": 3}])

    def exec_start(request: httpx.Request) -> httpx.Response:
        assert orjson.loads(request.content) == {"Detach": False, "Tty": False}
        return httpx.Response(200, content=streamed(body))

    docker = fake_engine(
        {
            ("POST", "/containers/c1/exec"): lambda r: httpx.Response(201, json={"Id": "e1"}),
            ("POST", "/exec/e1/start"): exec_start,
            ("GET", "/exec/e1/json"): lambda r: httpx.Response(200, json=next(inspections)),
        }
    )
    result = await docker.execs.run("c1", ["git", "status"], timeout=5, user="admin")
    assert result.exit_code == 3
    assert result.output == b"out1 err1 out2"
    assert result.stdout == b"out1 out2"
    assert result.stderr == b"err1 "


async def test_exec_run_keeps_output_up_to_max_output_bytes_and_counts_the_rest() -> None:
    """Output past ``max_output_bytes`` is read to the end (the exit code still comes) but only
    counted; what is kept is the first bytes, each stream cut out of it in order."""
    frames = [(2, b"e1"), (1, b"o1o1"), (2, b"e2"), (1, b"o2o2o2"), (2, b"e3")]
    body = b"".join(frame(kind, data) for kind, data in frames)
    docker = fake_engine(
        {
            ("POST", "/containers/c1/exec"): lambda r: httpx.Response(201, json={"Id": "e1"}),
            ("POST", "/exec/e1/start"): lambda r: httpx.Response(200, content=streamed(body)),
            ("GET", "/exec/e1/json"): lambda r: httpx.Response(
                200, json={"Running": False, "ExitCode": 0}
            ),
        }
    )
    result = await docker.execs.run("c1", ["git", "log"], timeout=5, max_output_bytes=11)
    assert result.output == b"e1o1o1e2o2o"
    assert result.dropped == 5
    assert result.stdout == b"o1o1o2o"
    assert result.stderr == b"e1e2"
    whole = await docker.execs.run("c1", ["git", "log"], timeout=5)
    assert (whole.output, whole.dropped) == (b"e1o1o1e2o2o2o2e3", 0)
    assert (whole.stdout, whole.stderr) == (b"o1o1o2o2o2", b"e1e2e3")
    with pytest.raises(ValueError, match="max_output_bytes"):
        await docker.execs.run("c1", ["git", "log"], timeout=5, max_output_bytes=-1)


async def test_exec_timeout_carries_partial_output() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/_ping":
            return httpx.Response(200, headers={"Api-Version": "1.41"})
        if path.endswith("/version"):
            return httpx.Response(200, json={"MinAPIVersion": "1.12"})
        if path.endswith("/exec"):
            return httpx.Response(201, json={"Id": "e1"})

        async def slow_body() -> AsyncIterator[bytes]:
            yield frame(1, b"Fetching origin\n")
            yield frame(2, b"more than kept\n")
            await asyncio.sleep(30)

        return httpx.Response(200, content=slow_body())

    docker = DockerClient("/x.sock", timeout=5, transport=httpx.MockTransport(handle))
    with pytest.raises(docker_api.ExecTimeout) as caught:
        await docker.execs.run("c1", ["git", "pull"], timeout=0.3, max_output_bytes=20)
    assert caught.value.output == b"Fetching origin\nmore"
    assert caught.value.dropped == 11


async def test_event_watch_reconnects_and_announces_it() -> None:
    calls = {"events": 0}

    def events(request: httpx.Request) -> httpx.Response:
        calls["events"] += 1
        if calls["events"] == 1:
            return httpx.Response(
                200, content=streamed(b'{"Action":"start","timeNano":1700000000123456789}\n')
            )
        assert request.url.params["since"] == "1700000000.123456789"
        return httpx.Response(200, content=streamed(b'{"Action":"die","time":1700000001}\n'))

    docker = fake_engine({("GET", "/events"): events})
    seen: list[object] = []
    async for item in docker.events.watch(retry_delay_s=0.01):
        seen.append(item)
        if len(seen) == 3:
            break
    assert seen[0] == {"Action": "start", "timeNano": 1700000000123456789}
    assert isinstance(seen[1], docker_api.Reconnected)
    assert seen[2] == {"Action": "die", "time": 1700000001}


async def test_event_watch_reports_a_break_before_waiting_for_the_engine() -> None:
    calls = {"events": 0}

    def events(request: httpx.Request) -> httpx.Response:
        calls["events"] += 1
        if calls["events"] == 1:
            return httpx.Response(200, content=streamed(b'{"Action":"start","time":1}\n'))
        return httpx.Response(200, content=streamed(b'{"Action":"die","time":2}\n'))

    docker = fake_engine({("GET", "/events"): events})
    seen: list[object] = []
    watch = docker.events.watch(retry_delay_s=0.01, on_break=lambda why: seen.append(why))
    async for item in watch:
        seen.append(item)
        if len(seen) == 4:
            break
    await watch.aclose()
    assert seen[0] == {"Action": "start", "time": 1}
    assert seen[1] == "the engine closed the event stream"  # before the engine is asked again
    assert isinstance(seen[2], docker_api.Reconnected)
    assert seen[3] == {"Action": "die", "time": 2}


async def test_a_calls_timeout_covers_the_negotiation_it_waits_for() -> None:
    """An engine that takes connections but does not answer (restarting): every call gives up
    at its own timeout, however many wait for the same negotiation."""

    async def silent(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_ping":
            await asyncio.sleep(3600)
        return httpx.Response(200, json=[])

    client = DockerClient("/x.sock", timeout=1.0, transport=httpx.MockTransport(silent))
    started = time.monotonic()

    async def one() -> float:
        with pytest.raises(engine_errors.EngineTimeout, match=r"within 0\.2 s"):
            await client.containers.list(timeout=0.2)
        return time.monotonic() - started

    took = await asyncio.gather(*(one() for _ in range(3)))
    assert max(took) < 0.8, took
    await client.close()


async def test_a_failed_ping_is_said_as_the_failure_it_is() -> None:
    """A proxy's 502 (or an engine starting up) while negotiating is that error, not an
    engine too old for this client."""

    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="Bad Gateway", headers={"content-type": "text/plain"})

    client = DockerClient("/x.sock", timeout=1.0, transport=httpx.MockTransport(proxy))
    with pytest.raises(engine_errors.ServerError, match="Bad Gateway"):
        await client.containers.list()
    await client.close()
