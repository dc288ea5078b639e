"""``scripts/bench load``: concurrent clients of mixed reads against a real ``dockerlink serve``.

One run:

1. Starts ``dockerlink serve`` as its own process (a token set, ``data_dir`` in a temporary
   directory, sampling every ``--sample-interval`` seconds) against the engine at
   ``--docker-sock``, and creates ``--containers`` running containers through it from
   ``--image``, each with a git repository of one commit in its working directory.
2. Runs ``--clients`` clients in this process for ``--seconds`` seconds on loopback. Each client
   keeps one HTTP/1.1 keep-alive connection (a minimal client, so that the figures are the
   server's rather than a client library's) and sends one request after another, drawn from the
   mix: ``GET /v1/container``, ``GET /v1/container?id=X``, ``GET /v1/container/stats?id=X``,
   ``GET /health`` and ``GET /v1/git/head?id=X`` (a ``docker exec`` each, so the rarest). Git
   runs one command at a time per container, so at most ``--git-concurrency`` git requests are
   in flight: closed-loop clients would otherwise pile up in the git queue (with 200 clients,
   nearly all of them, waiting ~50 s each on a busy 2-CPU machine).
3. Reports requests served and per second, errors (a transport failure or any status but 200),
   p50 and p99 latency overall and per request kind, and from the server's ``/metrics``: the
   sampler's ticks during the load, the ticks that started more than 1 s after they were due,
   and the worst lateness.
4. Deletes its containers and stops the server.

``--json`` prints the report as one JSON object (tests/engine/test_load.py runs a short one).
Exit status 0 when there was no error and no late tick, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from docker_api import DockerClient, DockerError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = "dockerlink-test:latest"
#: Request kinds and their weights in the mix (``--mix``).
DEFAULT_MIX = "list=30,list_one=25,stats=30,health=10,git_head=5"
PORT_AREA_SIZE = 500
START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the server ------------------------------------------------------------------------------------


class Server:
    """``dockerlink serve`` in its own process; stopped by its own pid."""

    def __init__(self, workdir: Path, docker_sock: str, image: str, sample_interval: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        self.log_path = workdir / "dockerlink.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKERLINK_")}
        env.update(
            {
                "DOCKERLINK_DOCKER_SOCK": docker_sock,
                "DOCKERLINK_HOST": "127.0.0.1",
                "DOCKERLINK_PORT": str(self.port),
                "DOCKERLINK_API_TOKEN": self.token,
                "DOCKERLINK_DATA_DIR": str(workdir / "data"),
                "DOCKERLINK_SAMPLE_INTERVAL": str(sample_interval),
                "DOCKERLINK_BASE_IMAGE": image,
                "DOCKERLINK_PORT_AREA_SIZE": str(PORT_AREA_SIZE),
            }
        )
        command = [str(Path(sys.executable).with_name("dockerlink")), "serve"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def until_healthy(self, api: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"dockerlink exited at start; see {self.log_path}")
            with contextlib.suppress(httpx.TransportError):
                if (await api.get("/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"dockerlink not healthy within {START_TIMEOUT_S} s")
            await asyncio.sleep(0.1)

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


async def sampler_figures(api: httpx.AsyncClient) -> dict[str, float]:
    """The sampler's figures from ``/metrics``."""
    response = await api.get("/metrics")
    response.raise_for_status()
    wanted = {
        "dockerlink_sampler_ticks_total": "ticks",
        "dockerlink_sampler_late_ticks_total": "late_ticks",
        "dockerlink_sampler_max_lateness_seconds": "max_lateness_s",
        "dockerlink_sampler_tick_duration_seconds_sum": "tick_s_sum",
        "dockerlink_sampler_tick_duration_seconds_count": "tick_count",
    }
    figures = {}
    for line in response.text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            figures[wanted[name]] = float(value)
    return figures


# -- the containers --------------------------------------------------------------------------------


def host_ports_free(root: int) -> bool:
    """Nothing else on the host (another engine, a server) holds the block's published ports."""
    for port in (root + 22, root + 80, root + 443):
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


async def free_root(docker: DockerClient, taken: list[int], own_port: int) -> int:
    """A port block no container's block meets (others' blocks are taken to be 5000 long), nor
    the server's own port (dockerlink refuses such a block; the kernel gave that port, which
    can be anywhere)."""
    for summary in await docker.containers.list(all=True, filters={"label": ["ports"]}):
        label = (summary.get("Labels") or {}).get("ports", "")
        if label.isdigit():
            taken.append(int(label))
    for root in range(40000, 65536 - PORT_AREA_SIZE, PORT_AREA_SIZE):
        clear = all(other + 5000 <= root or root + PORT_AREA_SIZE <= other for other in taken)
        if clear and not root <= own_port < root + PORT_AREA_SIZE and host_ports_free(root):
            taken.append(root)
            return root
    raise SystemExit("no free port block on the engine")


