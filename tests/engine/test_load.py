"""200 concurrent clients of mixed reads: no error, and no sampler tick more than 1 s late.

Runs ``scripts/bench_load.py`` (what ``scripts/bench load`` runs for 30 s) for 5 s: a real
``dockerlink serve`` in its own process, two running containers with a git repository, and 200
keep-alive clients in the bench's process sending ``GET /v1/container``, ``?id=``, stats,
``/health`` and ``/v1/git/head`` (at most 8 git requests at once: git runs one command at a time
per container, and the queue would otherwise take every client). The figures go to the terminal
summary.
"""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from ..conftest import REPO
from ..summary import report

CLIENTS = 200
SECONDS = 5


def test_200_clients_get_no_error_and_the_sampler_keeps_time(
    engine_sock: str, pytestconfig: pytest.Config
) -> None:
    command = [
        sys.executable,
        str(REPO / "scripts" / "bench_load.py"),
        "--clients", str(CLIENTS),
        "--seconds", str(SECONDS),
        "--sample-interval", "0.5",
        "--git-concurrency", "8",
        "--docker-sock", engine_sock,
        "--json",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    figures = orjson.loads(done.stdout.strip().splitlines()[-1])
    report(
        pytestconfig,
        f"load: {figures['clients']} clients, {figures['served']} requests served in "
        f"{figures['seconds']} s, {figures['errors']} errors, p50 {figures['p50_ms']} ms, "
        f"p99 {figures['p99_ms']} ms; sampler: {figures['ticks']} ticks, "
        f"{figures['late_ticks']} late, worst lateness {figures['max_lateness_s']} s",
        *(
            f"  {kind}: {k['served']} served, p50 {k['p50_ms']} ms, p99 {k['p99_ms']} ms"
            for kind, k in figures["by_kind"].items()
        ),
    )
    assert figures["errors"] == 0, (figures["error_examples"], figures["log_tail"])
    assert figures["server_alive"], figures["log_tail"]
    assert set(figures["by_kind"]) == {"list", "list_one", "stats", "health", "git_head"}
    assert figures["served"] >= 1000
    assert figures["ticks"] >= SECONDS  # sampling every 0.5 s went on under the load
    assert figures["late_ticks"] == 0, figures["max_lateness_s"]
    assert done.returncode == 0, done.stderr[-3000:]
