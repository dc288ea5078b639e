"""Runs of repeated samples (a stopped container's): kept as one line on disk and one in memory,
answered as every sample, through restarts and crashes."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockerlink.stats import store as store_module
from dockerlink.stats.series import Sample, aggregate, render_json
from dockerlink.stats.store import RAW, SCALES, HistoryStore

from .clock import T0, Clock
from .test_stats_store import make_sample

CID = "a" * 64
OTHER = "b" * 64


def scenario(rng: random.Random, phases: list[tuple[bool, int]], start: int = T0) -> list[Sample]:
    """Samples every 15 s (or 16: the tick's second), in phases of changing figures (False) and
    of a stopped container's repeated ones (True), ``count`` samples each."""
    samples: list[Sample] = []
    t = start
    for idle, count in phases:
        for _ in range(count):
            t += 15 + rng.randint(0, 1)
            if idle and samples:
                samples.append(samples[-1]._replace(t=t, delta_up_kib=0, delta_down_kib=0))
            else:
                samples.append(make_sample(t, len(samples) + 1))
    return samples


PHASES = [(False, 20), (True, 700), (False, 30), (True, 300), (False, 10), (True, 500)]


def expected(samples: list[Sample], scale: str, now: float, since: float = 0) -> list[Sample]:
    tier = SCALES[scale]
    points = samples if tier is RAW else aggregate(samples, tier.resolution_s)
    after = max(since, now - tier.window_s)
    return [point for point in points if point.t > after]


def check(store: HistoryStore, clock: Clock, samples: list[Sample], cid: str = CID) -> None:
    store.flush()
    for scale in ("instant", "day", "week"):
        for since in (0, clock.now - 3000):
            want = expected(samples, scale, clock.now, since)
            assert store.query(cid, scale=scale, since=since) == want, (scale, since)
            assert store.query_json(cid, scale=scale, since=since) == render_json(want)


def opened(root: Path | None, clock: Clock, writer_thread: bool) -> HistoryStore:
    store = HistoryStore(root, clock=clock, writer_thread=writer_thread)
    store.open()
    return store


@pytest.fixture(params=[False, True], ids=["caller", "writer thread"])
def writer_thread(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture(params=[False, True], ids=["append", "repeat_many"])
def repeat_many(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def feed(
    store: HistoryStore,
    clock: Clock,
    samples: list[Sample],
    cid: str = CID,
    repeat_many: bool = False,
) -> Iterator[int]:
    """Append each sample as the sampler does (maintenance once a minute); yields indices.
    ``repeat_many``: hand a sample that repeats the one before to it, as the sampler does."""
    next_maintain = samples[0].t + 60
    for index, sample in enumerate(samples):
        clock.now = sample.t
        before = samples[index - 1] if index else None
        if repeat_many and before is not None and sample[1:] == (*before[1:7], 0, 0):
            assert store.repeat_many([(cid, tuple(sample[1:]))], sample.t) == 1
        else:
            assert store.append(cid, sample)
        if sample.t >= next_maintain:
            store.maintain()
            next_maintain = sample.t + 60
        yield index


def test_runs_are_answered_as_their_samples(
    tmp_path: Path, clock: Clock, writer_thread: bool, repeat_many: bool
) -> None:
    samples = scenario(random.Random(1), PHASES)
    root = tmp_path / "stats"
    store = opened(root, clock, writer_thread)
    for index in feed(store, clock, samples, repeat_many=repeat_many):
        if index % 97 == 0 or index in (20, 21, 719, 720, 721, 1049):
            check(store, clock, samples[: index + 1])
    store.close()
    store = opened(root, clock, writer_thread)
    check(store, clock, samples)
    store.close()


def test_a_stopped_hour_is_three_lines_on_disk(tmp_path: Path, clock: Clock) -> None:
    """A keyframe, the open repeat line, and the closed one, where there was a line a sample."""
    samples = scenario(random.Random(2), [(False, 5), (True, 1000)])
    root = tmp_path / "stats"
    store = opened(root, clock, False)
    for _ in feed(store, clock, samples):
        pass
    store.close()
    raw = sorted((root / CID).glob("raw-*.jsonl"))
    assert len(raw) >= 4
    for path in raw[1:-1]:  # whole hours of the run
        lines = path.read_bytes().splitlines()
        assert len(lines) == 3, lines
        assert lines[0].startswith(b"{") and lines[1] == b'["="]' and lines[2].startswith(b'["=",')


def test_a_run_cut_by_a_crash_is_read_back_from_the_tick_log(
    tmp_path: Path, clock: Clock, writer_thread: bool, repeat_many: bool
) -> None:
    """The files as a kill -9 leaves them (copied while the store runs): every sample served
    before is there after the restart, and the next process goes on in the same files."""
    samples = scenario(random.Random(3), PHASES)
    root = tmp_path / "stats"
    store = opened(root, clock, writer_thread)
    cut = 400  # in the first long run, in its second hour
    for _ in feed(store, clock, samples[:cut], repeat_many=repeat_many):
        pass
    store.flush()
    crashed = tmp_path / "crashed"
    shutil.copytree(root, crashed)
    store.close()
    again = opened(crashed, clock, writer_thread)
    check(again, clock, samples[:cut])
    for index in feed(again, clock, samples[cut:], repeat_many=repeat_many):
        if index % 151 == 0:
            check(again, clock, samples[: cut + index + 1])
    again.close()
    third = opened(crashed, clock, writer_thread)
    check(third, clock, samples)
    third.close()


def test_a_container_no_longer_sampled_ends_its_run(tmp_path: Path, clock: Clock) -> None:
    """After a crash, its run is not stretched over the ticks of the others' runs."""
    rng = random.Random(4)

    def at_ticks(samples: list[Sample]) -> list[Sample]:  # the same tick times for both
        return [sample._replace(t=T0 + 15 * (i + 1)) for i, sample in enumerate(samples)]

    ours = at_ticks(scenario(rng, [(False, 3), (True, 40)]))
    theirs = at_ticks(scenario(rng, [(False, 3), (True, 80)]))
    root = tmp_path / "stats"
    store = opened(root, clock, False)
    for index, sample in enumerate(theirs):
        clock.now = sample.t
        if index < len(ours):
            assert store.append(CID, ours[index])
        elif index == len(ours):
            store.end_run(CID)
        assert store.append(OTHER, sample)
    crashed = tmp_path / "crashed"
    shutil.copytree(root, crashed)
    store.close()
    again = opened(crashed, clock, False)
    assert again.query(CID) == expected(ours, "instant", clock.now)
    assert again.query(OTHER) == expected(theirs, "instant", clock.now)
    again.close()


def test_a_store_in_memory_answers_runs(clock: Clock, repeat_many: bool) -> None:
    samples = scenario(random.Random(5), PHASES[:4])
    store = opened(None, clock, False)
    for index in feed(store, clock, samples, repeat_many=repeat_many):
        if index % 211 == 0:
            check(store, clock, samples[: index + 1])
    check(store, clock, samples)


def test_last_and_latest_follow_a_run(
    tmp_path: Path, clock: Clock, writer_thread: bool, repeat_many: bool
) -> None:
    samples = scenario(random.Random(6), [(False, 4), (True, 30)])
    store = opened(tmp_path / "stats", clock, writer_thread)
    for index in feed(store, clock, samples, repeat_many=repeat_many):
        store.flush()
        assert store.last(CID) == samples[index]
        assert store.latest() == [(CID, samples[index])]
    store.close()


def test_samples_are_refused_as_before_during_a_run(tmp_path: Path, clock: Clock) -> None:
    samples = scenario(random.Random(7), [(False, 2), (True, 5)])
    store = opened(tmp_path / "stats", clock, False)
    for _ in feed(store, clock, samples):
        pass
    assert not store.append(CID, samples[-1])  # not newer than the last
    assert not store.append(CID, samples[-2]._replace(t=samples[-1].t))
    store.close()


def test_repeat_many_hands_what_does_not_repeat_to_append_many(
    tmp_path: Path, clock: Clock
) -> None:
    """Figures other than the last sample's, a time not newer, a deleted container, a container
    never seen: each is what append_many makes of that sample."""
    samples = scenario(random.Random(8), [(False, 2), (True, 3)])
    store = opened(tmp_path / "stats", clock, False)
    for _ in feed(store, clock, samples, repeat_many=True):
        pass
    last = samples[-1]
    figures = tuple(last[1:])
    assert store.repeat_many([(CID, figures)], last.t) == 0  # not newer
    other = (last.mem_used_kib + 1, *figures[1:])
    assert store.repeat_many([(CID, other)], last.t + 15) == 1  # taken, as another sample
    assert (store.query(CID) or [])[-1] == Sample(last.t + 15, *other)
    assert store.repeat_many([(OTHER, figures)], last.t + 15) == 1  # a first sample
    assert store.query(OTHER) == [Sample(last.t + 15, *figures)]
    store.delete(OTHER)
    assert store.repeat_many([(OTHER, figures)], last.t + 30) == 0
    assert store.query(OTHER) is None
    store.close()


def fleet_ticks(
    rng: random.Random, ids: list[str], ticks: int
) -> Iterator[tuple[int, dict[str, Sample | None]]]:
    """Ticks of a fleet of mostly stopped containers, as the sampler sees them: at each, each
    container's sample; a stopped one's figures stay, and now and then one starts, stops or
    is skipped. Yields (t, {id: sample or None})."""
    t = T0
    figures = {cid: make_sample(t, n + 1) for n, cid in enumerate(ids)}
    stopped = dict.fromkeys(ids, True)
    for _ in range(ticks):
        t += 15 + (1 if rng.random() < 0.1 else 0)
        row: dict[str, Sample | None] = {}
        for n, cid in enumerate(ids):
            if rng.random() < 0.003:
                stopped[cid] = not stopped[cid]
            if rng.random() < 0.002:
                row[cid] = None  # not sampled at this tick
            elif stopped[cid]:
                row[cid] = figures[cid]._replace(t=t, delta_up_kib=0, delta_down_kib=0)
            else:
                figures[cid] = make_sample(t, n + 1 + int(t % 977))
                row[cid] = figures[cid]
        yield t, row


@pytest.mark.parametrize(("seed", "ride_ticks"), [(11, None), (12, 7)])
def test_a_ride_answers_and_writes_what_runs_taken_one_by_one_do(
    tmp_path: Path,
    clock: Clock,
    writer_thread: bool,
    seed: int,
    ride_ticks: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sampler hands its stopped containers' repeats as the same list at every tick while
    none changes: the store then keeps them as one ride. A twin store given a new list at every
    tick (every run taken one by one) answers and writes the same, through queries, the
    maintenance, hours' ends, a deletion, a restart and a copy of the files mid-ride (a crash);
    and with rides cut short (``ride_ticks``)."""
    if ride_ticks is not None:
        monkeypatch.setattr(store_module, "RIDE_TICKS", ride_ticks)
    rng = random.Random(seed)
    ids = [f"{n:02x}" * 32 for n in range(12)]
    roots = {name: tmp_path / name / "stats" for name in ("ride", "twin")}
    twin_clock = Clock(T0)
    stores = {"ride": opened(roots["ride"], clock, writer_thread)}
    stores["twin"] = opened(roots["twin"], twin_clock, writer_thread)
    kept: list[tuple[str, tuple[int, ...]]] = []
    deleted: set[str] = set()

    def answers(name: str, store: HistoryStore) -> dict[str, bytes | None]:
        store.flush()
        return {
            f"{cid} {scale}": store.query_json(cid, scale=scale)
            for cid in ids
            for scale in ("instant", "day", "week")
        }

    for index, (t, row) in enumerate(fleet_ticks(rng, ids, 900)):
        clock.now = twin_clock.now = t
        repeats: list[tuple[str, tuple[int, ...]]] = []
        for cid, sample in row.items():
            if sample is None or cid in deleted:
                continue
            last = stores["twin"].last(cid)
            if last is not None and sample[1:] == (*last[1:7], 0, 0):
                same = next((item for item in kept if item[0] == cid), None)
                repeats.append(
                    same if same and same[1] == tuple(sample[1:]) else (cid, tuple(sample[1:]))
                )
            else:
                for store in stores.values():
                    store.append(cid, sample)
        if len(repeats) == len(kept) and all(a is b for a, b in zip(repeats, kept, strict=True)):
            repeats = kept  # the very list again: a tick of the ride
        kept = repeats
        for name, store in stores.items():
            if repeats:
                given = repeats if name == "ride" else list(repeats)
                assert store.repeat_many(given, t) == len(repeats)
            if index % 4 == 3:
                store.maintain()
        if index % 50 == 7:  # a dashboard: the newest of each, and one chart
            assert stores["ride"].latest() == stores["twin"].latest()
            cid = rng.choice(ids)
            for store in stores.values():
                store.flush()  # (what a query finds served depends on the writer's pace)
            assert stores["ride"].query_json(cid) == stores["twin"].query_json(cid)
        if index == 400:
            gone = ids[3]
            deleted.add(gone)
            for store in stores.values():
                store.delete(gone)
        if index == 500:  # a copy of the files as a kill -9 leaves them
            copies = {}
            for name, store in stores.items():
                store.flush()
                copies[name] = tmp_path / f"{name}-copy" / "stats"
                shutil.copytree(roots[name], copies[name])
            reopened = {name: opened(copies[name], clock, False) for name in stores}
            assert answers("ride", reopened["ride"]) == answers("twin", reopened["twin"])
            for store in reopened.values():
                store.close()
        if index == 650:
            for name in stores:
                stores[name].close()
                stores[name] = opened(
                    roots[name], clock if name == "ride" else twin_clock, writer_thread
                )
            kept = []
        if index % 111 == 0 or index == 899:
            assert answers("ride", stores["ride"]) == answers("twin", stores["twin"]), index
    for store in stores.values():
        store.close()
    for path in sorted(roots["twin"].rglob("raw-*.jsonl")):
        assert (roots["ride"] / path.relative_to(roots["twin"])).read_bytes() == path.read_bytes()


def test_a_container_deleted_during_a_ride_is_not_sampled_again(
    tmp_path: Path, clock: Clock, writer_thread: bool
) -> None:
    """Deleted while its run rides, and still in the list handed at the next tick (the sampler
    had not looked again): refused as a deleted container's sample is, nothing written."""
    root = tmp_path / "stats"
    store = opened(root, clock, writer_thread)
    first = [make_sample(T0 + 15, n)._replace(delta_up_kib=0, delta_down_kib=0) for n in (1, 2)]
    repeats = [(cid, tuple(sample[1:])) for cid, sample in zip((CID, OTHER), first, strict=True)]
    clock.now = T0 + 15
    for cid, sample in zip((CID, OTHER), first, strict=True):
        store.append(cid, sample)
    for n in range(2, 6):  # the second tick starts the ride, the others are ticks of it
        clock.now = T0 + 15 * n
        assert store.repeat_many(repeats, T0 + 15 * n) == 2
    store.delete(OTHER)
    clock.now = T0 + 90
    assert store.repeat_many(repeats, T0 + 90) == 1
    store.flush()
    assert store.query(OTHER) is None
    assert not (root / OTHER).exists()
    kept = store.query(CID)
    assert kept is not None and [sample.t for sample in kept] == [T0 + 15 * n for n in range(1, 7)]
    store.close()


def test_a_store_in_memory_rides_too(clock: Clock) -> None:
    ids = [f"{n:02x}" * 32 for n in range(3)]
    store = opened(None, clock, False)
    samples = {
        cid: make_sample(T0, n)._replace(delta_up_kib=0, delta_down_kib=0)
        for n, cid in enumerate(ids)
    }
    clock.now = T0
    for cid, sample in samples.items():
        store.append(cid, sample)
    repeats = [(cid, tuple(sample[1:])) for cid, sample in samples.items()]
    times = [T0 + 15 * n for n in range(1, 41)]
    for t in times:
        clock.now = t
        assert store.repeat_many(repeats, t) == 3
        if t == times[20]:  # a look at one ends the ride; the next ticks start another
            assert [s.t for s in store.query(ids[1]) or []] == [T0, *times[:21]]
    for cid, sample in samples.items():
        assert store.query(cid) == [sample._replace(t=t) for t in (T0, *times)]
        assert store.last(cid) == sample._replace(t=times[-1])
