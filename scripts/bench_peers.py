"""``scripts/bench`` (or ``scripts/bench peers``): dockerlink beside its peers on N containers.

One run, on the local engine (the private test engine that ``scripts/engine up`` starts):

1. Creates ``--containers`` running containers (default 200) from the test image, concurrently
   with a bound: dockerlink's labels, 32 MiB, a fifth of a CPU, ``sleep`` as the keep-alive, and
   the label ``dockerlink-bench`` by which every one is removed at the end (in a ``finally``;
   a later run also removes any that an interrupted one left). The first holds a git repository.
2. Writes a simulated week of history (``--days``) for each into a fresh data_dir with the
   stats store's own API (one container's files, then copies), and starts ``dockerlink serve``
   (one process, as always) on a free loopback port against that engine and data_dir.
3. Measures, each figure beside a baseline measured in the same run:

   - ``GET /v1/container`` p50/p99, against docker-py (the official SDK) listing and inspecting
     every container (``client.containers.list(all=True)``), timed alternately;
   - the sampler's CPU time per container-sample and wall time per tick, reading cgroup files
     against the Engine API stats path (both take containers from the mirror; one more row
     shows the sampler before issue #6: list, inspect and stats for each container), run in
     this process with the server idle, plus the engine's own CPU (dockerd, containerd and the
     containers' shims) per sample;
   - ``GET /v1/git/head`` p50/p99 against the same ``git log -1`` run raw through docker-py
     (``exec_create`` + ``exec_start``, and ``exec_inspect`` for the exit code, as dockerlink
     checks it), timed alternately;
   - requests per second and p99 of ``GET /v1/container?id=X`` at 64 connections with ``wrk``,
     against docker-py inspecting X from 64 threads;
   - the server's peak RSS (``VmHWM``) after all of the above and one week query per container,
     beside the same server started on an empty data_dir.

4. Prints a table (figure, ours, baseline, ratio, goal, result) and the machine; ``--json``
   also writes the figures to a file. Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker  # docker-py, the bench extra: pip install -e '.[bench]'
import httpx
import orjson
from bench_stats import DAY_S, RawClient, SimClock, free_port, simulate

from docker_api import DockerClient, DockerError, NotFound
from dockerlink.mirror import ContainerMirror
from dockerlink.stats.sampler import Sampler
from dockerlink.stats.sources import CgroupSource
from dockerlink.stats.store import HistoryStore

REPO = Path(__file__).resolve().parent.parent
TEST_IMAGE = "dockerlink-test:latest"
BENCH_LABEL = "dockerlink-bench"
MIB = 1 << 20
INTERVAL_S = 15
CREATE_CONCURRENCY = 8
GIT_DIR = "/var/www/html"
TEMPLATE_ID = "be" * 32
BASELINES = {
    "docker-py list+inspect": "client.containers.list(all=True): one list, one inspect each",
    "docker-py raw exec": "api.exec_create + exec_start + exec_inspect of git log -1",
    "docker-py inspect, 64 threads": "api.inspect_container(X) from 64 threads, 64 connections",
    "Engine API stats": "the same sampler, figures from one-shot stats calls (still the mirror)",
    "sampler before #6": "list + inspect + one-shot stats for every container, every tick",
    "same, no history": "dockerlink serve on an empty data_dir, the same requests",
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(len(ordered) * fraction) - 1))]


@dataclass
class Row:
    figure: str
    unit: str
    ours: float
    baseline: float | None
    baseline_name: str
    goal: str = ""
    passed: bool | None = None

    @property
    def ratio(self) -> float | None:
        return self.ours / self.baseline if self.baseline else None


@dataclass
class Results:
    machine: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        ratio = f" (x{row.ratio:.3f})" if row.ratio is not None else ""
        log(f"{row.figure}: {row.ours:.4g} {row.unit} vs {row.baseline_name} {row.baseline}{ratio}")

    def add_latencies(
        self,
        figure: str,
        mine: list[float],
        base: list[float],
        baseline_name: str,
        max_ratio: float,
    ) -> None:
        """p50 (judged against ``max_ratio`` of the baseline's) and p99 rows, in ms."""
        p50 = Row(
            f"{figure} p50",
            "ms",
            statistics.median(mine) * 1e3,
            statistics.median(base) * 1e3,
            baseline_name,
            f"<= {max_ratio:.2f} x",
        )
        p50.passed = p50.ratio is not None and p50.ratio <= max_ratio
        self.add(p50)
        self.add(
            Row(
                f"{figure} p99",
                "ms",
                percentile(mine, 0.99) * 1e3,
                percentile(base, 0.99) * 1e3,
                baseline_name,
            )
        )


# -- the machine ----------------------------------------------------------------------------------


async def machine(docker_client: DockerClient) -> dict[str, Any]:
    version = await docker_client.version()
    info = await docker_client.info()
    return {
        **host_facts(),
        "docker": f"{version.get('Version')} (API {version.get('ApiVersion')})",
        "cgroup": f"v{info.get('CgroupVersion', '?')}, {info.get('CgroupDriver', '?')} driver",
    }


def host_facts() -> dict[str, Any]:
    cpu_model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


# -- containers -----------------------------------------------------------------------------------


async def remove_bench_containers(docker_client: DockerClient) -> int:
    """Remove every container this benchmark made, in this run or an interrupted earlier one."""
    found = await docker_client.containers.list(all=True, filters={"label": [BENCH_LABEL]})
    semaphore = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def remove(container_id: str) -> None:
        async with semaphore:
            with contextlib.suppress(NotFound):
                await docker_client.containers.remove(container_id, force=True, volumes=True)

    await asyncio.gather(*(remove(str(s["Id"])) for s in found))
    return len(found)


async def create_containers(docker_client: DockerClient, count: int, run_id: str) -> list[str]:
    semaphore = asyncio.Semaphore(CREATE_CONCURRENCY)
    done = 0

    async def one(n: int) -> str:
        nonlocal done
        body = {
            "Image": TEST_IMAGE,
            "Cmd": ["sleep", "2147483647"],
            "WorkingDir": GIT_DIR,
            "Labels": {"dockerlink": "v1.0.0", "ports": str(10000 + n), BENCH_LABEL: run_id},
            "HostConfig": {
                "Memory": 32 * MIB,
                "MemorySwap": 32 * MIB,
                "CpuPeriod": 100_000,
                "CpuQuota": 20_000,
                "LogConfig": {"Type": "none", "Config": {}},
            },
        }
        async with semaphore:
            created = await docker_client.containers.create(
                body, name=f"dlbench-{run_id}-{n:04d}", timeout=120
            )
            await docker_client.containers.start(created["Id"], timeout=120)
        done += 1
        if done % 50 == 0:
            log(f"  {done}/{count} containers running")
        return str(created["Id"])

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def make_repository(docker_client: DockerClient, container_id: str) -> None:
    result = await docker_client.execs.run(
        container_id,
        [
            "sh",
            "-c",
            f"cd {GIT_DIR} && git init -q && echo hi > index.html && git add . "
            "&& git commit -q -m 'bench: the last commit' && git log -1 --format=%H",
        ],
        timeout=60,
        user="admin",
    )
    if result.exit_code != 0:
        raise RuntimeError(f"cannot make the git repository: {result.text()}")


# -- history --------------------------------------------------------------------------------------


def write_histories(data_dir: Path, workdir: Path, ids: list[str], days: int, end: int) -> None:
    """A simulated ``days`` of 15-second samples ending at ``end`` for every container: written
    once through the store's API, then copied under each id."""
    count = days * DAY_S // INTERVAL_S
    start = end - days * DAY_S
    clock = SimClock(start)
    template = workdir / "template"
    store = HistoryStore(template, clock=clock)
    store.open()
    for sample in simulate(start, count, INTERVAL_S):
        clock.now = sample.t
        store.append(TEMPLATE_ID, sample)
    clock.now = end
    store.maintain()
    store.close()
    stats = data_dir / "stats"
    stats.mkdir(parents=True)
    for container_id in ids:
        shutil.copytree(template / TEMPLATE_ID, stats / container_id)


# -- the server -----------------------------------------------------------------------------------


class Server:
    """``dockerlink serve`` in a subprocess, as an operator runs it."""

    def __init__(
        self,
        sock: str,
        data_dir: Path,
        workdir: Path,
        name: str,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.log_path = workdir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DOCKERLINK_")}
        env.update(
            DOCKERLINK_DOCKER_SOCK=sock,
            DOCKERLINK_HOST="127.0.0.1",
            DOCKERLINK_PORT=str(self.port),
            DOCKERLINK_DATA_DIR=str(data_dir),
            DOCKERLINK_SAMPLE_INTERVAL=str(INTERVAL_S),
            DOCKERLINK_EXEC_USER="admin",
        )
        env.update({f"DOCKERLINK_{k.upper()}": v for k, v in (settings or {}).items()})
        executable = Path(sys.executable).parent / "dockerlink"
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [str(executable), "serve"],
                cwd=workdir,  # no .env of the checkout
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"dockerlink exited: {self.log_path.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health", timeout=5)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dockerlink did not answer within {timeout_s} s")
                await asyncio.sleep(0.2)

    def peak_rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


async def timed_get(client: RawClient, path: str, params: dict[str, str]) -> tuple[float, bytes]:
    started = time.perf_counter()
    status, body = await client.get(path, params)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"GET {path} {params}: {status} {body[:200]!r}")
    return elapsed, body


