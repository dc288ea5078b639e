"""Every operation docker_api offers, against the real engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

import docker_api
from docker_api import MIN_API_VERSION, DockerClient, StreamType

from ..conftest import TEST_IMAGE

KEEP_ALIVE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]


async def read_to_end(stream: docker_api.HijackedStream) -> bytes:
    """A hijacked stream's output until it ends (within 10 s)."""
    output = b""
    async with asyncio.timeout(10):
        while chunk := await stream.read():
            output += chunk
    return output


async def make(docker: DockerClient, cleanup: list[str], name: str, **config: object) -> str:
    body = {"Image": TEST_IMAGE, "Cmd": KEEP_ALIVE, "Labels": {"dltest": "api"}, **config}
    created = await docker.containers.create(body, name=name)
    cleanup.append(created["Id"])
    assert created["Warnings"] == []
    return str(created["Id"])


async def test_system_calls_and_negotiation(docker: DockerClient) -> None:
    assert await docker.ping() == "1.41"
    assert await docker.negotiate() == "1.41" == MIN_API_VERSION
    version = await docker.version()
    assert version["ApiVersion"] == "1.41"
    assert version["Version"].startswith("20.10")
    info = await docker.info()
    assert info["NCPU"] >= 1
    assert info["CgroupVersion"] in {"1", "2"}


async def test_images_inspect(docker: DockerClient) -> None:
    image = await docker.images.inspect(TEST_IMAGE)
    assert TEST_IMAGE in image["RepoTags"]
    with pytest.raises(docker_api.NotFound):
        await docker.images.inspect("dltest-no-such-image:1")


