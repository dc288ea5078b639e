"""``scripts/bench terminal``: the terminal WebSocket against a direct TTY exec attach.

On the private test engine, one running container and one ``dockerlink serve``:

- keystroke-to-echo round trip: one byte typed into an interactive ``sh`` and its echo read
  back, through ``GET /v1/container/terminal`` (WebSocket) on dockerlink's unix socket and on
  its loopback TCP port, through ``docker exec -it`` itself (the CLI in a pseudo-terminal), and
  through a TTY exec attached directly on the engine's socket (``POST /exec/{id}/start``
  upgraded to a raw stream: what the CLI does, without the CLI), each in turn in the same run,
  the order turning at each round, each keystroke after a pause (``--pause-ms``, default 3:
  typed keys come tens of milliseconds apart, so each starts from a machine at rest, not one
  warmed up by the path timed just before); p50 and p99 on each of dockerlink's listeners
  (goal: at most 1.2 x ``docker exec -it``); and the same byte through a bare Sanic WebSocket
  echo, for scale.
  dockerlink's side is timed with :class:`LeanWebSocket`, a client that does per message only
  what the protocol asks (so that both sides' clients do the same work but the framing), and
  again with the websockets library's client, for comparison;
  timing starts once ``dockerlink serve`` is done with its start-up work (under 5 % of a CPU
  for a second, at most 60 s), so that its figures are a session's, not the start-up's;
- memory per open idle session: dockerlink's resident memory (``VmRSS``) after ``--sessions``
  more sessions are open and idle, minus before, divided by their number (goal: < 200 KiB).

Removes the container it made (also one an interrupted run left); exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import pty
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from bench_peers import (
    REPO,
    Results,
    Row,
    Server,
    create_containers,
    log,
    machine,
    percentile,
    remove_bench_containers,
)
from bench_stats import free_port
from websockets.asyncio.client import ClientConnection, connect

from docker_api import DockerClient, DockerError, HijackedStream

KIB = 1024
#: A bare Sanic WebSocket echo, run as its own process: what the WebSocket hop alone costs.
ECHO_SERVER = """
import sys
from sanic import Sanic
app = Sanic("echo")
app.config.MOTD = False
@app.websocket("/echo")
async def echo(request, ws):
    while True:
        await ws.send(await ws.recv())
app.run(host="127.0.0.1", port=int(sys.argv[1]), single_process=True, access_log=False)
"""
SHELL = ["/bin/sh", "-i"]
#: ^U: clear the line typed so far (so that echoes never wrap).
KILL_LINE = b"\x15"


class LeanWebSocket:
    """A WebSocket client doing per message only what RFC 6455 asks of a client: a masked
    frame out, a frame header read in (and a pong for a ping); its I/O is the direct attach's
    client's (an asyncio Protocol: a write, a read woken by the data). The websockets library's
    client adds its own locks, queues and task wake-ups to every message, which would be
    counted against dockerlink, not the direct attach."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, url: str, subprotocol: str | None = None, *, unix: str | None = None
    ) -> LeanWebSocket:
        """A WebSocket to ``url``, through the unix socket at ``unix`` when given."""
        parts = urlsplit(url)
        if unix is not None:
            reader, writer = await asyncio.open_unix_connection(unix)
        else:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
        if subprotocol:
            head += f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
        writer.write((head + "\r\n").encode())
        answer = await reader.readuntil(b"\r\n\r\n")
        if not answer.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"no WebSocket upgrade: {answer[:200]!r}")
        return cls(reader, writer)

    def _frame(self, opcode: int, data: bytes) -> bytes:
        mask = os.urandom(4)
        size = len(data)
        if size < 126:
            head = bytes([0x80 | opcode, 0x80 | size])
        elif size < 65536:
            head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
        else:
            head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return head + mask + masked

    async def send(self, data: bytes) -> None:
        self.writer.write(self._frame(0x2, data))
        await self.writer.drain()

    async def recv(self) -> bytes:
        """The next data frame's payload (pings answered on the way; a close raises)."""
        while True:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(await self.reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(size)
            opcode = first & 0x0F
            if opcode in (0x0, 0x1, 0x2):
                return payload
            if opcode == 0x8:
                raise RuntimeError(f"the server closed the socket: {payload[2:]!r}")
            if opcode == 0x9:
                self.writer.write(self._frame(0xA, payload))

    async def close(self) -> None:
        self.writer.write(self._frame(0x8, (1000).to_bytes(2, "big")))
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, RuntimeError):
            async with asyncio.timeout(5):
                while True:
                    await self.recv()
        self.writer.close()