async def alternate(
    ours: Callable[[], Awaitable[float]], theirs: Callable[[], float], rounds: int, ratio: int
) -> tuple[list[float], list[float]]:
    """``ratio`` timings of ours, then one of theirs, ``rounds`` times: drifts in the machine's
    load (other work on it) touch both alike. Theirs is blocking: run in a thread."""
    mine: list[float] = []
    peer: list[float] = []
    for _ in range(rounds):
        for _ in range(ratio):
            mine.append(await ours())
        peer.append(await asyncio.to_thread(theirs))
    return mine, peer


# -- the engine's CPU -----------------------------------------------------------------------------


def _proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_pids(sock: str, container_ids: list[str]) -> list[int]:
    """dockerd serving ``sock``, its children (containerd), and the shims of these containers."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        table[int(entry.name)] = (ppid, cmdline)
    daemons = [pid for pid, (_, cmd) in table.items() if "dockerd" in cmd and sock in cmd]
    found = set(daemons)
    ours = set(container_ids)
    for pid, (ppid, cmd) in table.items():
        words = cmd.split()
        shim_of = (
            words[words.index("-id") + 1] if "containerd-shim" in cmd and "-id" in words else ""
        )
        if ppid in found or shim_of in ours:
            found.add(pid)
    return sorted(found)


def engine_cpu_s(pids: list[int]) -> dict[int, float]:
    return {pid: _proc_cpu_s(pid) for pid in pids}


def cpu_used_s(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU time used between two snapshots by the processes alive at both."""
    return sum(max(0.0, after[pid] - before[pid]) for pid in before.keys() & after.keys())