async def make_containers(
    api: httpx.AsyncClient, docker: DockerClient, count: int, own_port: int
) -> list[str]:
    """Running containers, each with a one-commit git repository in its working directory."""
    ids: list[str] = []
    taken: list[int] = []
    prefix = f"dlbench-{secrets.token_hex(4)}"
    for i in range(count):
        body = {
            "name": f"{prefix}-{i}",
            "host_port_root": await free_root(docker, taken, own_port),
            "memory": 0.25,
            "cpulimit": 0.5,
        }
        created = await api.put("/v1/container", json=body)
        if created.status_code != 200:
            raise SystemExit(f"cannot create a container: {created.status_code} {created.text}")
        ids.append(created.json()["Id"])
        started = await api.post("/v1/container/start", params={"id": ids[-1]})
        if started.status_code != 204:
            raise SystemExit(f"cannot start a container: {started.status_code} {started.text}")
        result = await docker.execs.run(
            ids[-1],
            ["sh", "-c", "git init -q && git commit -q --allow-empty -m bench"],
            user="admin",
            workdir="/var/www/html",
            timeout=60,
        )
        if result.exit_code != 0:
            raise SystemExit(f"cannot make a git repository: {result.text()}")
    return ids


async def remove_containers(api: httpx.AsyncClient, ids: list[str]) -> None:
    for container_id in ids:
        with contextlib.suppress(httpx.HTTPError):
            await api.post("/v1/container/stop", params={"id": container_id, "t": "0"})
            await api.delete("/v1/container", params={"id": container_id})


# -- the load --------------------------------------------------------------------------------------


class Connection:
    """One HTTP/1.1 keep-alive connection; GET only, answers with a Content-Length."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.auth = f"Authorization: Bearer {token}\r\n"
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        try:
            writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.auth}\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            self.close()  # the connection's state is unknown: start a new one next time
            raise
        return int(lines[0].split(" ")[1]), body

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


@dataclass
class Tally:
    latencies_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    #: git requests in flight, and how often a client drew git but took another kind instead.
    git_in_flight: int = 0
    git_redrawn: int = 0

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {what}")


def parse_mix(text: str) -> dict[str, int]:
    """``kind=weight,...`` -> weights, every kind one of :func:`targets`' keys."""
    mix = {}
    for item in text.split(","):
        kind, _, weight = item.partition("=")
        if kind not in targets([]) or not weight.isdigit():
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected KIND=WEIGHT, KIND in {DEFAULT_MIX}"
            )
        mix[kind] = int(weight)
    return mix


def targets(ids: list[str]) -> dict[str, list[str]]:
    return {
        "list": ["/v1/container"],
        "list_one": [f"/v1/container?id={cid}" for cid in ids],
        "stats": [f"/v1/container/stats?id={cid}" for cid in ids],
        "health": ["/health"],
        "git_head": [f"/v1/git/head?id={cid}" for cid in ids],
    }


async def client(
    connection: Connection,
    paths: dict[str, list[str]],
    until: float,
    rng: random.Random,
    tally: Tally,
    mix: dict[str, int],
    git_limit: int,
) -> None:
    kinds, weights = list(mix), list(mix.values())
    others = [kind for kind in kinds if kind != "git_head"]
    other_weights = [mix[kind] for kind in others]
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        if kind == "git_head" and tally.git_in_flight >= git_limit:
            tally.git_redrawn += 1
            kind = rng.choices(others, other_weights)[0]
        target = rng.choice(paths[kind])
        git = kind == "git_head"
        tally.git_in_flight += git
        started = time.monotonic()
        try:
            status, body = await connection.get(target)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.error(kind, f"{type(exc).__name__}: {exc}")
            continue
        finally:
            tally.git_in_flight -= git
        tally.latencies_s[kind].append(time.monotonic() - started)
        if status != 200:
            tally.error(kind, f"{status} {body[:200]!r}")
    connection.close()


def percentile_ms(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(len(ordered) * fraction) - 1))
    return round(ordered[index] * 1000, 2)


async def load(server: Server, ids: list[str], args: argparse.Namespace) -> Tally:
    tally = Tally()
    paths = targets(ids)
    rng = random.Random(args.seed)  # noqa: S311 - a reproducible mix, not a secret
    until = time.monotonic() + args.seconds
    connections = [Connection(server.port, server.token) for _ in range(args.clients)]
    await asyncio.gather(
        *(
            client(
                connection,
                paths,
                until,
                random.Random(rng.random()),  # noqa: S311
                tally,
                args.mix,
                args.git_concurrency,
            )
            for connection in connections
        )
    )
    return tally


