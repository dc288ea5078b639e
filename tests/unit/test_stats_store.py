"""HistoryStore: tiers, retention, restarts and torn lines, with an injected clock."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockerlink.stats import store as store_module
from dockerlink.stats.codec import decode_lines
from dockerlink.stats.series import Sample, aggregate, render_json
from dockerlink.stats.store import DAY, RAW, WEEK, HistoryStore, StoreLocked

from .clock import T0, Clock

GIB = 1 << 30
CID = "a" * 64
OTHER = "b" * 64


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "stats"


@pytest.fixture
def store(root: Path, clock: Clock) -> Iterator[HistoryStore]:
    history = HistoryStore(root, clock=clock)
    history.open()
    yield history
    history.close()


def make_sample(t: int, i: int) -> Sample:
    """A deterministic, varying sample (network totals grow, so deltas are the differences)."""
    return Sample(
        t=t,
        mem_used_kib=50_000 + (i * 37) % 900,
        mem_limit_bytes=2 * GIB,
        cpu_centi=(i * 131) % 10_000,
        cpu_limit_centi=15_000,
        up_kib=3 * i,
        down_kib=5 * i,
        delta_up_kib=3 if i else 0,
        delta_down_kib=5 if i else 0,
    )


def feed(store: HistoryStore, clock: Clock, start: int, count: int, step: int = 15) -> list[Sample]:
    """Append ``count`` samples every ``step`` seconds from ``start``, the clock following."""
    samples = []
    for i in range(count):
        t = start + i * step
        clock.now = t
        sample = make_sample(t, (t - T0) // step)
        assert store.append(CID, sample)
        samples.append(sample)
    return samples


def files(root: Path | None, tier: str) -> list[str]:
    assert root is not None, "a store on disk"
    return sorted(p.name for p in (root / CID).glob(f"{tier}-*.jsonl"))


# -- instant ----------------------------------------------------------------------------------


def test_instant_answers_every_sample_of_the_last_four_hours(
    store: HistoryStore, clock: Clock
) -> None:
    samples = feed(store, clock, T0, 5 * 240)  # five hours at 15 s
    answered = store.query(CID)
    assert answered is not None
    assert answered == [s for s in samples if s.t > clock.now - 4 * 3600]
    assert len(answered) == 960


def test_since_keeps_samples_strictly_newer(store: HistoryStore, clock: Clock) -> None:
    samples = feed(store, clock, T0, 20)
    middle = samples[9].t
    assert store.query(CID, since=middle) == samples[10:]
    assert store.query(CID, since=middle - 0.5) == samples[9:]
    assert store.query(CID, since=samples[-1].t) == []
    assert store.query(CID, since=0) == samples


def test_unknown_container_has_no_history(store: HistoryStore) -> None:
    assert store.query(OTHER) is None
    assert store.query_json(OTHER) is None
    assert OTHER not in store


def test_a_sample_in_the_same_second_is_refused(store: HistoryStore) -> None:
    assert store.append(CID, make_sample(T0, 0))
    assert not store.append(CID, make_sample(T0, 1))
    assert not store.append(CID, make_sample(T0 - 5, 1))
    assert store.query(CID, since=0) == [make_sample(T0, 0)]


# -- tiers ------------------------------------------------------------------------------------


def test_day_and_week_points_summarise_time_buckets(store: HistoryStore, clock: Clock) -> None:
    start = T0 + 7  # not aligned on a bucket
    samples = feed(store, clock, start, 400)
    day = store.query(CID, scale="day")
    week = store.query(CID, scale="week")
    assert day == aggregate(samples, 120)
    assert week == aggregate(samples, 1200)
    # Buckets are by time: each day point holds the samples of one t // 120.
    assert [p.t // 120 for p in day] == sorted({s.t // 120 for s in samples})
    first_bucket = [s for s in samples if s.t // 120 == samples[0].t // 120]
    point = day[0]
    assert point.t == first_bucket[-1].t
    mean_cpu = sum(s.cpu_centi for s in first_bucket) / len(first_bucket)
    assert point.cpu_centi == int(mean_cpu + 0.5)  # halves round up
    assert point.delta_up_kib == sum(s.delta_up_kib for s in first_bucket)
    assert point.up_kib == first_bucket[-1].up_kib


def test_scale_defaults_to_instant(store: HistoryStore, clock: Clock) -> None:
    feed(store, clock, T0, 30)
    assert store.query(CID, scale="hour") == store.query(CID, scale="instant")
    assert store.query(CID, scale="4hours") == store.query(CID)


def test_the_open_bucket_is_answered_as_a_provisional_point(
    store: HistoryStore, clock: Clock
) -> None:
    samples = feed(store, clock, T0, 3)  # all in the first 2-minute bucket
    day = store.query(CID, scale="day")
    assert day == aggregate(samples, 120)
    assert not files(store.root, "day")  # written only once the bucket closes
    week = store.query(CID, scale="week", since=samples[-1].t)
    assert week == []


def test_a_bucket_closes_when_its_time_is_over(store: HistoryStore, clock: Clock) -> None:
    samples = feed(store, clock, T0, 4)
    clock.now = T0 + 120
    store.maintain()
    assert files(store.root, "day") == [f"day-{T0}.jsonl"]
    assert store.root is not None
    data = (store.root / CID / f"day-{T0}.jsonl").read_bytes()
    assert list(decode_lines(data.split(b"\n"))) == aggregate(samples, 120)


def test_a_restart_does_not_shift_the_tiers(root: Path, tmp_path: Path, clock: Clock) -> None:
    """The same samples, with restarts in the middle of buckets, give the same points."""
    steady = HistoryStore(tmp_path / "steady", clock=clock)
    steady.open()
    restarted = HistoryStore(root, clock=clock)
    restarted.open()
    rng = random.Random(4)
    t = T0 + 3
    for i in range(1500):
        t += 15
        clock.now = t
        sample = make_sample(t, i)
        steady.append(CID, sample)
        restarted.append(CID, sample)
        if rng.random() < 0.02:
            restarted.close()
            restarted = HistoryStore(root, clock=clock)
            restarted.open()
    for scale in ("instant", "day", "week"):
        assert restarted.query_json(CID, scale=scale) == steady.query_json(CID, scale=scale)
    restarted.close()
    steady.close()
    for tier in ("day", "week"):
        for name in files(root, tier):
            data = (root / CID / name).read_bytes()
            steady_data = (tmp_path / "steady" / CID / name).read_bytes()
            assert list(decode_lines(data.split(b"\n"))) == list(
                decode_lines(steady_data.split(b"\n"))
            )


def test_points_lost_in_a_crash_are_rebuilt_from_raw(root: Path, clock: Clock) -> None:
    store = HistoryStore(root, clock=clock)
    store.open()
    samples = feed(store, clock, T0, 200)
    expected = store.query_json(CID, scale="day")
    store.close()
    for name in files(root, "day") + files(root, "week"):
        (root / CID / name).unlink()  # as if the process died before writing them
    store = HistoryStore(root, clock=clock)
    store.open()
    assert store.query_json(CID, scale="day") == expected
    assert store.query(CID, scale="week") == aggregate(samples, 1200)
    assert files(root, "day")  # written again
    store.close()


# -- restarts and torn lines --------------------------------------------------------------------


def test_reopening_serves_the_same_history(root: Path, clock: Clock) -> None:
    store = HistoryStore(root, clock=clock)
    store.open()
    feed(store, clock, T0, 700)
    answers = {scale: store.query_json(CID, scale=scale) for scale in ("instant", "day", "week")}
    store.close()
    again = HistoryStore(root, clock=clock)
    again.open()
    for scale, answer in answers.items():
        assert again.query_json(CID, scale=scale) == answer
    again.close()


def test_a_torn_last_line_is_read_without_error_and_cut_before_appending(
    root: Path, clock: Clock
) -> None:
    store = HistoryStore(root, clock=clock)
    store.open()
    samples = feed(store, clock, T0, 10)
    store.close()
    raw = root / CID / f"raw-{T0}.jsonl"
    with raw.open("ab") as f:
        f.write(b"[15,-3,1")  # a crash in the middle of a write
    store = HistoryStore(root, clock=clock)
    store.open()
    assert store.query(CID) == samples
    more = feed(store, clock, samples[-1].t + 15, 3)
    store.close()
    data = raw.read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    assert all(line.startswith((b"{", b"[")) and line.endswith((b"}", b"]")) for line in lines)
    assert list(decode_lines(lines)) == samples + more


def test_a_file_of_one_torn_line_is_emptied(root: Path, clock: Clock) -> None:
    (root / CID).mkdir(parents=True)
    raw = root / CID / f"raw-{T0}.jsonl"
    raw.write_bytes(b'{"t":17642')
    store = HistoryStore(root, clock=clock)
    store.open()
    assert store.query(CID) == []
    samples = feed(store, clock, T0 + 15, 2)
    assert list(decode_lines(raw.read_bytes().split(b"\n"))) == samples
    store.close()


def test_appending_after_a_restart_starts_with_a_keyframe(root: Path, clock: Clock) -> None:
    store = HistoryStore(root, clock=clock)
    store.open()
    feed(store, clock, T0, 3)
    store.close()
    store = HistoryStore(root, clock=clock)
    store.open()
    feed(store, clock, T0 + 45, 2)
    store.close()
    lines = (root / CID / f"raw-{T0}.jsonl").read_bytes().split(b"\n")
    assert [line[:1] for line in lines if line] == [b"{", b"[", b"[", b"{", b"["]


def test_one_process_per_root(root: Path, store: HistoryStore, clock: Clock) -> None:
    with pytest.raises(StoreLocked, match="in use by another process"):
        HistoryStore(root, clock=clock).open()


# -- retention ----------------------------------------------------------------------------------


def test_retention_deletes_whole_files_past_each_window(
    root: Path, store: HistoryStore, clock: Clock
) -> None:
    feed(store, clock, T0, 8 * 24 * 60, step=60)  # eight days at one sample a minute
    store.maintain()
    now = clock.now
    for tier in (RAW, DAY, WEEK):
        starts = [int(name.split("-")[1].split(".")[0]) for name in files(root, tier.name)]
        assert starts, tier
        assert min(starts) + tier.file_period_s > now - tier.window_s, tier
        assert min(starts) - tier.file_period_s <= now - tier.window_s, tier  # nothing more
    assert len(files(root, "raw")) <= 5
    assert len(files(root, "day")) <= 5
    assert len(files(root, "week")) <= 8
    instant = store.query(CID)
    assert instant is not None
    assert instant[0].t > now - 4 * 3600
    assert len(instant) == 4 * 60


def test_memory_is_trimmed_to_the_windows(store: HistoryStore, clock: Clock) -> None:
    feed(store, clock, T0, 6 * 60, step=60)  # six hours
    store.maintain()
    history = store._histories[CID]
    assert len(history.tracks["raw"].series) == 4 * 60


def test_a_removed_container_keeps_its_history_until_it_expires(
    root: Path, store: HistoryStore, clock: Clock
) -> None:
    samples = feed(store, clock, T0, 100)
    clock.now = samples[-1].t + 3 * 3600  # no more samples: the container is gone
    store.maintain()
    assert store.query(CID) == [s for s in samples if s.t > clock.now - 4 * 3600]
    assert store.query(CID, scale="week")
    clock.now = samples[-1].t + 8 * 24 * 3600
    store.maintain()
    assert CID not in store
    assert not (root / CID).exists()


def test_delete_removes_the_history_and_refuses_late_samples(
    root: Path, store: HistoryStore, clock: Clock
) -> None:
    samples = feed(store, clock, T0, 10)
    store.delete(CID)
    assert CID not in store
    assert not (root / CID).exists()
    assert not store.append(CID, make_sample(samples[-1].t + 15, 11))  # a sample in flight
    assert not (root / CID).exists()


def test_reads_by_prefix(store: HistoryStore, clock: Clock) -> None:
    feed(store, clock, T0, 1)
    store.append(OTHER, make_sample(T0, 0))
    assert store.resolve_prefix("aaaa") == CID
    assert store.resolve_prefix("b") == OTHER
    assert store.resolve_prefix("c") is None
    assert store.resolve_prefix("") is None


def test_has_recent_follows_each_window(store: HistoryStore, clock: Clock) -> None:
    feed(store, clock, T0, 1)
    assert store.has_recent(CID, "instant")
    clock.now = T0 + 5 * 3600
    store.maintain()
    assert not store.has_recent(CID, "instant")
    assert store.has_recent(CID, "day")
    assert store.has_recent(CID, "week")
    assert not store.has_recent(OTHER, "week")


def test_only_full_ids_are_stored(store: HistoryStore) -> None:
    with pytest.raises(ValueError, match="full container id"):
        store.append("../etc", make_sample(T0, 0))
    with pytest.raises(ValueError, match="full container id"):
        store.delete("abc")


@pytest.mark.parametrize("writer_thread", [False, True], ids=["inline", "writer thread"])
def test_append_many_records_what_append_does(
    tmp_path: Path, clock: Clock, writer_thread: bool
) -> None:
    """A tick's batch gives the same files and answers as one append at a time: samples of
    several containers interleaved over hours (buckets and files closing), a sample in the same
    second refused, a deleted container's refused, and an id that is not a full one left out."""
    one, many = (
        HistoryStore(tmp_path / name, clock=clock, writer_thread=writer_thread)
        for name in ("one", "many")
    )
    one.open()
    many.open()
    third = "c" * 64
    try:
        taken_one = taken_many = 0
        for tick in range(3 * 240):  # 3 hours of 15-second ticks
            t = T0 + tick * 15
            clock.now = t
            batch = [(CID, make_sample(t, tick)), (OTHER, make_sample(t - tick % 2, 2 * tick))]
            if tick < 100 or tick > 110:  # stopped, then sampled again: a keyframe
                batch.append((third, make_sample(t, tick // 3)))
            if tick == 7:
                batch.append((CID, make_sample(t, tick + 1)))  # the same second: refused
                batch.append(("../etc", make_sample(t, tick)))  # not a container id
            if tick == 500:
                for store in (one, many):
                    store.delete(OTHER)
            taken_one += sum(one.append(cid, sample) for cid, sample in batch if cid != "../etc")
            taken_many += many.append_many(batch)
            if tick % 20 == 0:
                one.maintain()
                many.maintain()
        for _ in range(2):  # a sample served by the first flush may close a bucket: its point
            one.flush()  # is written by the second
            many.flush()
        assert taken_many == taken_one == 3 * 240 + 500 + 720 - 11
        for cid in (CID, third):
            for scale in ("instant", "day", "week"):
                assert many.query_json(cid, scale=scale) == one.query_json(cid, scale=scale)
        written = {
            p.relative_to(tmp_path / "one"): p.read_bytes()
            for p in (tmp_path / "one").rglob("*.jsonl")
        }
        assert len(written) > 6
        assert {
            p.relative_to(tmp_path / "many"): p.read_bytes()
            for p in (tmp_path / "many").rglob("*.jsonl")
        } == written
    finally:
        one.close()
        many.close()


def test_steady_samples_cost_under_32_bytes_on_disk(
    root: Path, store: HistoryStore, clock: Clock
) -> None:
    feed(store, clock, T0, 2000)
    size = sum(os.path.getsize(p) for p in (root / CID).iterdir())
    assert size / 2000 < 32


def test_the_rendered_cache_always_matches_a_fresh_render(
    store: HistoryStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = 2 * 300  # room for two containers' four hours at one sample a minute, not three
    monkeypatch.setattr(store_module, "HOT_ENTRIES", budget)
    hot, cold = [CID, OTHER], "c" * 64

    def check(container_id: str) -> None:
        rows = store.rows(container_id)
        assert rows is not None
        assert store.query_json(container_id) == render_json(rows)
        since = rows[len(rows) // 2][0] if rows else 0
        expected = render_json(store.rows(container_id, since=since) or [])
        assert store.query_json(container_id, since=since) == expected
        cached = sum(len(entries) for entries in store._rendered.values())
        assert store._rendered_entries == cached <= budget

    t = T0
    for step in range(6 * 60):  # six hours of a sample a minute, three containers
        t += 60
        clock.now = t
        for n, container_id in enumerate([*hot, cold]):
            store.append(container_id, make_sample(t, step + n))
        if step % 7 == 0:
            for container_id in hot:  # stays cached while samples are appended and trimmed
                check(container_id)
        if step % 41 == 0:
            store.maintain()
        if step % 50 == 0:
            check(cold)  # once all three hold hours of samples, this evicts one
    assert set(store._rendered) < {*hot, cold}
    store.delete(cold)
    assert cold not in store._rendered
    check(CID)


def test_a_history_larger_than_the_cache_is_rendered_each_time(
    store: HistoryStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "HOT_ENTRIES", 10)
    feed(store, clock, T0, 20)
    assert store.query_json(CID) == render_json(store.rows(CID) or [])
    assert not store._rendered