# -- the figures ----------------------------------------------------------------------------------


async def bench_list(
    results: Results, client: RawClient, peer: docker.DockerClient, args: argparse.Namespace
) -> None:
    async def ours() -> float:
        elapsed, _ = await timed_get(client, "/v1/container", {})
        return elapsed

    def theirs() -> float:
        started = time.perf_counter()
        peer.containers.list(all=True)  # one list, then one inspect per container
        return time.perf_counter() - started

    mine, base = await alternate(
        ours, theirs, args.peer_requests, args.requests // args.peer_requests
    )
    results.add_latencies("GET /v1/container", mine, base, "docker-py list+inspect", 0.10)


async def bench_git(
    results: Results,
    client: RawClient,
    peer: docker.DockerClient,
    container_id: str,
    args: argparse.Namespace,
) -> None:
    async def ours() -> float:
        elapsed, body = await timed_get(client, "/v1/git/head", {"id": container_id})
        assert body.startswith(b"commit "), body
        return elapsed

    def theirs() -> float:
        started = time.perf_counter()
        exec_id = peer.api.exec_create(
            container_id, ["git", "log", "-1"], user="admin", workdir=GIT_DIR
        )["Id"]
        output = peer.api.exec_start(exec_id)
        exit_code = peer.api.exec_inspect(exec_id)["ExitCode"]
        elapsed = time.perf_counter() - started
        assert exit_code == 0, output
        assert b"commit " in output, output
        return elapsed

    for _ in range(3):  # warm-up
        await ours()
        await asyncio.to_thread(theirs)
    mine, base = await alternate(ours, theirs, args.git_requests, 1)
    results.add_latencies("GET /v1/git/head", mine, base, "docker-py raw exec", 1.15)