# -- one run ---------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    async with DockerClient(args.docker_sock, timeout=5) as docker:
        try:
            await docker.ping()
        except DockerError as exc:
            raise SystemExit(
                f"no engine at {args.docker_sock} ({exc.message}); run scripts/engine up"
            ) from None
    server = Server(workdir, args.docker_sock, args.image, args.sample_interval)
    ids: list[str] = []
    try:
        async with (
            httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60) as api,
            DockerClient(args.docker_sock, timeout=60) as docker,
        ):
            await server.until_healthy(api)
            ids = await make_containers(api, docker, args.containers, server.port)
            for container_id in ids:  # sampled once at least: the stats route has its history
                await api.get("/v1/container/stats", params={"id": container_id})
            before = await sampler_figures(api)
            started = time.monotonic()
            tally = await load(server, ids, args)
            elapsed = time.monotonic() - started
            after = await sampler_figures(api)
            alive = server.process.poll() is None
            await remove_containers(api, ids)
    finally:
        exit_status = server.stop()
    every = [value for values in tally.latencies_s.values() for value in values]
    served = len(every)
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "containers": len(ids),
        "requests": served + sum(tally.errors.values()),
        "served": served,
        "per_second": round(served / elapsed, 1),
        "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(tally.errors),
        "error_examples": tally.examples,
        "p50_ms": percentile_ms(every, 0.50) if every else None,
        "p99_ms": percentile_ms(every, 0.99) if every else None,
        "by_kind": {
            kind: {
                "served": len(values),
                "p50_ms": percentile_ms(values, 0.50),
                "p99_ms": percentile_ms(values, 0.99),
            }
            for kind, values in sorted(tally.latencies_s.items())
        },
        "sample_interval_s": args.sample_interval,
        "mix": args.mix,
        "git_concurrency": args.git_concurrency,
        "git_redrawn": tally.git_redrawn,
        "ticks": int(after["ticks"] - before["ticks"]),
        "late_ticks": int(after["late_ticks"] - before["late_ticks"]),
        "max_lateness_s": round(after["max_lateness_s"], 3),
        "mean_tick_s": round(
            (after["tick_s_sum"] - before["tick_s_sum"])
            / max(after["tick_count"] - before["tick_count"], 1),
            3,
        ),
        "server_alive": alive,
        "server_exit_status": exit_status,
        "log_tail": (
            server.log_path.read_text(errors="replace")[-3000:] if tally.errors or not alive else ""
        ),
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"{report['clients']} clients for {report['seconds']} s on loopback, "
        f"{report['containers']} containers, sampling every {report['sample_interval_s']} s"
    )
    print(f"  requests served  {report['served']} ({report['per_second']}/s)")
    print(f"  errors           {report['errors']} {report['errors_by_kind'] or ''}")
    for example in report["error_examples"]:
        print(f"    {example}")
    print(f"  latency          p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms")
    print(
        f"  git              at most {report['git_concurrency']} in flight "
        f"({report['git_redrawn']} draws of git sent as another kind)"
    )
    for kind, figures in report["by_kind"].items():
        print(
            f"    {kind:<10} {figures['served']:>7} served, "
            f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms"
        )
    print(
        f"  sampler          {report['ticks']} ticks during the load, "
        f"{report['late_ticks']} late (> 1 s), worst lateness {report['max_lateness_s']} s, "
        f"mean tick {report['mean_tick_s']} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench load", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (200)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the load (30)")
    parser.add_argument("--containers", type=int, default=2, help="containers to read (2)")
    parser.add_argument(
        "--docker-sock",
        default=os.environ.get(
            "DOCKERLINK_TEST_DOCKER_SOCK", str(REPO / ".engine" / "docker.sock")
        ),
        help="the engine (default: DOCKERLINK_TEST_DOCKER_SOCK, else scripts/engine's)",
    )
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"with git ({DEFAULT_IMAGE})")
    parser.add_argument(
        "--sample-interval", type=float, default=1.0, help="the server's sample_interval (1)"
    )
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default=DEFAULT_MIX,
        help=f"request kinds and weights ({DEFAULT_MIX})",
    )
    parser.add_argument(
        "--git-concurrency",
        type=int,
        default=16,
        help="most git requests in flight at once; a client that draws git beyond it sends "
        "another kind (16; git runs one at a time per container, so with 200 clients the "
        "queue would otherwise hold nearly all of them)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the request mix (7)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockerlink-bench-load-") as workdir:
        report = asyncio.run(run(args, Path(workdir)))
        if args.json:
            print(orjson.dumps(report).decode())
        else:
            print_report(report)
        if report["log_tail"]:
            print(f"the server's log ends with:\n{report['log_tail']}", file=sys.stderr)
    return 0 if report["errors"] == 0 and report["late_ticks"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