async def lean_read_until(ws: LeanWebSocket, wanted: bytes) -> None:
    seen = b""
    while wanted not in seen:
        seen += await ws.recv()


async def drain_lean(ws: LeanWebSocket) -> None:
    while True:
        try:
            await asyncio.wait_for(ws.recv(), 0.02)
        except TimeoutError:
            return


async def ws_read_until(ws: ClientConnection, wanted: bytes) -> None:
    seen = b""
    while wanted not in seen:
        message = await ws.recv()
        seen += message if isinstance(message, bytes) else message.encode()


async def raw_read_until(stream: HijackedStream, wanted: bytes) -> None:
    seen = b""
    while wanted not in seen:
        chunk = await stream.read()
        if not chunk:
            raise RuntimeError("the direct exec ended")
        seen += chunk


class DockerCli:
    """``docker exec -it <container> sh`` run by the docker CLI in a pseudo-terminal."""

    def __init__(self, sock: str, container: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the CLI, its terminal the pty's other side
            os.execvp(  # noqa: S606 - an argv, no shell
                "docker",
                ["docker", "-H", f"unix://{sock}", "exec", "-it", "-u", "admin", container, *SHELL],
            )

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_until(self, wanted: bytes, timeout_s: float = 10) -> None:
        seen = b""
        deadline = time.monotonic() + timeout_s
        while wanted not in seen:
            ready, _, _ = select.select([self.fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise RuntimeError(f"docker exec -it did not print {wanted!r}: {seen[-200:]!r}")
            seen += os.read(self.fd, 65536)

    def drain(self) -> None:
        while select.select([self.fd], [], [], 0.02)[0]:
            os.read(self.fd, 65536)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.fd, KILL_LINE + b"exit\n")
        with contextlib.suppress(ChildProcessError):
            deadline = time.monotonic() + 10
            while os.waitpid(self.pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                time.sleep(0.05)
            if time.monotonic() >= deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        os.close(self.fd)


#: The pause before each timed keystroke (``--pause-ms``): each path starts from a machine at
#: rest, as a typed key does (keys come tens of milliseconds apart), not warmed up by the path
#: timed just before it.
PAUSE_S = 0.003


async def round_trips(
    lean: LeanWebSocket,
    lean_tcp: LeanWebSocket,
    ws: ClientConnection,
    stream: HijackedStream,
    cli: DockerCli,
    keystrokes: int,
    pause_s: float = PAUSE_S,
) -> dict[str, list[float]]:
    """A keystroke through each path in turn: dockerlink with the lean client on the unix
    socket and on the TCP port, with the websockets library's client on the TCP
    port, straight to the engine, through the docker CLI. The order turns by one at each
    round, so that each path comes first (after the pause) as often as the others. (The CLI's
    reads block this loop briefly: nothing else runs meanwhile.)"""

    async def through_lean(client: LeanWebSocket) -> None:
        await client.send(b"x")
        await lean_read_until(client, b"x")

    async def through_library() -> None:
        await ws.send(b"x")
        await ws_read_until(ws, b"x")

    async def direct() -> None:
        await stream.write(b"x")
        await raw_read_until(stream, b"x")

    async def through_cli() -> None:
        cli.write(b"x")
        cli.read_until(b"x")

    paths: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("unix", lambda: through_lean(lean)),
        ("tcp", lambda: through_lean(lean_tcp)),
        ("library", through_library),
        ("direct", direct),
        ("cli", through_cli),
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in paths}
    for n in range(keystrokes):
        if n % 40 == 0:
            await lean.send(KILL_LINE)
            await lean_tcp.send(KILL_LINE)
            await ws.send(KILL_LINE)
            await stream.write(KILL_LINE)
            cli.write(KILL_LINE)
            await asyncio.sleep(0.05)
            await drain_lean(lean)
            await drain_lean(lean_tcp)
            await drain_ws(ws)
            await drain_raw(stream)
            cli.drain()
        turn = n % len(paths)
        for name, keystroke in paths[turn:] + paths[:turn]:
            await asyncio.sleep(pause_s)
            started = time.perf_counter()
            await keystroke()
            times[name].append(time.perf_counter() - started)
    return times


async def drain_ws(ws: ClientConnection) -> None:
    while True:
        try:
            await asyncio.wait_for(ws.recv(), 0.02)
        except TimeoutError:
            return


async def drain_raw(stream: HijackedStream) -> None:
    while True:
        try:
            await asyncio.wait_for(stream.read(), 0.02)
        except TimeoutError:
            return


async def echo_round_trips(workdir: Path, count: int) -> tuple[list[float], list[float]]:
    """One byte through a bare Sanic WebSocket echo and back, ``count`` times with each client
    (the lean one, the websockets library's), alternately."""
    script = workdir / "echo_server.py"
    script.write_text(ECHO_SERVER)
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ws = await connect(f"ws://127.0.0.1:{port}/echo", compression=None)
                break
            except OSError:
                if time.monotonic() > deadline or server.returncode is not None:
                    raise RuntimeError("the echo server did not start") from None
                await asyncio.sleep(0.2)
        lean = await LeanWebSocket.connect(f"ws://127.0.0.1:{port}/echo")
        lean_times: list[float] = []
        library_times: list[float] = []
        async with ws:
            for _ in range(count):
                started = time.perf_counter()
                await lean.send(b"x")
                await lean.recv()
                lean_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                await ws.send(b"x")
                await ws.recv()
                library_times.append(time.perf_counter() - started)
        await lean.close()
        return lean_times, library_times
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)


def cpu_ticks(pid: int) -> int:
    """The process's user plus system time, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def settle(pid: int, timeout_s: float = 60) -> float:
    """Wait until ``dockerlink serve`` is done with its start-up work (reading every container
    of the engine, which other users of a shared engine may keep busy): under 5 % of a CPU
    over one second. Returns the seconds waited; logs when it never settled."""
    started = time.monotonic()
    per_second = os.sysconf("SC_CLK_TCK")
    while time.monotonic() - started < timeout_s:
        before = cpu_ticks(pid)
        await asyncio.sleep(1)
        if cpu_ticks(pid) - before <= per_second * 0.05:
            return time.monotonic() - started
    log(f"dockerlink still busy after {timeout_s:g} s: its figures include that work")
    return time.monotonic() - started


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) * KIB


async def open_session(url: str) -> ClientConnection:
    ws = await connect(url, subprotocols=["dockerlink.terminal"], compression=None)  # type: ignore[list-item]
    await ws_read_until(ws, b"$ ")
    return ws


async def run(args: argparse.Namespace, workdir: Path) -> Results:
    results = Results()
    # (a long timeout: removing a container that ran 50 shells keeps the engine busy a while)
    async with DockerClient(args.engine_sock, timeout=300) as docker:
        results.machine = await machine(docker)
        await remove_bench_containers(docker)
        server: Server | None = None
        sessions: list[ClientConnection] = []
        try:
            (container,) = await create_containers(docker, 1, uuid.uuid4().hex[:8])
            unix_path = str(workdir / "dockerlink.sock")
            settings = {
                "terminal_max_sessions": str(args.sessions + 8),
                "host": f"127.0.0.1,unix:{unix_path}",
            }
            server = Server(args.engine_sock, workdir / "data", workdir, "terminal", settings)
            await server.ready()
            log(f"dockerlink settled {await settle(server.process.pid):.0f} s after start")
            url = f"ws://127.0.0.1:{server.port}/v1/container/terminal?id={container}"

            log(f"keystroke round trips: {args.keystrokes} each way, alternately")
            exec_id = await docker.execs.create(
                container, SHELL, user="admin", env={"TERM": "xterm-256color"}, tty=True, stdin=True
            )
            cli = DockerCli(args.engine_sock, container)
            try:
                async with await docker.execs.attach(exec_id, tty=True) as stream:
                    lean = await LeanWebSocket.connect(url, "dockerlink.terminal", unix=unix_path)
                    await lean_read_until(lean, b"$ ")
                    lean_tcp = await LeanWebSocket.connect(url, "dockerlink.terminal")
                    await lean_read_until(lean_tcp, b"$ ")
                    ws = await open_session(url)
                    await raw_read_until(stream, b"$ ")
                    cli.read_until(b"$ ", timeout_s=60)
                    times = await round_trips(
                        lean, lean_tcp, ws, stream, cli, args.keystrokes, args.pause_ms / 1e3
                    )
                    await lean.close()
                    await lean_tcp.close()
                    await ws.close()
                    await stream.write(b"\x15exit\n")
            finally:
                cli.close()
            unix, direct, through_cli = times["unix"], times["direct"], times["cli"]
            for transport, mine in (("unix socket", unix), ("TCP port", times["tcp"])):
                for at in (0.5, 0.99):
                    goal = Row(
                        f"keystroke echo p{round(at * 100)}, {transport}, against docker exec -it",
                        "ms",
                        percentile(mine, at) * 1e3,
                        percentile(through_cli, at) * 1e3,
                        "docker exec -it (CLI)",
                        "<= 1.20 x",
                    )
                    goal.passed = goal.ratio is not None and goal.ratio <= 1.2
                    results.add(goal)
            for figure, mine, baseline, name in (
                ("keystroke echo p50, unix socket, against the direct attach", unix, direct,
                 "direct TTY exec attach"),
                ("keystroke echo p50, TCP port, against the direct attach", times["tcp"], direct,
                 "direct TTY exec attach"),
                ("docker exec -it p50, against the direct attach", through_cli, direct,
                 "direct TTY exec attach"),
                ("keystroke echo p50, TCP port, websockets library client", times["library"],
                 through_cli, "docker exec -it (CLI)"),
            ):  # fmt: skip
                results.add(
                    Row(
                        figure,
                        "ms",
                        statistics.median(mine) * 1e3,
                        statistics.median(baseline) * 1e3,
                        name,
                    )
                )
            echo, echo_library = await echo_round_trips(workdir, args.keystrokes)
            results.add(
                Row(
                    "WebSocket echo alone, no shell (Sanic) p50",
                    "ms",
                    statistics.median(echo) * 1e3,
                    None,
                    "",
                )
            )
            results.add(
                Row(
                    "the same, websockets library client",
                    "ms",
                    statistics.median(echo_library) * 1e3,
                    None,
                    "",
                )
            )

            log(f"memory: {args.sessions} idle sessions")
            sessions.append(await open_session(url))  # the first one warms every code path
            await asyncio.sleep(1)
            before = rss_bytes(server.process.pid)
            for _ in range(args.sessions):
                sessions.append(await open_session(url))
            await asyncio.sleep(2)
            after = rss_bytes(server.process.pid)
            per_session = Row(
                f"memory per idle session ({args.sessions} open)",
                "KiB",
                (after - before) / args.sessions / KIB,
                None,
                "",
                "< 200 KiB",
            )
            per_session.passed = per_session.ours < 200
            results.add(per_session)
        finally:
            await asyncio.gather(*(ws.close() for ws in sessions), return_exceptions=True)
            if server is not None:
                server.stop()
            log("removing the benchmark's container")
            try:
                await remove_bench_containers(docker)
            except DockerError as exc:  # a busy engine can fail to kill it; keep the figures
                log(f"could not remove it ({exc.message}); the next run removes it")
    return results


def print_table(results: Results) -> None:
    m = results.machine
    print()
    print("dockerlink terminal benchmark")
    print(
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['os']}, "
        f"kernel {m['kernel']}, Docker {m['docker']}, load average at start {m['load_average']}"
    )
    header = f"{'figure':64} {'ours':>10} {'baseline':>10} {'ratio':>8}  {'goal':12} result"
    print(header)
    print("-" * (len(header) + 6))
    for row in results.rows:
        base = f"{row.baseline:10.4g}" if row.baseline is not None else f"{'-':>10}"
        ratio = f"{row.ratio:8.3f}" if row.ratio is not None else f"{'-':>8}"
        verdict = {True: "PASS", False: "FAIL", None: ""}[row.passed]
        figure = f"{row.figure} ({row.unit})"
        print(f"{figure:64} {row.ours:10.4g} {base} {ratio}  {row.goal:12} {verdict}")
    print("dockerlink's figures: a minimal WebSocket client (masked frames out, frame headers")
    print("  in, the same reads and writes as the direct attach's client), on dockerlink's unix")
    print("  socket (host=...,unix:/path: how nginx on the same machine can reach it) and on its")
    print("  loopback TCP port; the row marked 'websockets library client' times the same")
    print("  through the websockets package's client")
    print("baselines, timed alternately with dockerlink in the same run:")
    print("  docker exec -it (CLI): the docker CLI in a pseudo-terminal, as a user runs it; its")
    print("  client reaches it through local IPC (a pty), as dockerlink's does on the unix socket")
    print("  direct TTY exec attach: an exec started with Upgrade: tcp on the engine's socket,")
    print("  no relay at all (what the CLI does, without the CLI)")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench terminal", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--keystrokes", type=int, default=3000, help="through each path (default 3000)"
    )
    parser.add_argument("--sessions", type=int, default=50, help="idle sessions (default 50)")
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=PAUSE_S * 1e3,
        help="pause before each timed keystroke, in ms (default 3; 0: back to back)",
    )
    parser.add_argument(
        "--engine-sock",
        default=os.environ.get(
            "DOCKERLINK_TEST_DOCKER_SOCK", str(REPO / ".engine" / "docker.sock")
        ),
        help="the engine's socket (default: the private test engine)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockerlink-bench-") as workdir:
        results = asyncio.run(run(args, Path(workdir)))
    print_table(results)
    return 0 if all(row.passed is not False for row in results.rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DockerError as exc:
        print(f"[bench] engine error: {exc.message}", file=sys.stderr)
        sys.exit(2)