@dataclass
class Load:
    rps: float
    p99_s: float


def wrk(port: int, container_id: str, duration_s: int, connections: int) -> Load:
    url = f"http://127.0.0.1:{port}/v1/container?id={container_id}"
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration_s + 60,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return Load(rps, float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit])


def threaded_inspect(
    peer: docker.DockerClient, container_id: str, duration_s: float, threads: int
) -> Load:
    """docker-py inspecting one container from ``threads`` threads for ``duration_s``."""
    timings: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + duration_s

    def worker() -> None:
        mine = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            peer.api.inspect_container(container_id)
            mine.append(time.perf_counter() - started)
        with lock:
            timings.extend(mine)

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return Load(len(timings) / (time.monotonic() - started), percentile(timings, 0.99))


async def bench_load(
    results: Results,
    port: int,
    peer: docker.DockerClient,
    container_id: str,
    args: argparse.Namespace,
) -> None:
    await asyncio.to_thread(wrk, port, container_id, 2, 64)  # warm-up
    ours = await asyncio.to_thread(wrk, port, container_id, args.load_seconds, 64)
    # docker-py's pool keeps 64 connections when asked (default 10)
    theirs = await asyncio.to_thread(threaded_inspect, peer, container_id, args.load_seconds, 64)
    results.add(
        Row(
            "GET /v1/container?id=X at 64 conns",
            "req/s",
            ours.rps,
            theirs.rps,
            "docker-py inspect, 64 threads",
            ">= 2000 req/s",
        )
    )
    results.rows[-1].passed = ours.rps >= 2000
    results.add(
        Row(
            "  ... p99", "ms", ours.p99_s * 1e3, theirs.p99_s * 1e3, "docker-py inspect, 64 threads"
        )
    )


async def bench_sampler(
    results: Results, sock: str, ids: list[str], args: argparse.Namespace, workdir: Path
) -> None:
    source = CgroupSource.detect()
    if source is None:
        raise RuntimeError("no cgroup hierarchy at /sys/fs/cgroup: the cgroup source cannot run")
    pids = engine_pids(sock, ids)
    async with DockerClient(sock, timeout=120) as client:
        mirror = ContainerMirror(client)
        following = asyncio.create_task(mirror.run())
        try:
            if not await mirror.wait_fresh(60):
                raise RuntimeError("the mirror did not read the engine within 60 s")

            def make(name: str, **kw: Any) -> tuple[Sampler, SimClock]:
                clock = SimClock(time.time())
                store = HistoryStore(workdir / name, clock=clock)
                store.open()
                # A fresh second for each tick, as 15 s apart: every sample is stored.
                return Sampler(
                    client, store, interval_s=INTERVAL_S, call_timeout_s=60, clock=clock, **kw
                ), clock

            async def measure(sampler: Sampler, clock: SimClock, ticks: int) -> tuple[float, ...]:
                clock.now += INTERVAL_S
                await sampler.tick()  # warm-up: files found, stores opened
                samples_before = sampler.cgroup_samples + sampler.api_samples
                cpu_before, engine_before = time.process_time(), engine_cpu_s(pids)
                walls = []
                for _ in range(ticks):
                    clock.now += INTERVAL_S
                    started = time.perf_counter()
                    await sampler.tick()
                    walls.append(time.perf_counter() - started)
                samples = sampler.cgroup_samples + sampler.api_samples - samples_before
                cpu = time.process_time() - cpu_before
                engine = cpu_used_s(engine_before, engine_cpu_s(pids))
                return cpu / samples, engine / samples, statistics.median(walls), samples / ticks

            files, files_clock = make("files", mirror=mirror, cgroups=source, api_fallback=False)
            api, api_clock = make("api", mirror=mirror)
            before, before_clock = make("before")  # no mirror, no cgroups: as before #6
            ours = await measure(files, files_clock, args.ticks)
            theirs = await measure(api, api_clock, args.api_ticks)
            old = await measure(before, before_clock, args.api_ticks)
            assert files.api_samples == 0, "the cgroup sampler asked the engine"
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
    running = round(ours[3])
    results.add(
        Row(
            "sampler CPU per container-sample",
            "ms",
            ours[0] * 1e3,
            theirs[0] * 1e3,
            "Engine API stats",
            "<= 0.10 x",
        )
    )
    results.rows[-1].passed = (results.rows[-1].ratio or 1) <= 0.10
    results.add(
        Row(
            f"sampler wall per tick ({running} running)",
            "s",
            ours[2],
            theirs[2],
            "Engine API stats",
            "< 0.5 s",
        )
    )
    results.rows[-1].passed = ours[2] < 0.5 and running >= len(ids)
    results.add(
        Row(
            "  engine CPU per container-sample",
            "ms",
            ours[1] * 1e3,
            theirs[1] * 1e3,
            "Engine API stats",
        )
    )
    results.add(
        Row(
            "  sampler CPU, before #6 (list+inspect+stats)",
            "ms",
            ours[0] * 1e3,
            old[0] * 1e3,
            "sampler before #6",
        )
    )


