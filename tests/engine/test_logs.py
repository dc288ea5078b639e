"""``GET /v1/container/logs`` against the real engine: tail, follow, since, timestamps, TTY and
multiplexed output, stopped containers, bad parameters, and memory under a slow reader."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from docker_api import DockerClient
from dockerlink import __version__
from dockerlink.routes import logs as logs_route
from dockerlink.settings import Settings

from ..conftest import TEST_IMAGE, create_container, serve, serve_app, wait_for
from ..dockerlink_process import DockerlinkProcess
from ..summary import report

MakeContainer = Callable[..., Any]
LOGS = "/v1/container/logs"
#: The engine's timestamp prefix: RFC 3339 with nanoseconds, in UTC.
STAMPED = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)")


async def running(make_container: MakeContainer, api: httpx.AsyncClient, **fields: Any) -> str:
    container_id = str(await make_container(**fields))
    started = await api.post("/v1/container/start", params={"id": container_id})
    assert started.status_code == 204, started.text
    return container_id


async def exited(docker: DockerClient, container_id: str) -> None:
    async def done() -> bool:
        info = await docker.containers.inspect(container_id)
        return bool(info["State"]["Status"] == "exited")

    await wait_for(done, timeout=30)


async def print_in(docker: DockerClient, container_id: str, text: str, fd: int = 1) -> None:
    """Write a line to the container's own stdout (or stderr), as its main process would."""
    result = await docker.execs.run(
        container_id, ["sh", "-c", f"echo {text} > /proc/1/fd/{fd}"], timeout=20
    )
    assert result.exit_code == 0, result.text()


async def read_until(lines: AsyncIterator[str], wanted: str, within_s: float) -> list[str]:
    """Lines read from a streamed answer until ``wanted`` arrives; fails after ``within_s``."""
    seen: list[str] = []
    async with asyncio.timeout(within_s):
        async for line in lines:
            seen.append(line)
            if line == wanted:
                return seen
    raise AssertionError(f"the answer ended before {wanted!r}: {seen[-5:]}")