async def test_container_lifecycle(
    docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    name = unique_name("api")
    container_id = await make(docker, cleanup, name, HostConfig={"Memory": 64 << 20})

    listed = await docker.containers.list(all=True, filters={"name": [f"^/{name}$"]})
    assert [c["Id"] for c in listed] == [container_id]
    assert await docker.containers.list(all=False, filters={"name": [f"^/{name}$"]}) == []
    info = await docker.containers.inspect(name)
    assert info["Id"] == container_id
    assert info["State"]["Status"] == "created"

    assert await docker.containers.start(container_id) is True
    assert await docker.containers.start(container_id) is False  # 304: already running
    assert (await docker.containers.inspect(container_id))["State"]["Running"]

    warnings = await docker.containers.update(
        container_id, {"Memory": 128 << 20, "MemorySwap": 128 << 20}
    )
    assert warnings == []
    assert (await docker.containers.inspect(container_id))["HostConfig"]["Memory"] == 128 << 20

    before = (await docker.containers.inspect(container_id))["State"]["StartedAt"]
    await docker.containers.restart(container_id, t=1)
    after = await docker.containers.inspect(container_id)
    assert after["State"]["Running"]
    assert after["State"]["StartedAt"] != before

    with pytest.raises(docker_api.Conflict):  # running, and not forced
        await docker.containers.remove(container_id)

    assert await docker.containers.stop(container_id, t=5) is True
    assert await docker.containers.stop(container_id, t=5) is False  # 304: already stopped
    with pytest.raises(docker_api.Conflict):  # nothing to kill
        await docker.containers.kill(container_id)

    await docker.containers.remove(container_id, volumes=True)
    with pytest.raises(docker_api.NotFound):
        await docker.containers.inspect(container_id)


async def test_kill_and_wait(
    docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    container_id = await make(docker, cleanup, unique_name("wait"))
    await docker.containers.start(container_id)
    waiting = asyncio.ensure_future(docker.containers.wait(container_id, timeout=30))
    await asyncio.sleep(0)
    await docker.containers.kill(container_id, signal="SIGKILL")
    assert (await waiting)["StatusCode"] == 137
    # After the exit, wait answers at once with the last exit code.
    assert (await docker.containers.wait(container_id, timeout=10))["StatusCode"] == 137


async def test_logs_frames_tty_follow_and_errors(
    docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    script = "echo out; sleep 0.1; echo err >&2; trap 'exit 0' TERM; while :; do sleep 1; done"
    container_id = await make(docker, cleanup, unique_name("logs"), Cmd=["sh", "-c", script])
    await docker.containers.start(container_id)

    async def frames(**options: Any) -> list[tuple[StreamType, bytes]]:
        async with docker.containers.logs(container_id, tty=False, **options) as stream:
            return [(frame.stream, frame.data) async for frame in stream]

    deadline = asyncio.get_running_loop().time() + 10
    while len(found := await frames()) < 2:
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.05)
    assert found == [(StreamType.STDOUT, b"out\n"), (StreamType.STDERR, b"err\n")]
    assert await frames(tail=1) == [(StreamType.STDERR, b"err\n")]
    assert await frames(stderr=False) == [(StreamType.STDOUT, b"out\n")]
    stamped = await frames(timestamps=True, tail=1)
    assert stamped[0][1].endswith(b"Z err\n"), stamped

    # Followed: what is printed next arrives; leaving the context ends it.
    async with docker.containers.logs(container_id, tty=False, follow=True, tail=0) as stream:
        printed = await docker.execs.run(
            container_id, ["sh", "-c", "echo next > /proc/1/fd/1"], timeout=20
        )
        assert printed.exit_code == 0
        async with asyncio.timeout(10):
            frame = await anext(aiter(stream))
        assert (frame.stream, frame.data) == (StreamType.STDOUT, b"next\n")

    with pytest.raises(docker_api.NotFound):
        async with docker.containers.logs("dltest-no-such-container", tty=False):
            pass

    tty_id = await make(
        docker, cleanup, unique_name("logstty"), Cmd=["sh", "-c", "echo tty"], Tty=True
    )
    await docker.containers.start(tty_id)
    await docker.containers.wait(tty_id, timeout=30)
    async with docker.containers.logs(tty_id, tty=True) as stream:
        assert [(f.stream, f.data) async for f in stream] == [(StreamType.STDOUT, b"tty\r\n")]


async def test_stats_one_shot_and_streamed(
    docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    container_id = await make(
        docker, cleanup, unique_name("stats"), HostConfig={"Memory": 64 << 20}
    )
    stopped = await docker.containers.stats(container_id)
    assert stopped["read"].startswith("0001-")  # not running: zero figures, still a 200

    await docker.containers.start(container_id)
    one_shot = await docker.containers.stats(container_id)
    assert one_shot["memory_stats"]["limit"] == 64 << 20
    assert one_shot["cpu_stats"]["cpu_usage"]["total_usage"] > 0

    samples = []
    stream = docker.containers.stats_stream(container_id)
    try:
        async for sample in stream:
            samples.append(sample)
            if len(samples) == 2:
                break
    finally:
        await stream.aclose()
    # From the second streamed sample on, precpu_stats holds the previous one.
    assert samples[1]["precpu_stats"]["cpu_usage"]["total_usage"] > 0


async def test_execs(
    docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    container_id = await make(docker, cleanup, unique_name("exec"))
    with pytest.raises(docker_api.Conflict):  # not running
        await docker.execs.create(container_id, ["true"])
    await docker.containers.start(container_id)

    exec_id = await docker.execs.create(
        container_id, ["sh", "-c", "echo out; echo err >&2; exit 3"], user="admin", workdir="/tmp"
    )
    assert (await docker.execs.inspect(exec_id))["Running"] is False
    frames = [frame async for frame in docker.execs.start(exec_id)]
    assert b"".join(f.data for f in frames if f.stream is StreamType.STDOUT) == b"out\n"
    assert b"".join(f.data for f in frames if f.stream is StreamType.STDERR) == b"err\n"
    inspected = await docker.execs.inspect(exec_id)
    assert (inspected["ExitCode"], inspected["ProcessConfig"]["user"]) == (3, "admin")

    result = await docker.execs.run(
        container_id, ["sh", "-c", "id -un; pwd; echo $GREETING"], user="admin",
        workdir="/var/www", env={"GREETING": "hello"}, timeout=20,
    )  # fmt: skip
    assert (result.exit_code, result.stdout) == (0, b"admin\n/var/www\nhello\n")

    tty_id = await docker.execs.create(container_id, ["sh", "-c", "echo a; echo b >&2"], tty=True)
    tty_output = b"".join([f.data async for f in docker.execs.start(tty_id, tty=True)])
    assert tty_output == b"a\r\nb\r\n"  # a terminal: one stream, \n made \r\n

    with pytest.raises(docker_api.ExecTimeout) as caught:
        await docker.execs.run(container_id, ["sh", "-c", "echo started; sleep 30"], timeout=1)
    assert caught.value.output == b"started\n"


async def test_events_stream_and_watch(
    docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    container_id = await make(docker, cleanup, unique_name("events"))
    filters = {"type": ["container"], "container": [container_id], "event": ["start", "die"]}

    stream = docker.events.stream(filters=filters)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)  # the subscription is open before the start
    await docker.containers.start(container_id)
    event = await asyncio.wait_for(first, timeout=10)
    await stream.aclose()
    assert (event["Action"], event["Actor"]["ID"]) == ("start", container_id)

    # watch() replays from `since`, so the start above is seen again, then the die.
    since = str(event["time"])
    watch = docker.events.watch(filters=filters, since=since)
    seen = [await asyncio.wait_for(anext(watch), timeout=10)]
    await docker.containers.kill(container_id)
    seen.append(await asyncio.wait_for(anext(watch), timeout=10))
    await watch.aclose()
    assert [e["Action"] for e in seen if isinstance(e, dict)] == ["start", "die"]


async def test_engine_errors_become_types(
    docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    with pytest.raises(docker_api.NotFound):
        await docker.containers.inspect("dltest-nothing-here")
    with pytest.raises(docker_api.BadParameter):
        await docker.containers.create({"Image": TEST_IMAGE}, name="-bad name-")
    name = unique_name("dup")
    await make(docker, cleanup, name)
    with pytest.raises(docker_api.Conflict):
        await docker.containers.create({"Image": TEST_IMAGE}, name=name)


async def test_exec_attach_resize_and_half_close(
    docker: DockerClient, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    """The hijacked stream: stdin in, output out, a resize seen by the TTY, EOF on stdin."""
    container = await make(docker, cleanup, unique_name("attach"))
    await docker.containers.start(container)
    # without a TTY: cat echoes stdin in stdout frames, and ends at end of file
    exec_id = await docker.execs.create(container, ["cat"], stdin=True)
    async with await docker.execs.attach(exec_id, tty=False) as stream:
        await stream.write(b"through cat\n")
        await stream.close_stdin()
        decoder = docker_api.FrameDecoder(tty=False)
        frames: list[docker_api.Frame] = []
        async with asyncio.timeout(10):
            while chunk := await stream.read():
                frames += decoder.feed(chunk)
    assert [(f.stream, f.data) for f in frames] == [(StreamType.STDOUT, b"through cat\n")]
    assert (await docker.execs.inspect(exec_id))["ExitCode"] == 0
    # with a TTY: raw bytes, and the size set by resize
    exec_id = await docker.execs.create(container, ["sh"], tty=True, stdin=True)
    async with await docker.execs.attach(exec_id, tty=True) as stream:
        await docker.execs.resize(exec_id, cols=91, rows=27)
        await stream.write(b"stty size; exit\n")
        output = await read_to_end(stream)
    assert b"27 91\r\n" in output
    with pytest.raises(docker_api.NotFound):
        await docker.execs.attach("0" * 64, tty=True)
    with pytest.raises(docker_api.NotFound):
        await docker.execs.resize("0" * 64, cols=80, rows=24)
    with pytest.raises(ValueError, match="at least one column"):
        await docker.execs.resize(exec_id, cols=0, rows=24)


async def test_a_version_the_engine_refuses_is_negotiated_again(
    engine_sock: str, cleanup: list[str], unique_name: Callable[[str], str]
) -> None:
    """An engine replaced by another version between two calls (the pool had no connection
    open, so none broke) refuses the version negotiated with the one before: "client version
    1.49 is too new" here. Each kind of call negotiates again and goes through."""

    async def client_of_a_newer_engine() -> DockerClient:
        client = DockerClient(engine_sock, timeout=30)
        client._api_version = "1.49"  # as negotiated with an engine that spoke 1.49
        return client

    async with await client_of_a_newer_engine() as docker:  # a plain call
        container = await make(docker, cleanup, unique_name("reneg"))
        assert docker.api_version == "1.41"
        await docker.containers.start(container)
    async with await client_of_a_newer_engine() as docker:  # a streamed call
        since = f"{time.time() - 600:.3f}"
        events = [e async for e in docker.events.stream(since=since, until=f"{time.time():.3f}")]
        assert any(e.get("Actor", {}).get("ID") == container for e in events)
        assert docker.api_version == "1.41"
    async with await client_of_a_newer_engine() as docker:  # a hijacked one
        exec_id = await docker.execs.create(container, ["sh"], tty=True, stdin=True)
        docker._api_version = "1.49"
        async with await docker.execs.attach(exec_id, tty=True) as stream:
            await stream.write(b"echo hi-$((6*7)); exit\n")
            output = await read_to_end(stream)
        assert b"hi-42" in output
        assert docker.api_version == "1.41"
    async with DockerClient(engine_sock, timeout=30, api_version="1.49") as docker:
        with pytest.raises(docker_api.BadParameter, match=r"client version 1\.49 is too new"):
            await docker.containers.list()  # a version the caller chose is not changed