async def bench_rss(
    results: Results,
    server: Server,
    client: RawClient,
    ids: list[str],
    sock: str,
    workdir: Path,
    days: int,
) -> None:
    for container_id in ids:
        await timed_get(client, "/v1/container/stats", {"id": container_id, "scale": "week"})
    ours = server.peak_rss_bytes()
    # The same service with nothing stored, after the same requests.
    empty = Server(sock, workdir / "empty-data", workdir, "empty")
    try:
        await empty.ready()
        empty_client = RawClient(empty.port)
        try:
            for _ in range(20):
                await timed_get(empty_client, "/v1/container", {})
            for container_id in ids:
                await timed_get(empty_client, "/v1/container/stats", {"id": container_id})
            await asyncio.to_thread(wrk, empty.port, ids[0], 3, 64)
        finally:
            empty_client.close()
        theirs = empty.peak_rss_bytes()
    finally:
        empty.stop()
    results.add(
        Row(
            f"peak RSS, {len(ids)} containers x {days} days",
            "MB",
            ours / 1e6,
            theirs / 1e6,
            "same, no history",
            "< 120 MB",
        )
    )
    results.rows[-1].passed = ours < 120e6


# -- the run --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, workdir: Path) -> Results:
    results = Results()
    sock = args.engine_sock
    run_id = uuid.uuid4().hex[:8]
    async with DockerClient(sock, timeout=120) as client:
        results.machine = await machine(client)
        stale = await remove_bench_containers(client)
        if stale:
            log(f"removed {stale} containers an earlier run left behind")
        server: Server | None = None
        peer = docker.DockerClient(
            base_url=f"unix://{sock}", version="auto", timeout=120, max_pool_size=64
        )
        try:
            log(f"creating {args.containers} containers (at most {CREATE_CONCURRENCY} at once)")
            started = time.monotonic()
            ids = await create_containers(client, args.containers, run_id)
            log(f"  done in {time.monotonic() - started:.1f} s")
            await make_repository(client, ids[0])
            log(f"writing {args.days} days of history for each")
            data_dir = workdir / "data"
            await asyncio.to_thread(
                write_histories, data_dir, workdir, ids, args.days, int(time.time())
            )
            server = Server(sock, data_dir, workdir, "dockerlink")
            await server.ready()
            raw = RawClient(server.port)
            try:
                # Until every container is listed (the server's mirror has read the engine).
                for _ in range(200):
                    _, body = await timed_get(raw, "/v1/container", {})
                    if len(set(ids) & set(orjson.loads(body)["success"])) == len(ids):
                        break
                    await asyncio.sleep(0.1)
                for _ in range(20):
                    await timed_get(raw, "/v1/container", {})
                log("GET /v1/container against docker-py")
                await bench_list(results, raw, peer, args)
                log("GET /v1/git/head against a raw exec")
                await bench_git(results, raw, peer, ids[0], args)
                log(f"GET /v1/container?id=X under wrk, {args.load_seconds} s")
                await bench_load(results, server.port, peer, ids[1], args)
                log("the sampler: cgroup files against the Engine API")
                await bench_sampler(results, sock, ids, args, workdir)
                log("peak RSS")
                await bench_rss(results, server, raw, ids, sock, workdir, args.days)
            finally:
                raw.close()
        finally:
            if server is not None:
                server.stop()
            peer.close()
            log("removing the benchmark's containers")
            await remove_bench_containers(client)
    return results