async def test_tail_gives_exactly_the_last_lines_of_100000(
    api: httpx.AsyncClient, make_container: MakeContainer
) -> None:
    container_id = await running(make_container, api, commands=["seq 1 100000"])

    async def printed_all() -> bool:
        response = await api.get(LOGS, params={"id": container_id, "tail": "1"})
        return response.text == "100000\n"

    await wait_for(printed_all, timeout=30)
    response = await api.get(LOGS, params={"id": container_id, "tail": "10"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "".join(f"{n}\n" for n in range(99991, 100001))
    default = await api.get(LOGS, params={"id": container_id})
    assert default.text == "".join(f"{n}\n" for n in range(99901, 100001))  # 100 by default
    most = await api.get(LOGS, params={"id": container_id, "tail": "10000"})
    assert most.text == "".join(f"{n}\n" for n in range(90001, 100001))
    none = await api.get(LOGS, params={"id": container_id, "tail": "0"})
    assert (none.status_code, none.text) == (200, "")


async def test_follow_streams_what_is_printed_after_the_request_until_the_container_stops(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    container_id = await running(make_container, api, commands=["echo before"])

    async def printed_before() -> bool:
        return (await api.get(LOGS, params={"id": container_id})).text == "before\n"

    await wait_for(printed_before, timeout=10)
    params = {"id": container_id, "follow": "true", "tail": "0"}  # only what comes next
    async with api.stream("GET", LOGS, params=params, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        lines = response.aiter_lines()
        for fd in (1, 2, 1):  # stdout, stderr, stdout again
            fresh = f"fresh-{uuid.uuid4().hex[:8]}"
            await print_in(docker, container_id, fresh, fd)
            # Printed: the line reaches the client within a second.
            assert await read_until(lines, fresh, within_s=1.0) == [fresh]

        stopped = await api.post("/v1/container/stop", params={"id": container_id, "t": "0"})
        assert stopped.status_code == 204
        # The container stopped: the answer ends (the engine ends its stream).
        async with asyncio.timeout(10):
            rest = [line async for line in lines]
        assert rest == []


async def test_a_quiet_followed_log_outlives_the_response_timeout(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sanic ends an answer that writes nothing for RESPONSE_TIMEOUT; a follow must not end."""
    monkeypatch.setattr(logs_route, "KEEP_OPEN_INTERVAL_S", 0.1)
    async with serve_app(engine_settings) as (app, api):
        app.config.RESPONSE_TIMEOUT = 2  # read by each new connection
        container_id = await create_container(api, docker, cleanup, unique_name("quiet"))
        started = await api.post("/v1/container/start", params={"id": container_id})
        assert started.status_code == 204, started.text
        params = {"id": container_id, "follow": "true", "tail": "0"}
        async with (
            httpx.AsyncClient(base_url=str(api.base_url), timeout=10) as client,
            client.stream("GET", LOGS, params=params) as response,
        ):
            assert response.status_code == 200
            await asyncio.sleep(3.5)  # quiet for longer than the response timeout
            await print_in(docker, container_id, "still-here")
            # Still open: the line arrives (how fast is test_follow_streams_...'s concern).
            lines = await read_until(response.aiter_lines(), "still-here", within_s=10.0)
            assert lines == ["still-here"]


class LogStreamWatch(httpx.AsyncBaseTransport):
    """The engine transport, counting the log streams it opened and the ones closed since."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.opened = 0
        self.closed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not request.url.path.endswith("/logs"):
            return response
        self.opened += 1
        watch = self

        class Stream(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in response.stream:  # type: ignore[union-attr]
                    yield chunk

            async def aclose(self) -> None:
                watch.closed += 1
                await response.aclose()

        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=Stream(),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_client_that_leaves_a_followed_log_closes_the_engine_connection(
    engine_settings: Settings,
    engine_sock: str,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    watch = LogStreamWatch(httpx.AsyncHTTPTransport(uds=engine_sock))
    async with (
        DockerClient(engine_sock, timeout=20, transport=watch) as watched,
        serve(engine_settings, docker=watched) as api,
    ):
        container_id = await create_container(api, docker, cleanup, unique_name("leave"))
        started = await api.post("/v1/container/start", params={"id": container_id})
        assert started.status_code == 204, started.text
        params = {"id": container_id, "follow": "true"}
        async with (
            httpx.AsyncClient(base_url=str(api.base_url), timeout=10) as client,
            client.stream("GET", LOGS, params=params) as response,
        ):
            assert response.status_code == 200
            assert (watch.opened, watch.closed) == (1, 0)  # following: the stream is open
        # The client went away while the container prints nothing: the engine stream closes.
        await wait_for(lambda: watch.closed == 1, timeout=5, interval=0.05)


async def test_logs_of_a_stopped_container_are_served_and_an_empty_log_is_empty(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    container_id = await running(make_container, api, commands=["echo said-before-exit", "exit 0"])
    await exited(docker, container_id)
    response = await api.get(LOGS, params={"id": container_id})
    assert (response.status_code, response.text) == (200, "said-before-exit\n")
    # Following a stopped container gives what it printed, then ends.
    followed = await api.get(LOGS, params={"id": container_id, "follow": "true"}, timeout=10)
    assert (followed.status_code, followed.text) == (200, "said-before-exit\n")

    never_started = await make_container()
    empty = await api.get(LOGS, params={"id": never_started})
    assert (empty.status_code, empty.text) == (200, "")
    assert empty.headers["content-type"] == "text/plain; charset=utf-8"


async def test_stdout_and_stderr_come_interleaved_in_order_without_frame_headers(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    # Paced, so that the engine reads each line before the next is written on the other pipe.
    loop = "for i in 1 2 3 4 5 6; do echo out$i; sleep 0.1; echo err$i >&2; sleep 0.1; done"
    container_id = await running(make_container, api, commands=[loop, "exit 0"])
    await exited(docker, container_id)
    response = await api.get(LOGS, params={"id": container_id})
    expected = "".join(f"out{i}\nerr{i}\n" for i in range(1, 7))
    assert response.text == expected  # no 8-byte frame headers, order kept


async def test_a_tty_containers_raw_output_is_served(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """A TTY container's log has no frames (dockerlink creates none, but may be handed one)."""
    created = await docker.containers.create(
        {
            "Image": TEST_IMAGE,
            "Cmd": ["sh", "-c", "echo tty-out; echo tty-err >&2"],
            "Tty": True,
            "Labels": {"dockerlink": f"v{__version__}"},
        },
        name=unique_name("tty"),
    )
    cleanup.append(created["Id"])
    await docker.containers.start(created["Id"])
    await exited(docker, created["Id"])
    response = await api.get(LOGS, params={"id": created["Id"]})
    assert response.status_code == 200
    assert response.text == "tty-out\r\ntty-err\r\n"  # the terminal's line endings, no framing


async def test_timestamps_prefix_each_line_and_since_keeps_the_later_ones(
    api: httpx.AsyncClient, docker: DockerClient, make_container: MakeContainer
) -> None:
    container_id = await running(make_container, api)
    await print_in(docker, container_id, "first")
    await print_in(docker, container_id, "second", fd=2)

    async def stamped() -> list[tuple[str, str]] | None:
        """Both lines, each split into its time and its text (None until both are logged)."""
        response = await api.get(LOGS, params={"id": container_id, "timestamps": "true"})
        matches = [STAMPED.fullmatch(line) for line in response.text.splitlines()]
        assert all(matches), response.text
        found = [(m.group(1), m.group(2)) for m in matches if m]
        return found if len(found) == 2 else None

    lines = await wait_for(stamped, timeout=10)
    assert [text for _, text in lines] == ["first", "second"]
    first_s, second_s = (unix_seconds(stamp) for stamp, _ in lines)
    assert first_s < second_s
    between = f"{(first_s + second_s) / 2:.6f}"
    later = await api.get(LOGS, params={"id": container_id, "since": between})
    assert later.text == "second\n"
    everything = await api.get(LOGS, params={"id": container_id, "since": "0"})
    assert everything.text == "first\nsecond\n"


def unix_seconds(stamp: str) -> float:
    """``2026-11-30T23:59:59.123456789Z`` as unix seconds (to the microsecond)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return moment.timestamp() + float(f"0.{fraction or '0'}")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tail": "-1"}, "tail must be"),
        ({"tail": "10001"}, "tail must be"),
        ({"tail": "ten"}, "tail must be"),
        ({"tail": ""}, "tail must be"),
        ({"tail": "9" * 5000}, "tail must be"),
        ({"since": "yesterday"}, "since must be"),
        ({"since": "-5"}, "since must be"),
        ({"follow": "maybe"}, "follow must be true or false"),
        ({"timestamps": ""}, "timestamps must be true or false"),
    ],
)
async def test_bad_parameters_are_one_line_400s(
    api: httpx.AsyncClient, make_container: MakeContainer, params: dict[str, str], message: str
) -> None:
    container_id = await make_container()
    response = await api.get(LOGS, params={"id": container_id, **params})
    assert response.status_code == 400, response.text
    assert response.text.startswith(message) and response.text.count("\n") == 1


async def test_unknown_and_foreign_containers_and_a_missing_id(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    missing = await api.get(LOGS, params={"id": "dltest-no-such-container"})
    assert (missing.status_code, missing.text) == (
        404,
        "no such container: dltest-no-such-container\n",
    )
    assert (await api.get(LOGS)).status_code == 400
    foreign = await docker.containers.create(
        {"Image": TEST_IMAGE, "Cmd": ["echo", "not ours"]}, name=unique_name("foreign")
    )
    cleanup.append(foreign["Id"])
    refused = await api.get(LOGS, params={"id": foreign["Id"]})
    assert (refused.status_code, refused.text) == (
        412,
        "this docker has not been created with dockerlink\n",
    )


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


#: 10,000 lines of 8187 bytes: a 78 MiB answer for tail=10000.
BIG_LINES = 10_000
BIG_LINE = (
    'awk \'BEGIN { pad = sprintf("%8180s", ""); '
    'for (i = 1; i <= 10000; i++) printf "%05d %s\\n", i, pad }\''
)
#: What dockerlink may grow by while it serves that answer to a reader that stalls.
MEMORY_BOUND_KIB = 24 * 1024


async def test_a_slow_reader_does_not_grow_dockerlinks_memory(
    engine_sock: str,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    pytestconfig: pytest.Config,
) -> None:
    server = DockerlinkProcess(
        tmp_path,
        {
            "docker_sock": engine_sock,
            "base_image": TEST_IMAGE,
            "data_dir": str(tmp_path / "data"),
            "sample_interval": "3600",
            "container_log_max_size": "200m",
        },
    )
    server.start()
    try:
        await server.until_healthy()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            container_id = await create_container(
                client, docker, cleanup, unique_name("big"), commands=[BIG_LINE, "exit 0"]
            )
            started = await client.post("/v1/container/start", params={"id": container_id})
            assert started.status_code == 204, started.text
            await exited(docker, container_id)
            warm = await client.get(LOGS, params={"id": container_id, "tail": "10"})
            assert warm.status_code == 200 and warm.text.count("\n") == 10
            server.reset_peak_rss()
            before_kib = server.peak_rss_kib()

            params = {"id": container_id, "tail": str(BIG_LINES)}
            async with client.stream("GET", LOGS, params=params) as response:
                assert response.status_code == 200
                chunks = response.aiter_raw()
                first = await anext(chunks)
                received, newlines = len(first), first.count(b"\n")
                # The reader stalls. Wait until dockerlink's memory stops moving: with
                # backpressure at once, without it once the whole log has been read into it.
                samples: list[int] = []

                def steady() -> bool:
                    samples.append(vm_kib(server.pid, "VmRSS"))
                    recent = samples[-10:]
                    return len(recent) == 10 and max(recent) - min(recent) < 512

                await wait_for(steady, timeout=30, interval=0.1)
                stalled_kib = server.peak_rss_kib()
                # Then it reads everything: the answer is whole.
                async for chunk in chunks:
                    received += len(chunk)
                    newlines += chunk.count(b"\n")
            after_kib = server.peak_rss_kib()
        assert (received, newlines) == (BIG_LINES * 8187, BIG_LINES)  # "00001 <8180 spaces>\n"
        grown_kib = after_kib - before_kib
        report(
            pytestconfig,
            f"logs: {received / 2**20:.0f} MiB to a stalled reader: dockerlink peak RSS "
            f"{before_kib / 1024:.1f} -> {stalled_kib / 1024:.1f} (stalled) -> "
            f"{after_kib / 1024:.1f} MiB (after)",
        )
        assert stalled_kib - before_kib < MEMORY_BOUND_KIB, (before_kib, stalled_kib)
        assert grown_kib < MEMORY_BOUND_KIB, (before_kib, after_kib)
    finally:
        server.stop()
