"""``scripts/bench scale``: how dockerlink's costs grow with the number of containers.

For each count of ``--counts`` (default 50, 200 and 1,000), on the local engine (the private
test engine that ``scripts/engine up`` starts):

1. Makes containers up to that count from the test image, concurrently: at most ``--running``
   (default 200) of them running, the rest created and never started (they cost the engine
   almost nothing). Each carries dockerlink's labels and the label ``dockerlink-bench-scale``,
   by which every one is removed at the end, whatever happens (Ctrl-C and SIGTERM included);
   a later run also removes any that an interrupted one left.
2. Gives each a simulated week of history (``--days``) in a data_dir (written once through the
   stats store's API, then copied, as ``scripts/bench`` does), and starts a real
   ``dockerlink serve`` on it, with an ``api_token`` set as an operator runs it: every request
   below carries the token (the bare app's too, which ignores it), and dockerlink checks it
   and redacts it from its log lines.
3. Measures each figure of issue 15's goals beside its baseline, measured in the same run:

   - start-up: from launching ``dockerlink serve`` until ``/health`` answers and a first
     ``GET /v1/container/stats?scale=week`` is served;
   - ``GET /v1/container`` p50, against docker-py listing and inspecting every container;
   - ``GET /v1/container/stats?scale=week`` p99 over ``--week-requests`` queries (default
     1,000), each for a container drawn at random (most of them asked for the first time), and
     beside it the p99 of the same queries inside the server (the durations of its request
     lines): what lies between the two is the client, the kernel and waiting for a CPU;
   - the sampler, run in this process against the same engine: wall time per tick, and CPU time
     per running container sampled (the ticks' and the once-a-minute maintenance's, as the
     sampler's loop runs it, and the store's writer thread's, waited for inside the timed
     window, as the service runs it) against the floor: the CPU time of reading the same cgroup
     files (open, read, close; no parsing) in a tight loop, one round after each timed tick
     (so that both are measured under the same load). The sampler keeps those files open and
     reads them with one ``pread()`` each, which costs about half the floor: the same
     CPU is also printed against that cheaper floor, for comparison (no goal). The timed ticks
     are steady state: whole 2-minute day buckets (a day point per container each, as every
     8th tick writes), in files that exist (warm-up ticks crossed a day and a week bucket,
     which made each tier's file before the timed ticks start; a history file is made once per
     period: an hour for the raw tier, so about 1 tick in 240 pays for it). The running
     containers are kept busy meanwhile (a process started every second in each, as a
     service's timers and requests do) and the timed ticks are over a second apart, so that
     their figures move from one tick to the next
     (each tick, and each round of either floor, follows the same pause of PAUSE_S, so that
     none of them finds the caches warm from another as a tick in service does not): the
     store keeps a container whose figures did not move as a run of repeated samples, which
     costs next to nothing (that is what the stopped ones cost), and a bench of idle running
     containers would flatter the sampler. The share of running samples that repeated the one
     before is printed (it should be near 0);
   - ``GET /v1/container?id=X`` requests per second under ``wrk``, against a bare Sanic app
     serving a fixed body of the same size on the same ``wrk`` command line. The two take turns
     of LOAD_ROUND_S, one of each a pair, ``--load-seconds`` pairs: the figure is the median of
     the pairs' ratios (each printed with the median requests per second of its server, and
     beside it the lowest and highest pair ratio, and the median's 95 % confidence interval:
     with 60 pairs, their 22nd and 39th ratios). On a virtual machine the same server's
     rate moves by a third from one second to the next (its neighbours' work, steal time):
     turns of several seconds, as before, and a ratio of totals let one slow phase decide the
     figure; a second's pair sees both at nearly the same moment. With two CPUs or more, both
     servers run on the first and
     ``wrk`` on the second (on a 2-CPU machine a server left to the scheduler shares its CPU
     with ``wrk``'s threads by turns, and the same command varied by a third from one run to
     the next);
   - the container view's reconcile (the safety net the service runs every minute), in this
     process: CPU and wall time per pass against re-reading every container;
   - the server's peak RSS (``VmHWM``) after all of the above and one week query for every
     container.

4. Prints one table per count, and the goals judged at the largest count (the issue states them
   for 1,000 containers); exits 1 when one is missed.

The machine's other work shows in these figures: the load average at the start and at the end of
each count is printed with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker  # docker-py, the bench extra
import orjson
from bench_peers import Server, host_facts, machine, percentile, timed_get, write_histories
from bench_stats import RawClient, SimClock, free_port

from docker_api import DockerClient, DockerError, NotFound
from dockerlink.mirror import ContainerMirror
from dockerlink.stats.cgroups import CgroupFiles, HeldFiles, find_cgroup
from dockerlink.stats.sampler import MAINTAIN_EVERY_S, Sampler
from dockerlink.stats.series import repeats as series_repeats
from dockerlink.stats.sources import CgroupSource
from dockerlink.stats.store import DAY, RAW, WEEK, HistoryStore

REPO = Path(__file__).resolve().parent.parent
TEST_IMAGE = "dockerlink-test:latest"
BENCH_LABEL = "dockerlink-bench-scale"
MIB = 1 << 20
INTERVAL_S = 15
CREATE_CONCURRENCY = 16
#: The pause before each timed tick, and before each round of either floor.
PAUSE_S = 0.4
#: The sampler's loop runs the store's maintenance once a minute: every this many ticks.
MAINTAIN_TICKS = int(MAINTAIN_EVERY_S // INTERVAL_S)
WRK_THREADS = 2
WRK_CONNECTIONS = 64
#: The length of each server's turn under wrk, in seconds (see the module's doc).
LOAD_ROUND_S = 1
#: Full re-reads, then reconcile passes, of the container view timed (medians are printed).
RECONCILE_FULL_READS = 2
RECONCILE_PASSES = 5

#: The bare Sanic app: one route answering a fixed body, run like ``dockerlink serve`` runs
#: (one process, no access log).
BARE_SANIC = """
import sys
from sanic import Sanic
from sanic.response import raw

