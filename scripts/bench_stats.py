"""``scripts/bench stats``: the stats history's cost on disk, in memory and per query.

One run:

1. Appends a simulated week of 15-second samples for one container to a HistoryStore (with a
   simulated clock ending now), and the same records to a naive baseline: one plain JSON object
   per sample and per line, in the route's own shape (``{"t": ..., "memory": {...}, ...}``).
2. Reports bytes per sample on disk: every byte the store wrote (all tiers, keyframes included,
   before retention deleted anything) over the samples appended, beside the naive file's.
3. Serves dockerlink in this process on a loopback port and measures p50/p99 of
   ``GET /v1/container/stats`` through HTTP for ``scale=week`` (7 days) and ``scale=instant``
   (the last 4 hours, 960 samples), first from the store, then with the app's history swapped
   for the naive baseline, which reads its file back whole on every query. Both answers are
   compared, so the speed is not bought with wrong figures.
4. Copies the container's files to ``--containers`` ids and loads them in a fresh interpreter:
   the resident memory of that many weeks of history, and the time to load them.

The simulated container (seeded, so runs compare): memory is a random walk around 300 MiB in
4 KiB pages with occasional jumps; CPU idles at a few percent with bursts up to 150 %; network
traffic is a few KiB per sample with occasional downloads of several MiB; once in the week it
is stopped for an hour and started again (counters reset).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
from sanic import Sanic

from dockerlink.app import create_app
from dockerlink.settings import Settings
from dockerlink.stats.resources import net_delta
from dockerlink.stats.series import Sample, aggregate, render_json
from dockerlink.stats.store import HistoryStore, tier_for_scale
from dockerlink.units import GIB, KIB_PER_GIB

CONTAINER = "be" * 32
DAY_S = 86400


# -- the simulated container --------------------------------------------------------------------


def simulate(start: int, count: int, interval_s: int, seed: int = 7) -> Iterator[Sample]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    mem_kib = 300 * 1024
    cpu_base = 3.0
    burst = 0
    up = down = 0
    stop_from = start + 3 * DAY_S + 2 * 3600
    stop_until = stop_from + 3600
    was_running = True
    for i in range(count):
        t = int(start + i * interval_s + rng.random())  # the tick's second, give or take one
        if stop_from <= t < stop_until:
            was_running = False
            yield Sample(t, 0, 2 * GIB, 0, 15000, 0, 0, 0, 0)
            continue
        if not was_running:
            up = down = 0  # started again: counters from zero
            was_running = True
        if rng.random() < 0.01:
            mem_kib += rng.choice([-1, 1]) * rng.randint(10, 80) * 1024
        mem_kib += 4 * round(rng.gauss(0, 64))
        mem_kib = min(max(mem_kib, 50 * 1024), 1900 * 1024)
        if burst == 0 and rng.random() < 0.005:
            burst = rng.randint(4, 40)
        cpu_base = min(max(cpu_base + rng.gauss(0, 0.3), 0.5), 10.0)
        percent = rng.uniform(60, 150) if burst else max(0.0, rng.gauss(cpu_base, 1.0))
        burst = max(burst - 1, 0)
        sent = int(rng.expovariate(1 / 12)) + (
            rng.randint(1024, 8192) if rng.random() < 0.01 else 0
        )
        got = int(rng.expovariate(1 / 30)) + (
            rng.randint(1024, 20480) if rng.random() < 0.01 else 0
        )
        new_up, new_down = up + sent, down + got
        yield Sample(
            t=t,
            mem_used_kib=mem_kib,
            mem_limit_bytes=2 * GIB,
            cpu_centi=round(percent * 100),
            cpu_limit_centi=15000,
            up_kib=new_up,
            down_kib=new_down,
            delta_up_kib=net_delta(up, new_up),
            delta_down_kib=net_delta(down, new_down),
        )
        up, down = new_up, new_down


class SimClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the naive baseline ---------------------------------------------------------------------------


def naive_record(sample: Sample) -> dict[str, Any]:
    """One sample as the route shows it, plus its timestamp: what a naive store would keep."""
    (entry,) = orjson.loads(render_json([sample.as_tuple()])).items()
    return {"t": int(entry[0]), **entry[1]}


def record_sample(record: dict[str, Any]) -> Sample:
    memory, cpu, net = record["memory"], record["cpu"], record["net"]
    return Sample(
        t=record["t"],
        mem_used_kib=round(memory["used"] * KIB_PER_GIB),
        mem_limit_bytes=round(memory["limit"] * GIB),
        cpu_centi=round(cpu["usage_percent"] * 100),
        cpu_limit_centi=round(cpu["limit"] * 100),
        up_kib=net["up"],
        down_kib=net["down"],
        delta_up_kib=net["delta_up"],
        delta_down_kib=net["delta_down"],
    )


class NaiveHistory:
    """Every sample as one JSON object per line, in one file read back whole for each query.

    It answers the route exactly like the store (same windows, same ``since``, same bucket
    points, computed from the records at query time).
    """

    def __init__(self, path: Path, container_id: str) -> None:
        self.path = path
        self.container_id = container_id

    def append(self, sample: Sample) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, orjson.dumps(naive_record(sample)) + b"\n")
        finally:
            os.close(fd)

    def __contains__(self, container_id: object) -> bool:
        return container_id == self.container_id

    def resolve_prefix(self, prefix: str) -> str | None:
        return self.container_id if prefix and self.container_id.startswith(prefix) else None

    def has_recent(self, container_id: str, scale: str = "instant") -> bool:
        return container_id == self.container_id

    def query_json(self, container_id: str, *, scale: str = "instant", since: float = 0.0) -> bytes:
        tier = tier_for_scale(scale)
        after = max(since, time.time() - tier.window_s)
        records = [orjson.loads(line) for line in self.path.read_bytes().splitlines()]
        if tier.resolution_s:
            points = aggregate((record_sample(r) for r in records), tier.resolution_s)
            records = [naive_record(p) for p in points]
        return orjson.dumps({str(r.pop("t")): r for r in records if r["t"] > after})


# -- serving --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RawClient:
    """A minimal HTTP/1.1 keep-alive client, so that the timings are the route's and the
    server's, not a client library's (httpx parsing a 160 KB answer in this same process adds
    about 2 ms)."""

    def __init__(self, port: int, token: str | None = None) -> None:
        """``token``: sent as a bearer token with every request."""
        self.port = port
        self.auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        target = str(httpx.URL(path, params=params))
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.auth}\r\n".encode()
        reused = self.streams is not None
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        writer.write(request)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            # A kept-alive connection the server closed while it was idle (its keep-alive
            # timeout): asked again on a new one, as HTTP clients do. Any other failure is one.
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            self.close()
            self.streams = None
            return await self.get(path, params)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        body = await reader.readexactly(int(headers["content-length"]))
        return int(lines[0].split(" ")[1]), body

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[Any, RawClient]]:
    """dockerlink in this event loop on a free loopback port, as the tests run it."""
    Sanic.test_mode = True
    settings = replace(settings, host="127.0.0.1", port=free_port())
    app = create_app(settings)
    server = await app.create_server(
        host=settings.host, port=settings.port, return_asyncio_server=True, access_log=False
    )
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    client = RawClient(settings.port)
    try:
        yield app, client
    finally:
        client.close()
        await server.before_stop()
        await server.close()
        await server.after_stop()


async def latency_ms(
    client: RawClient,
    params: dict[str, str],
    requests: int,
    before_each: Callable[[], None] = lambda: None,
) -> tuple[float, float, bytes]:
    """p50 and p99 of ``requests`` calls (after a warm-up), and the last answer."""
    body = b""
    for _ in range(max(requests // 10, 3)):
        _, body = await client.get("/v1/container/stats", params)
    timings = []
    for _ in range(requests):
        before_each()
        started = time.perf_counter()
        status, body = await client.get("/v1/container/stats", params)
        timings.append((time.perf_counter() - started) * 1000)
        assert status == 200, body
    timings.sort()
    p99 = timings[min(len(timings) - 1, round(len(timings) * 0.99) - 1)]
    return statistics.median(timings), p99, body


def same_answer(ours: bytes, naive: bytes) -> bool:
    """Same keys; figures equal within the rounding of the naive records' 6-decimal GiB."""
    a, b = orjson.loads(ours), orjson.loads(naive)
    if list(a) != list(b):
        return False
    for key, point in a.items():
        other = b[key]
        if point["net"] != other["net"] or point["cpu"]["limit"] != other["cpu"]["limit"]:
            return False
        if abs(point["memory"]["used"] - other["memory"]["used"]) > 2e-6:
            return False
        if abs(point["cpu"]["usage_percent"] - other["cpu"]["usage_percent"]) > 0.011:
            return False
    return True


