"""The stats route's answers, byte for byte, for a recorded week of history.

``stats_week_answers.json.xz`` holds the answers that the store gave for this generated week
before its in-memory representation changed (the commit that added the file): every scale, with
and without ``since``, at a moment in the middle of the week, at its end, after a restart (the
history read back from disk), and after more samples once restarted. Any change to how the store
keeps, loads or renders history must give the same bytes.

To write the file again (only when the answers are meant to change)::

    python -m tests.unit.test_stats_store_answers
"""

from __future__ import annotations

import lzma
import random
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from dockerlink.stats import store as store_module
from dockerlink.stats.series import Sample
from dockerlink.stats.store import HistoryStore

from .clock import T0, Clock

FIXTURE = Path(__file__).with_name("stats_week_answers.json.xz")
CID = "c0" * 32
GIB = 1 << 30
DAY_S = 86400
INTERVAL_S = 15
#: Where the answers are taken: in the middle of a week bucket, on day 2; and at the end.
MIDDLE = T0 + 2 * DAY_S + 37 * 60 + 7
END = T0 + 7 * DAY_S + 2 * 3600 + 11 * 60


def recorded_week() -> Iterator[Sample]:
    """A week and two hours of 15-second samples, with what a real one holds: a random walk of
    memory, CPU bursts, traffic, a stop (zero usage, counters reset on the next start), a limit
    change, an hour when nothing was sampled (dockerlink down), and counters past 2**32 KiB."""
    rng = random.Random(15)  # a reproducible recording
    mem, cpu, up, down = 300 * 1024, 300, 0, 0
    limit, cpu_limit = 2 * GIB, 15_000
    stop_from, stop_until = T0 + DAY_S + 5 * 3600, T0 + DAY_S + 6 * 3600 + 120
    gap_from, gap_until = T0 + 4 * DAY_S + 3 * 3600, T0 + 4 * DAY_S + 4 * 3600 + 600
    resize_at = T0 + 5 * DAY_S + 7 * 3600 + 333
    huge_from = T0 + 6 * DAY_S
    t = T0
    running = True
    while t <= END:
        t += INTERVAL_S
        at = t + rng.randint(0, 1)  # the tick's second, give or take one
        if gap_from <= at < gap_until:
            continue
        if stop_from <= at < stop_until:
            running = False
            yield Sample(at, 0, limit, 0, cpu_limit, 0, 0, 0, 0)
            continue
        if not running:
            up = down = 0
            running = True
        if at >= resize_at:
            limit, cpu_limit = 3 * GIB, 20_000
        if at >= huge_from and up < 1 << 33:
            up, down = up + (1 << 33), down + (1 << 32) + 5
        mem = min(max(mem + 4 * rng.randint(-60, 60), 40 * 1024), 1900 * 1024)
        burst = rng.random() < 0.01
        cpu = rng.randint(6000, 15000) if burst else max(0, cpu + rng.randint(-40, 40))
        sent, got = rng.randint(0, 30), rng.randint(0, 90)
        yield Sample(at, mem, limit, cpu, cpu_limit, up + sent, down + got, sent, got)
        up, down = up + sent, down + got


def answers(store: HistoryStore, clock: Clock, label: str) -> dict[str, str]:
    store.flush()  # with a writer thread: every sample appended so far is served
    found = {}
    for scale in ("instant", "day", "week"):
        for since in (0, int(clock.now) - 5000):
            body = store.query_json(CID, scale=scale, since=since)
            assert body is not None
            found[f"{label} {scale} since={'now-5000' if since else 0}"] = body.decode()
    return found


def record(root: Path, *, writer_thread: bool = False) -> dict[str, str]:
    """Feed the recorded week to a store on ``root`` as the sampler would (maintenance once a
    minute), and collect the answers."""
    clock = Clock(T0)
    store = HistoryStore(root, clock=clock, writer_thread=writer_thread)
    store.open()
    found: dict[str, str] = {}
    next_maintain = T0 + 60
    after_restart: list[Sample] = []
    for sample in recorded_week():
        if sample.t > END - 1800:
            after_restart.append(sample)
            continue
        clock.now = sample.t
        assert store.append(CID, sample)
        if sample.t >= next_maintain:
            store.maintain()
            next_maintain = sample.t + 60
        if sample.t <= MIDDLE < sample.t + INTERVAL_S + 2:
            clock.now = MIDDLE
            found.update(answers(store, clock, "middle"))
    clock.now = END - 1800
    found.update(answers(store, clock, "before restart"))
    store.close()
    store = HistoryStore(root, clock=clock, writer_thread=writer_thread)
    store.open()
    found.update(answers(store, clock, "restarted"))
    for sample in after_restart:
        clock.now = sample.t
        assert store.append(CID, sample)
        if sample.t >= next_maintain:
            store.maintain()
            next_maintain = sample.t + 60
    clock.now = END
    found.update(answers(store, clock, "end"))
    store.close()
    return found


@pytest.mark.parametrize(
    ("decoded_samples", "writer_thread"),
    [(store_module.DECODED_SAMPLES, False), (1, False), (store_module.DECODED_SAMPLES, True)],
)
def test_answers_are_those_of_the_recorded_week(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoded_samples: int, writer_thread: bool
) -> None:
    """With the store's cache of decoded history, with (almost) none (every query then decodes
    the lines kept in memory), and with the writer thread the service uses."""
    monkeypatch.setattr(store_module, "DECODED_SAMPLES", decoded_samples)
    expected = orjson.loads(lzma.decompress(FIXTURE.read_bytes()))
    found = record(tmp_path / "stats", writer_thread=writer_thread)
    assert list(found) == list(expected)
    for key, body in found.items():
        assert body == expected[key], f"{key}: the answer differs"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        FIXTURE.write_bytes(lzma.compress(orjson.dumps(record(Path(workdir) / "stats"))))
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
