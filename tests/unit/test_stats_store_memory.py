"""The memory a week of history takes per container, measured in a fresh interpreter.

Issue 15: 1,000 containers with a week of history each must fit a service under 150 MB; decoded
as a :class:`~dockerlink.stats.series.Series` a week took ~170 KB a container.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from dockerlink.stats.store import HistoryStore

from .clock import T0, Clock
from .test_stats_store_answers import CID, END, recorded_week

#: Two counts of containers: the difference of their memory is what the histories cost, the
#: store's bounded caches (full at both counts) aside.
COUNTS = (100, 400)
#: Bytes of resident memory a container's week may add, its week and 4 hours queried once.
MAX_PER_CONTAINER = 40_000

PROBE = """
import sys, orjson
from pathlib import Path
from dockerlink.stats.store import HistoryStore

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

root, now = Path(sys.argv[1]), float(sys.argv[2])
before = rss()
store = HistoryStore(root, clock=lambda: now)
store.open()
for container_id in store.container_ids():
    assert store.query_json(container_id, scale="week")
    assert store.query_json(container_id, scale="instant")
status = Path("/proc/self/status").read_text()
peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
print(orjson.dumps({"containers": len(store.container_ids()), "before": before,
                    "after": rss(), "peak": peak}).decode())
"""


def test_a_week_of_history_takes_little_memory_per_container(tmp_path: Path) -> None:
    template = tmp_path / "template"
    clock = Clock(T0)
    store = HistoryStore(template, clock=clock)
    store.open()
    for sample in recorded_week():
        clock.now = sample.t
        store.append(CID, sample)
    clock.now = END
    store.maintain()
    store.close()
    grown = []
    for count in COUNTS:
        root = tmp_path / f"many-{count}"
        for n in range(count):
            shutil.copytree(template / CID, root / f"{n:064x}")
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, str(root), str(END)],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        found = orjson.loads(probe.stdout)
        assert found["containers"] == count
        grown.append(max(found["after"], found["peak"]) - found["before"])
    per_container = (grown[1] - grown[0]) / (COUNTS[1] - COUNTS[0])
    assert per_container < MAX_PER_CONTAINER, f"{per_container:.0f} bytes a container"