# -- memory of many containers ------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_probe(root: Path, now: float) -> None:
    """Run in a fresh interpreter: RSS before and after loading every history under ``root``."""
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    store = HistoryStore(root, clock=lambda: now)
    store.open()
    elapsed = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    print(
        orjson.dumps(
            {
                "containers": len(store.container_ids()),
                "before": before,
                "after": after,
                "load_s": elapsed,
            }
        ).decode()
    )


def measure_rss(source: Path, containers: int, now: float, workdir: Path) -> dict[str, Any]:
    root = workdir / "many" / "stats"
    root.mkdir(parents=True)
    for n in range(containers):
        shutil.copytree(source, root / f"{n:064x}")
    probe = subprocess.run(
        [sys.executable, __file__, "--rss-probe", str(root), "--now", str(now)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = orjson.loads(probe.stdout)
    return result


# -- the run --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, workdir: Path) -> None:
    interval = args.interval
    end = int(time.time())
    start = end - args.days * DAY_S
    count = args.days * DAY_S // interval
    data_dir = workdir / "data"
    clock = SimClock(start)

    store = HistoryStore(data_dir / "stats", clock=clock)
    store.open()
    naive = NaiveHistory(workdir / "naive.jsonl", CONTAINER)
    ours_s = naive_s = 0.0
    for sample in simulate(start, count, interval):
        clock.now = sample.t
        began = time.perf_counter()
        store.append(CONTAINER, sample)
        ours_s += time.perf_counter() - began
        began = time.perf_counter()
        naive.append(sample)
        naive_s += time.perf_counter() - began
    history_dir = data_dir / "stats" / CONTAINER
    written = sum(p.stat().st_size for p in history_dir.iterdir())
    clock.now = end
    store.maintain()
    store.close()
    kept = sum(p.stat().st_size for p in history_dir.iterdir())
    naive_size = naive.path.stat().st_size
    ours_bps, naive_bps = written / count, naive_size / count

    logging.getLogger("dockerlink").setLevel(logging.CRITICAL)  # the sampler finds no engine
    settings = Settings(
        docker_sock=str(workdir / "no-engine.sock"), data_dir=data_dir, sample_interval=3600
    )
    results: dict[str, dict[str, tuple[float, float]]] = {}
    async with serve(settings) as (app, client):
        answers: dict[str, bytes] = {}
        for scale in ("week", "instant"):
            params = {"id": CONTAINER, "scale": scale}
            p50, p99, answers[scale] = await latency_ms(client, params, args.requests)
            results[scale] = {"ours": (p50, p99)}
        # The same 4-hour query with the store's rendered-answer cache emptied before each one:
        # what the first query for a container costs.
        cold = await latency_ms(
            client,
            {"id": CONTAINER, "scale": "instant"},
            args.requests,
            before_each=app.ctx.history.drop_rendered,
        )
        results["instant, uncached"] = {"ours": cold[:2]}
        instant_points = len(orjson.loads(answers["instant"]))
        week_points = len(orjson.loads(answers["week"]))
        ours_history = app.ctx.history
        app.ctx.history = naive
        try:
            for scale in ("week", "instant"):
                params = {"id": CONTAINER, "scale": scale}
                p50, p99, _ = await latency_ms(client, params, max(args.requests // 10, 20))
                results[scale]["naive"] = (p50, p99)
            # Both answer the same, queried back to back at a fixed ``since`` (the windows
            # slide with the clock between the timed runs).
            for scale in ("week", "instant"):
                since = int(time.time()) - tier_for_scale(scale).window_s + 1800
                params = {"id": CONTAINER, "scale": scale, "since": str(since)}
                app.ctx.history = naive
                _, naive_body = await client.get("/v1/container/stats", params)
                app.ctx.history = ours_history
                _, ours_body = await client.get("/v1/container/stats", params)
                assert same_answer(ours_body, naive_body), f"the naive {scale} answer differs"
        finally:
            app.ctx.history = ours_history

    rss = measure_rss(history_dir, args.containers, end, workdir)

    print(
        f"stats history benchmark: one container, {args.days} days at {interval} s = "
        f"{count} samples (simulated), {os.cpu_count()} CPUs"
    )
    print(f"{'':34}{'ours':>16}{'naive':>16}{'ours/naive':>12}")
    print(
        f"{'bytes per sample on disk':34}{ours_bps:>16.1f}{naive_bps:>16.1f}"
        f"{ours_bps / naive_bps:>12.2f}"
    )
    print(
        f"{'append, µs per sample':34}{ours_s / count * 1e6:>16.1f}{naive_s / count * 1e6:>16.1f}"
    )
    for scale, points in (
        ("week", week_points),
        ("instant", instant_points),
        ("instant, uncached", instant_points),
    ):
        ours, base = results[scale]["ours"], results[scale.split(",")[0]]["naive"]
        label = f"{scale} ({points}) p50/p99 ms"
        print(
            f"{label:34}{ours[0]:>8.2f}/{ours[1]:<7.2f}{base[0]:>8.2f}/{base[1]:<7.2f}"
            f"{ours[0] / base[0]:>12.3f}"
        )
    print(
        f"on disk after retention: {kept / 1024:.1f} KiB for the week "
        f"(written {written / 1024:.1f} KiB; naive keeps {naive_size / 1024:.1f} KiB)"
    )
    grown = (rss["after"] - rss["before"]) / 2**20
    print(
        f"memory: {rss['containers']} containers x {args.days} days loaded in "
        f"{rss['load_s']:.2f} s, RSS +{grown:.1f} MiB ({rss['after'] / 2**20:.1f} MiB in all)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench stats", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--days", type=int, default=7, help="simulated days (default 7)")
    parser.add_argument("--interval", type=int, default=15, help="seconds between samples")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per query")
    parser.add_argument("--containers", type=int, default=200, help="for the memory figure")
    parser.add_argument("--keep", type=Path, help="keep the files in this new directory")
    parser.add_argument("--rss-probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--now", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_probe:
        rss_probe(args.rss_probe, args.now)
        return 0
    if args.keep:
        args.keep.mkdir(parents=True)
        asyncio.run(run(args, args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="dockerlink-bench-") as workdir:
            asyncio.run(run(args, Path(workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