def print_table(results: Results, args: argparse.Namespace) -> None:
    m = results.machine
    print()
    print(f"dockerlink benchmark: {args.containers} containers, {args.days} days of history each")
    print(
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['os']}, "
        f"kernel {m['kernel']}, Docker {m['docker']}, cgroup {m['cgroup']}, "
        f"Python {m['python']}, load average at start {m['load_average']}"
    )
    header = f"{'figure':50} {'ours':>10} {'baseline':>10} {'ratio':>8}  {'goal':14} result"
    print(header)
    print("-" * len(header) + "-" * 8)
    for row in results.rows:
        base = f"{row.baseline:10.4g}" if row.baseline is not None else f"{'-':>10}"
        ratio = f"{row.ratio:8.3f}" if row.ratio is not None else f"{'-':>8}"
        verdict = {True: "PASS", False: "FAIL", None: ""}[row.passed]
        print(
            f"{row.figure + ' (' + row.unit + ')':50} {row.ours:10.4g} {base} {ratio}  "
            f"{row.goal:14} {verdict}"
        )
    print("baselines:")
    for name, what in BASELINES.items():
        if any(row.baseline_name == name for row in results.rows):
            print(f"  {name}: {what}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=200, help="containers (default 200)")
    parser.add_argument("--days", type=int, default=7, help="days of history each (default 7)")
    parser.add_argument(
        "--requests", type=int, default=200, help="timed GET /v1/container requests (default 200)"
    )
    parser.add_argument(
        "--peer-requests",
        type=int,
        default=20,
        help="timed docker-py list+inspect rounds (default 20)",
    )
    parser.add_argument(
        "--git-requests",
        type=int,
        default=40,
        help="timed git head requests, each way (default 40)",
    )
    parser.add_argument("--ticks", type=int, default=10, help="cgroup sampler ticks (default 10)")
    parser.add_argument(
        "--api-ticks", type=int, default=3, help="Engine API sampler ticks (default 3)"
    )
    parser.add_argument("--load-seconds", type=int, default=10, help="wrk duration (default 10)")
    parser.add_argument(
        "--engine-sock",
        default=os.environ.get(
            "DOCKERLINK_TEST_DOCKER_SOCK", str(REPO / ".engine" / "docker.sock")
        ),
        help="the engine's socket (default: the private test engine)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    if args.containers < 2:
        parser.error("--containers must be at least 2")
    if shutil.which("wrk") is None:
        parser.error("wrk is missing (apt-get install wrk; scripts/bench installs it)")
    with tempfile.TemporaryDirectory(prefix="dockerlink-bench-") as workdir:
        results = asyncio.run(_main_task(args, Path(workdir)))
    print_table(results, args)
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "containers": args.containers,
                    "days": args.days,
                    "machine": results.machine,
                    "rows": [{**row.__dict__, "ratio": row.ratio} for row in results.rows],
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0 if all(row.passed is not False for row in results.rows) else 1


async def _main_task(args: argparse.Namespace, workdir: Path) -> Results:
    """``run``, cancelled (so that its ``finally`` removes the containers) on SIGTERM."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(args, workdir)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DockerError as exc:
        print(f"[bench] engine error: {exc.message}", file=sys.stderr)
        sys.exit(2)