body = open(sys.argv[2], "rb").read()
app = Sanic("bare")

@app.get("/v1/container")
async def container(request):
    return raw(body, content_type="application/json")

app.run(host="127.0.0.1", port=int(sys.argv[1]), single_process=True, access_log=False,
        motd=False)
"""


#: A week query's request line in dockerlink's log, its duration in ms the group.
WEEK_LINE = re.compile(rb"\] GET /v1/container/stats\?\S*scale=week\S* 200 ([0-9.]+) ms$", re.M)


def server_durations_ms(log_path: Path, line: re.Pattern[bytes]) -> list[float]:
    """The durations of the server's request lines that ``line`` matches, in order."""
    return [float(m[1]) for m in line.finditer(log_path.read_bytes())]


def log(message: str) -> None:
    print(f"[bench scale] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Figure:
    name: str
    unit: str
    ours: float
    baseline: float | None = None
    baseline_name: str = ""
    #: The goal as printed, and whether a value meets it (judged at the largest count).
    goal: str = ""
    passed: bool | None = None
    #: When the ratio is measured in pairs (ours beside the baseline at nearly the same
    #: moment), their median: the figure's ratio, rather than one of the two medians.
    pair_ratio: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.pair_ratio is not None:
            return self.pair_ratio
        return self.ours / self.baseline if self.baseline else None


@dataclass
class Count:
    containers: int
    running: int
    load_before: str
    load_after: str = ""
    figures: list[Figure] = field(default_factory=list)


# -- containers -----------------------------------------------------------------------------------


async def remove_containers(client: DockerClient) -> int:
    """Remove every container this benchmark made, in this run or an interrupted earlier one."""
    found = await client.containers.list(all=True, filters={"label": [BENCH_LABEL]})
    semaphore = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def remove(container_id: str) -> None:
        async with semaphore:
            with contextlib.suppress(NotFound):
                await client.containers.remove(container_id, force=True, volumes=True)

    await asyncio.gather(*(remove(str(s["Id"])) for s in found))
    return len(found)


async def create_containers(
    client: DockerClient, first: int, count: int, run_id: str, ids: list[str]
) -> None:
    """Create containers ``first`` .. ``first + count - 1``, appending their ids to ``ids`` as
    they are made (so that cleanup knows them even if this is interrupted)."""
    semaphore = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one(n: int) -> None:
        body = {
            "Image": TEST_IMAGE,
            "Cmd": ["sleep", "2147483647"],
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
            created = await client.containers.create(
                body, name=f"dlscale-{run_id}-web{n}", timeout=120
            )
        ids.append(str(created["Id"]))

    await asyncio.gather(*(one(n) for n in range(first, first + count)))


async def start_containers(client: DockerClient, ids: list[str]) -> None:
    semaphore = asyncio.Semaphore(CREATE_CONCURRENCY // 2)

    async def one(container_id: str) -> None:
        async with semaphore:
            await client.containers.start(container_id, timeout=120)

    await asyncio.gather(*(one(i) for i in ids))


def copy_histories(template: Path, stats: Path, ids: list[str]) -> None:
    stats.mkdir(parents=True, exist_ok=True)
    for container_id in ids:
        if not (stats / container_id).exists():
            shutil.copytree(template, stats / container_id)


# -- baselines ------------------------------------------------------------------------------------


@contextlib.contextmanager
def bare_sanic(body: bytes, workdir: Path) -> Iterator[tuple[int, int]]:
    """A bare Sanic app serving ``body`` at ``/v1/container`` on a free port: (port, pid)."""
    (workdir / "bare_body").write_bytes(body)
    (workdir / "bare_sanic.py").write_text(BARE_SANIC)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(workdir / "bare_sanic.py"), str(port), str(workdir / "bare_body")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bare Sanic app did not start")
            time.sleep(0.1)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load_cpus() -> tuple[int, int] | None:
    """The CPU for the servers under load and the one for ``wrk``, or None with fewer than 2."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 and shutil.which("taskset") else None


def pin(pid: int, cpu: int) -> None:
    """Every thread of process ``pid`` to ``cpu``."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended since
            os.sched_setaffinity(int(task), {cpu})


def interleaved_rps(
    ours: tuple[str, int], bare: tuple[str, int], pairs: int, headers: list[str]
) -> tuple[float, float, list[float]]:
    """Each ``(url, server pid)`` under the same wrk (every request with ``headers``), taking
    ``pairs`` pairs of turns of LOAD_ROUND_S, after a warm-up each: the median requests per
    second of each, and each pair's ratio (ours / bare), in order."""
    cpus = load_cpus()
    prefix: list[str] = []
    if cpus is not None:
        for _, pid in (ours, bare):
            pin(pid, cpus[0])
        prefix = ["taskset", "-c", str(cpus[1])]
    for url, _ in (ours, bare):
        wrk_rps(url, 2, headers, prefix)
    rates: tuple[list[float], list[float]] = ([], [])
    for _ in range(pairs):
        for side, (url, _) in enumerate((ours, bare)):
            rates[side].append(wrk_rps(url, LOAD_ROUND_S, headers, prefix))
    ratios = [mine / theirs for mine, theirs in zip(*rates, strict=True)]
    return statistics.median(rates[0]), statistics.median(rates[1]), ratios


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval of the median of ``values``: the k-th smallest
    and the k-th largest, k the largest for which fewer than k values fall below the median
    with probability at most (1 - confidence) / 2 (each value is above or below it with even
    odds: a binomial count). With too few values for that, the lowest and highest."""
    ordered = sorted(values)
    n = len(ordered)
    tail = (1 - confidence) / 2
    k, below = 0, 0.0  # below: the probability that fewer than k + 1 values are below
    while k < n // 2:
        below += math.comb(n, k) / 2**n
        if below > tail:
            break
        k += 1
    k = max(k, 1)
    return ordered[k - 1], ordered[n - k]


def wrk_rps(
    url: str, duration_s: int, headers: list[str], prefix: list[str] | None = None
) -> float:
    out = subprocess.run(
        [
            *(prefix or []),
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{WRK_CONNECTIONS}",
            f"-d{duration_s}s",
            *(arg for header in headers for arg in ("-H", header)),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration_s + 60,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")


def steady_start(now: float) -> int:
    """A simulated time before ``now`` that is two sampler intervals before a week bucket's end
    that is not an hour's end: the two warm-up ticks then make each tier's file (raw, and the
    day and week points of the buckets they close), and the timed ticks that follow stay within
    one hour and one 6-hour day file."""
    boundary = int(now) - int(now) % RAW.file_period_s - RAW.file_period_s + WEEK.resolution_s
    return boundary - 2 * INTERVAL_S


def timed_ticks(asked: int) -> int:
    """``asked`` rounded up to whole day buckets (8 ticks, one day point per container)."""
    per_bucket = DAY.resolution_s // INTERVAL_S
    return max(1, -(-asked // per_bucket)) * per_bucket


def cgroup_floor_s(files: list[CgroupFiles], rounds: int) -> float:
    """CPU seconds per container of reading its cgroup files whole, nothing more."""
    paths = [
        value
        for f in files
        for value in (getattr(f, spec.name) for spec in dataclasses.fields(f))
        if isinstance(value, str) and value.startswith("/")
    ]
    started = time.process_time()
    for _ in range(rounds):
        for path in paths:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                while os.read(fd, 65536):
                    pass
            finally:
                os.close(fd)
    return (time.process_time() - started) / (rounds * len(files))


def held_floor_s(files: list[CgroupFiles], rounds: int) -> float:
    """CPU seconds per container of reading the same files kept open, as the sampler reads them
    (:class:`HeldFiles`, one ``pread()`` each; no parsing)."""
    held = [HeldFiles(f) for f in files]
    try:
        started = time.process_time()
        for _ in range(rounds):
            for opened, f in zip(held, files, strict=True):
                for path in f.paths():
                    opened.read(path)
        return (time.process_time() - started) / (rounds * len(files))
    finally:
        for opened in held:
            opened.close()


def running_files(version: int, mirror: ContainerMirror) -> list[CgroupFiles]:
    """The cgroup files of every running container the mirror knows, as the sampler finds them."""
    files = []
    for info in mirror.all():
        state = info.get("State") or {}
        if not state.get("Running"):
            continue
        host_config = info.get("HostConfig") or {}
        found = find_cgroup(
            version,
            str(info["Id"]),
            int(state.get("Pid") or 0),
            cgroup_parent=str(host_config.get("CgroupParent") or ""),
            own_network=host_config.get("NetworkMode") != "host",
        )
        if found is not None:
            files.append(found)
    return files


# -- one count ------------------------------------------------------------------------------------


async def keep_busy(client: DockerClient, ids: list[str], seconds: int) -> None:
    """Start, in each container, a shell that starts ``sleep 1`` every second for ``seconds``."""
    semaphore = asyncio.Semaphore(CREATE_CONCURRENCY)
    script = f"i=0; while [ $i -lt {seconds} ]; do sleep 1; i=$((i+1)); done"

    async def one(container_id: str) -> None:
        async with semaphore:
            exec_id = await client.execs.create(container_id, ["sh", "-c", script], timeout=60)
            await client.request(
                "POST", f"/exec/{exec_id}/start", json={"Detach": True, "Tty": False}, timeout=60
            )

    await asyncio.gather(*(one(container_id) for container_id in ids))


def repeated_share(store: HistoryStore, ids: list[str], since: int) -> float:
    """The share of the samples after ``since`` of ``ids`` that repeat the one before them."""
    repeats = total = 0
    for container_id in ids:
        samples = store.query(container_id, since=since - 60) or []
        for before, sample in itertools.pairwise(samples):
            if sample.t > since:
                total += 1
                repeats += series_repeats(sample, before)
    return repeats / total if total else 0.0


async def measure_reconcile(mirror: ContainerMirror) -> list[Figure]:
    """The container view's reconcile, run in this process (CPU and wall time per pass), against
    re-reading every container (what each pass did before; the engine's CPU not counted)."""

    async def timed(step: Callable[[], Awaitable[None]], times: int) -> tuple[float, float]:
        cpu, wall = [], []
        for _ in range(times):
            cpu_started, started = time.process_time(), time.perf_counter()
            await step()
            cpu.append(time.process_time() - cpu_started)
            wall.append(time.perf_counter() - started)
        return statistics.median(cpu), statistics.median(wall)

    full_cpu, full_wall = await timed(mirror.resync, RECONCILE_FULL_READS)
    cpu, wall = await timed(mirror.reconcile, RECONCILE_PASSES)
    full = "re-reading every container"
    return [
        Figure("container view reconcile, CPU per pass", "ms", cpu * 1e3, full_cpu * 1e3, full),
        Figure("  the same, wall time", "s", wall, full_wall),
    ]


async def measure_sampler(sock: str, running: int, ticks: int, workdir: Path) -> list[Figure]:
    """The sampler in this process on every container of the engine: wall per tick, and CPU per
    running container against the floor (and, for comparison, against the same files read as
    the sampler reads them, kept open). And, on the same container view once it has read the
    engine (a first full read costs seconds at 1,000 containers), its reconcile."""
    source = CgroupSource.detect()
    if source is None:
        raise RuntimeError("no cgroup hierarchy at /sys/fs/cgroup: the cgroup source cannot run")
    async with DockerClient(sock, timeout=120) as client:
        mirror = ContainerMirror(client)
        following = asyncio.create_task(mirror.run())
        try:
            if not await mirror.wait_fresh(60):
                raise RuntimeError("the mirror did not read the engine within 60 s")
            reconcile = await measure_reconcile(mirror)
            clock = SimClock(steady_start(time.time()))
            directory = workdir / f"sampler-{running}"
            # As the service runs it (open_history): the disk's work in a writer thread.
            store = HistoryStore(directory, clock=clock, writer_thread=True)
            store.open()
            sampler = Sampler(
                client,
                store,
                interval_s=INTERVAL_S,
                call_timeout_s=60,
                clock=clock,
                mirror=mirror,
                cgroups=source,
                api_fallback=False,
            )
            for _ in range(2):  # warm-up: files found, histories and their files made
                clock.now += INTERVAL_S
                await sampler.tick()
            # The points of the buckets the warm-up closed are made when its samples are served,
            # after the writer wrote their lines: wait for it, then serve them (the maintenance
            # does), and wait for their day and week files to be made. Otherwise the first timed
            # tick makes every container's day and week file, which a tick in service does once
            # per container in 1,440 (day) and 5,760 (week).
            store.flush()
            store.maintain()  # and maintained once, as in service
            store.flush()
            ticks = timed_ticks(ticks)
            files = running_files(source.version, mirror)
            if not files:
                raise RuntimeError("no running container's cgroup files were found")
            busy = [str(f["Id"]) for f in mirror.all() if (f.get("State") or {}).get("Running")]
            await keep_busy(client, busy, int(ticks * 3 * PAUSE_S) + 15)  # (the timed ticks)
            await asyncio.sleep(1.5)  # every shell has started a sleep
            # Each timed tick is followed by one round of the floor, so that both see the same
            # machine (other work on it makes both vary by tens of percent within a minute).
            cgroup_before = sampler.cgroup_samples
            cpu = floor_total = held_total = 0.0
            walls = []
            timed_from = int(clock.now)
            for index in range(ticks):
                # Each of the three starts after the same pause, as a tick does in service
                # (other work has run since, and the caches are not warm from the one before).
                await asyncio.sleep(PAUSE_S)
                clock.now += INTERVAL_S
                cpu_started = time.process_time()
                started = time.perf_counter()
                await sampler.tick()
                walls.append(time.perf_counter() - started)
                if (index + 1) % MAINTAIN_TICKS == 0:
                    store.maintain()  # once a (simulated) minute, as the sampler's loop does
                store.flush()  # the writer thread's work for it counted too
                cpu += time.process_time() - cpu_started
                await asyncio.sleep(PAUSE_S)
                floor_total += cgroup_floor_s(files, 1)
                await asyncio.sleep(PAUSE_S)
                held_total += held_floor_s(files, 1)
            sampled_running = sampler.cgroup_samples - cgroup_before
            repeats = repeated_share(store, busy, timed_from)
            store.close()
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
    if not sampled_running:
        raise RuntimeError("the sampler read no running container's cgroup files")
    floor = floor_total / ticks
    per_sample = cpu / sampled_running
    wall = Figure(
        f"sampler tick ({len(mirror.all())} containers, {running} running)",
        "s",
        statistics.median(walls),
        goal="< 0.5 s",
    )
    wall.passed = wall.ours < 0.5
    cpu_figure = Figure(
        "sampler CPU per running container-sample",
        "ms",
        per_sample * 1e3,
        floor * 1e3,
        "reading the same files",
        "<= 1.5 x",
    )
    cpu_figure.passed = per_sample <= 1.5 * floor
    held_figure = Figure(
        "  the same, against the files kept open",
        "ms",
        per_sample * 1e3,
        held_total / ticks * 1e3,
        "reading the same files kept open, as the sampler does (pread)",
    )
    share = Figure("  running samples that repeated the one before", "%", repeats * 100)
    return [wall, cpu_figure, held_figure, share, *reconcile]


async def measure_count(
    args: argparse.Namespace,
    sock: str,
    peer: docker.DockerClient,
    ids: list[str],
    running: int,
    data_dir: Path,
    workdir: Path,
) -> Count:
    result = Count(len(ids), running, load_average())
    started = time.monotonic()
    # With a token, as an operator runs it: every request is checked, every log line redacted.
    token = secrets.token_hex(16)
    server = Server(sock, data_dir, workdir, f"dockerlink-{len(ids)}", {"api_token": token})
    try:
        await server.ready()
        client = RawClient(server.port, token)
        try:
            week = {"id": ids[-1], "scale": "week"}
            while True:
                status, _ = await client.get("/v1/container/stats", week)
                if status == 200:
                    break
                if time.monotonic() - started > 120:
                    raise RuntimeError(f"the first stats query answered {status}")
                await asyncio.sleep(0.05)
            startup = Figure("start-up until /health and a first query", "s", 0.0, goal="< 5 s")
            startup.ours = time.monotonic() - started
            startup.passed = startup.ours < 5
            result.figures.append(startup)
            log(f"  started in {startup.ours:.2f} s")

            # Until every container is listed (the server's mirror has read the engine).
            wanted = set(ids)
            for _ in range(600):
                _, body = await timed_get(client, "/v1/container", {})
                if wanted <= set(orjson.loads(body)["success"]):
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the server never listed every container")

            log("  GET /v1/container against docker-py list+inspect")
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(args.peer_rounds):
                for _ in range(args.requests // args.peer_rounds):
                    ours.append((await timed_get(client, "/v1/container", {}))[0])
                began = time.perf_counter()
                await asyncio.to_thread(peer.containers.list, all=True)
                theirs.append(time.perf_counter() - began)
            listing = Figure(
                "GET /v1/container p50",
                "ms",
                statistics.median(ours) * 1e3,
                statistics.median(theirs) * 1e3,
                "docker-py list+inspect",
                "< 5 ms, <= 0.01 x",
            )
            listing.passed = listing.ours < 5 and (listing.ratio or 1) <= 0.01
            result.figures.append(listing)

            log(f"  GET /v1/container/stats?scale=week x {args.week_requests}, another container")
            rng = random.Random(15)  # noqa: S311 - which containers to ask for, not a secret
            timings = []
            for _ in range(args.week_requests):
                params = {"id": rng.choice(ids), "scale": "week"}
                timings.append((await timed_get(client, "/v1/container/stats", params))[0])
            stats = Figure(
                "GET /v1/container/stats?scale=week p99",
                "ms",
                percentile(timings, 0.99) * 1e3,
                goal="< 10 ms",
            )
            stats.passed = stats.ours < 10
            result.figures.append(stats)
            inside = server_durations_ms(server.log_path, WEEK_LINE)[-args.week_requests :]
            if len(inside) != args.week_requests:
                raise RuntimeError(
                    f"{len(inside)} week queries found in the server's log "
                    f"({server.log_path}), {args.week_requests} asked: has its line changed?"
                )
            result.figures.append(
                Figure(
                    "  the same, inside the server (its request lines)",
                    "ms",
                    percentile(inside, 0.99),
                )
            )

            log(f"  GET /v1/container?id=X under wrk, {args.load_seconds} s, and bare Sanic")
            _, body = await timed_get(client, "/v1/container", {"id": ids[0]})
            url = f"http://127.0.0.1:{server.port}/v1/container?id={ids[0]}"
            with bare_sanic(body, workdir) as (port, pid):
                bare_url = f"http://127.0.0.1:{port}/v1/container?id={ids[0]}"
                rps, bare, ratios = await asyncio.to_thread(
                    interleaved_rps,
                    (url, server.process.pid),
                    (bare_url, pid),
                    max(1, args.load_seconds // LOAD_ROUND_S),
                    [f"Authorization: Bearer {token}"],  # (which the bare app never reads)
                )
            load = Figure(
                "GET /v1/container?id=X, median of pairs",
                "req/s",
                rps,
                bare,
                f"bare Sanic, same {len(body)} B body",
                ">= 0.7 x",
                pair_ratio=statistics.median(ratios),
            )
            load.passed = (load.ratio or 0) >= 0.7
            result.figures.append(load)
            low, high = median_interval(ratios)
            for label, value in (
                (f"the lowest of {len(ratios)} pairs' ratios", min(ratios)),
                ("the median's 95 % confidence interval, from", low),
                ("the median's 95 % confidence interval, to", high),
                (f"the highest of {len(ratios)} pairs' ratios", max(ratios)),
            ):
                result.figures.append(Figure(f"  {label}", "x", value))

            log("  the sampler, in this process")
            result.figures.extend(await measure_sampler(sock, running, args.ticks, workdir))

            log("  a week query for every container, then peak RSS")
            for container_id in ids:
                await timed_get(
                    client, "/v1/container/stats", {"id": container_id, "scale": "week"}
                )
            rss = Figure(
                f"peak RSS ({args.days} days of history each)",
                "MB",
                server.peak_rss_bytes() / 1e6,
                goal="< 150 MB",
            )
            rss.passed = rss.ours < 150
            result.figures.insert(0, rss)
        finally:
            client.close()
    finally:
        server.stop()
    result.load_after = load_average()
    return result


# -- the run --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], list[Count]]:
    sock = args.engine_sock
    run_id = uuid.uuid4().hex[:8]
    counts: list[Count] = []
    async with DockerClient(sock, timeout=120) as client:
        facts = await machine(client)
        stale = await remove_containers(client)
        if stale:
            log(f"removed {stale} containers an earlier run left behind")
        peer = docker.DockerClient(base_url=f"unix://{sock}", version="auto", timeout=300)
        ids: list[str] = []
        started: list[str] = []
        try:
            log(f"writing {args.days} days of history for one container")
            await asyncio.to_thread(
                write_histories, workdir / "one", workdir, ["be" * 32], args.days, int(time.time())
            )
            template = workdir / "one" / "stats" / ("be" * 32)
            data_dir = workdir / "data"
            for count in args.counts:
                began = time.monotonic()
                await create_containers(client, len(ids), count - len(ids), run_id, ids)
                created_s = time.monotonic() - began
                running = min(count, args.running)
                to_start = [i for i in ids[:running] if i not in started]
                began = time.monotonic()
                await start_containers(client, to_start)
                started.extend(to_start)
                log(
                    f"{count} containers: made in {created_s:.1f} s, started {len(to_start)} "
                    f"more in {time.monotonic() - began:.1f} s"
                )
                await asyncio.to_thread(copy_histories, template, data_dir / "stats", ids)
                counts.append(
                    await measure_count(args, sock, peer, ids, running, data_dir, workdir)
                )
                print_count(counts[-1], final=False)
        finally:
            peer.close()
            log("removing the benchmark's containers")
            removed = await asyncio.shield(remove_containers(client))
            log(f"  removed {removed}")
    return facts, counts


def print_count(count: Count, *, final: bool) -> None:
    print(
        f"\n{count.containers} containers ({count.running} running); load average "
        f"{count.load_before} at the start, {count.load_after} at the end"
    )
    header = f"  {'figure':56} {'ours':>10} {'baseline':>10} {'ratio':>7}  {'goal':18}"
    print(header + (" result" if final else ""))
    for figure in count.figures:
        base = f"{figure.baseline:10.4g}" if figure.baseline is not None else f"{'-':>10}"
        ratio = f"{figure.ratio:7.3f}" if figure.ratio is not None else f"{'-':>7}"
        verdict = {True: "PASS", False: "FAIL", None: ""}[figure.passed] if final else ""
        print(
            f"  {figure.name + ' (' + figure.unit + ')':56} {figure.ours:10.4g} {base} {ratio}  "
            f"{figure.goal:18} {verdict}"
        )
    names = sorted({f.baseline_name for f in count.figures if f.baseline_name})
    if names:
        print("  baselines: " + "; ".join(names))


def parse_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or counts[0] < 2:
        raise argparse.ArgumentTypeError("counts must be at least 2")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--counts",
        type=parse_counts,
        default=[50, 200, 1000],
        help="container counts, comma separated (default 50,200,1000)",
    )
    parser.add_argument(
        "--running", type=int, default=200, help="at most this many running (default 200)"
    )
    parser.add_argument("--days", type=int, default=7, help="days of history each (default 7)")
    parser.add_argument(
        "--requests", type=int, default=200, help="timed GET /v1/container requests (default 200)"
    )
    parser.add_argument(
        "--week-requests",
        type=int,
        default=1000,
        help="timed week queries, the p99 taken over them (default 1000: their 11th slowest)",
    )
    parser.add_argument(
        "--peer-rounds", type=int, default=4, help="docker-py list+inspect rounds (default 4)"
    )
    parser.add_argument(
        "--ticks",
        type=int,
        default=16,
        help="sampler ticks timed, rounded up to whole 2-minute buckets of 8 (default 16)",
    )
    parser.add_argument(
        "--load-seconds",
        type=int,
        default=60,
        help=f"wrk seconds for each server, in turns of {LOAD_ROUND_S} s (default 60)",
    )
    parser.add_argument(
        "--engine-sock",
        default=os.environ.get(
            "DOCKERLINK_TEST_DOCKER_SOCK", str(REPO / ".engine" / "docker.sock")
        ),
        help="the engine's socket (default: the private test engine)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("wrk is missing (apt-get install wrk; scripts/bench installs it)")
    with tempfile.TemporaryDirectory(prefix="dockerlink-bench-scale-") as workdir:
        facts, counts = asyncio.run(_main_task(args, Path(workdir)))
    print(
        f"\ndockerlink at scale: {', '.join(str(c.containers) for c in counts)} containers, "
        f"{args.days} days of history each"
    )
    print(
        f"machine: {facts['cpus']} CPUs ({facts['cpu_model']}), {facts['memory_gib']} GiB, "
        f"{facts['os']}, kernel {facts['kernel']}, Docker {facts['docker']}, cgroup "
        f"{facts['cgroup']}, Python {facts['python']}"
        f"; load average now {host_facts()['load_average']}"
    )
    for count in counts[:-1]:
        print_count(count, final=False)
    print_count(counts[-1], final=True)
    return 0 if all(f.passed is not False for f in counts[-1].figures) else 1


async def _main_task(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], list[Count]]:
    """``run``, cancelled on SIGTERM as on Ctrl-C, so that its ``finally`` removes the
    containers."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(args, workdir)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DockerError as exc:
        print(f"[bench scale] engine error: {exc.message}", file=sys.stderr)
        sys.exit(2)
