"""The history store's writer thread: no request waits on the disk, what is served is written,
nothing queued is lost at close, and a history that cannot be deleted is logged."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockerlink import journal
from dockerlink.settings import Settings
from dockerlink.stats import store as store_module
from dockerlink.stats.store import HistoryStore
from tests.conftest import serve, wait_for

from .clock import T0, Clock
from .fakes import GIB, fake_engine_client
from .test_stats_store import CID, OTHER, make_sample

#: How long the slow disk takes for each line.
SLOW_WRITE_S = 0.5
#: A request must answer in a fifth of that while the disk is busy.
FAST_ANSWER_S = SLOW_WRITE_S / 5


class SlowDisk:
    """Replaces the store's line writer: each line takes ``delay_s`` (or waits for ``gate``),
    and whether a line is being written right now is known (``busy``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.busy = 0
        self.lines = 0
        self.threads: set[str] = set()
        real = journal.write_lines

        def write_line(fd: int, line: bytes, path: str | Path) -> None:
            self.busy += 1
            self.threads.add(threading.current_thread().name)
            try:
                if self.delay_s:
                    time.sleep(self.delay_s)
                else:
                    self.gate.wait(10)
                real(fd, line, path)
                self.lines += 1
            finally:
                self.busy -= 1

        monkeypatch.setattr(store_module, "write_lines", write_line)


@pytest.fixture
def threaded(tmp_path: Path, clock: Clock) -> Iterator[HistoryStore]:
    history = HistoryStore(tmp_path / "stats", clock=clock, writer_thread=True)
    history.open()
    yield history
    history.close()


def test_a_sample_is_served_once_its_line_is_written(
    threaded: HistoryStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    disk = SlowDisk(monkeypatch)  # every line waits for the gate
    first, second = make_sample(T0, 0), make_sample(T0 + 15, 1)
    started = time.monotonic()
    assert threaded.append(CID, first)
    assert threaded.append(CID, second)
    assert time.monotonic() - started < FAST_ANSWER_S  # queued, not written
    # Not served before it is on disk (so a kill -9 cannot lose what was served) ...
    assert threaded.query(CID) is None
    assert CID not in threaded
    # ... but the sampler's next delta and the same-second rule already count it.
    assert threaded.last(CID) == second
    assert not threaded.append(CID, make_sample(T0 + 15, 2))
    disk.gate.set()
    threaded.flush()
    assert threaded.query(CID) == [first, second]
    assert disk.threads == {"dockerlink-stats-writer"}
    assert (tmp_path / "stats" / CID / f"raw-{T0}.jsonl").read_bytes().count(b"\n") == 2


async def test_written_waits_for_the_lines_without_blocking_the_loop(
    threaded: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = SlowDisk(monkeypatch)
    assert threaded.append(CID, make_sample(T0, 0))
    waiter = asyncio.create_task(threaded.written())
    await asyncio.sleep(0.05)  # the loop runs meanwhile
    assert not waiter.done()
    disk.gate.set()
    await asyncio.wait_for(waiter, 10)
    assert threaded.query(CID) == [make_sample(T0, 0)]


def test_close_writes_everything_queued(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    SlowDisk(monkeypatch, delay_s=0.01)
    history = HistoryStore(tmp_path / "stats", clock=clock, writer_thread=True)
    history.open()
    samples = [make_sample(T0 + 15 * i, i) for i in range(20)]
    for sample in samples:
        assert history.append(CID, sample)
    history.close()
    monkeypatch.undo()
    again = HistoryStore(tmp_path / "stats", clock=clock)
    again.open()
    assert again.query(CID) == samples
    again.close()


def test_delete_and_retention_only_queue_the_disk_work(
    threaded: HistoryStore, clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    disk = SlowDisk(monkeypatch)
    root = tmp_path / "stats"
    assert threaded.append(CID, make_sample(T0, 0))
    assert threaded.append(OTHER, make_sample(T0, 0))
    started = time.monotonic()
    threaded.delete(CID)
    assert not threaded.append(CID, make_sample(T0 + 30, 1))  # deleted: refused
    clock.now = T0 + 8 * 24 * 3600  # everything of OTHER has expired
    threaded.maintain()
    assert time.monotonic() - started < FAST_ANSWER_S
    disk.gate.set()
    threaded.flush()
    threaded.maintain()  # OTHER's sample is served now, and expired
    threaded.flush()
    assert not (root / CID).exists()
    assert not (root / OTHER).exists()
    assert threaded.container_ids() == []


def test_a_history_that_cannot_be_deleted_is_logged(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert store.append(CID, make_sample(T0, 0))
    real_unlink = os.unlink

    def refuse(path: Any, *args: Any, **kw: Any) -> None:
        if str(path).startswith("raw-"):
            raise PermissionError(13, "Permission denied", str(path))
        real_unlink(path, *args, **kw)

    monkeypatch.setattr(os, "unlink", refuse)
    with caplog.at_level(logging.WARNING, logger="dockerlink.stats"):
        store.delete(CID)
    monkeypatch.undo()
    assert f"stats history: cannot delete {store.root}/{CID}" in caplog.text
    assert "Permission denied" in caplog.text
    assert CID not in store


# -- over HTTP -------------------------------------------------------------------------------------

BOXES = [f"{n:x}" * 64 for n in range(1, 4)]


def engine(request: httpx.Request) -> httpx.Response:
    """Three stopped containers: a sample each per tick, with no stats call."""
    path = request.url.path
    if path.endswith("/containers/json"):
        return httpx.Response(200, json=[{"Id": box} for box in BOXES])
    for box in BOXES:
        if path.endswith(f"/containers/{box}/json"):
            return httpx.Response(
                200,
                json={
                    "Id": box,
                    "Name": f"/box{box[0]}",
                    "State": {"Running": False, "Status": "exited"},
                    "HostConfig": {"Memory": GIB // 2},
                    "Config": {"Labels": {}},
                },
            )
    return httpx.Response(404, json={"message": "not here"})


async def test_requests_never_wait_on_a_slow_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every line takes 0.5 s to write while the sampler appends three samples every 0.2 s: /health
    and a stats query still answer in under 0.1 s, while a line is being written."""
    settings = Settings(docker_sock="/fake.sock", data_dir=tmp_path / "data", sample_interval=0.2)
    now = int(time.time())
    stored = HistoryStore(settings.data_dir / "stats")  # a history to query, written beforehand
    stored.open()
    for i in range(1, 100):
        assert stored.append(BOXES[0], make_sample(now - 1000 + 10 * i, i))
    stored.close()
    disk = SlowDisk(monkeypatch, delay_s=SLOW_WRITE_S)
    docker = fake_engine_client(engine)
    timings: list[tuple[str, float]] = []
    async with serve(settings, docker=docker) as client:
        await wait_for(lambda: disk.busy, timeout=10, interval=0.01)
        for path in ["/health", f"/v1/container/stats?id={BOXES[0]}"] * 5:
            await wait_for(lambda: disk.busy, timeout=10, interval=0.01)
            lines_before = disk.lines
            started = time.monotonic()
            response = await client.get(path)
            elapsed = time.monotonic() - started
            # the same line was being written all along: the request ran beside a slow write
            overlapped = disk.busy and disk.lines == lines_before
            assert response.status_code == 200, response.text
            timings.append((path, elapsed))
            assert overlapped, "the request did not run while a line was being written"
        assert disk.threads == {"dockerlink-stats-writer"}
    await docker.close()
    slow = [(path, round(elapsed, 3)) for path, elapsed in timings if elapsed >= FAST_ANSWER_S]
    assert not slow, f"requests that waited on the disk ({SLOW_WRITE_S} s a line): {slow}"


def open_fds() -> set[str]:
    """The files this process has open now (their targets)."""
    fds = Path("/proc/self/fd")
    found = set()
    for fd in os.listdir(fds):
        try:
            found.add(os.readlink(fds / fd))
        except OSError:
            continue  # the directory's own fd, closed by now
    return found


@pytest.mark.parametrize("threaded", [False, True], ids=["inline", "writer thread"])
def test_raw_files_kept_open_hold_the_same_bytes_and_are_let_go(
    tmp_path: Path, threaded: bool
) -> None:
    """Raw files kept open for appending (within the budget) hold what files opened for each
    line hold, and each is closed when its hour ends, when it expires, when its container is
    deleted and when the store closes."""
    ids = [CID, OTHER, "c" * 64]

    def run(root: Path, held_files: int, check: bool) -> None:
        clock = Clock()
        history = HistoryStore(root, clock=clock, writer_thread=threaded, held_files=held_files)
        history.open()
        writer = history._writer
        for i in range(6 * 240 + 5):  # six hours and a bit, every 15 s
            clock.now = T0 + 15 * i
            for container_id in ids:
                history.append(container_id, make_sample(int(clock.now), i))
            # Served before the retention runs, as a tick 15 s apart would be (else which
            # files expire, and when buckets close, depends on the writer thread's pace).
            history.flush()
            if i % 4 == 0:
                history.maintain()
            if i == 3 * 240 + 2:
                history.delete(OTHER)
            if check and i in (10, 239, 240, 3 * 240 + 3, 6 * 240 + 4):
                history.flush()  # the points of the buckets that serving closed
                held = {p for p in open_fds() if p.startswith(str(root)) and p.endswith(".jsonl")}
                # one raw file per container within the budget: the current hour's
                assert writer.open_files == len(held) <= held_files, (i, held)
                hour = T0 + (15 * i) // 3600 * 3600
                assert held <= {str(root / c / f"raw-{hour}.jsonl") for c in ids}
                assert not any(str(root / OTHER) in path for path in held if i > 3 * 240 + 2)
        history.close()
        assert writer.open_files == 0
        assert not any(path.startswith(str(root)) for path in open_fds())  # .lock included

    run(tmp_path / "opened", 0, check=False)
    run(tmp_path / "held", 2, check=True)
    opened = sorted(p.relative_to(tmp_path / "opened") for p in (tmp_path / "opened").rglob("*"))
    held = sorted(p.relative_to(tmp_path / "held") for p in (tmp_path / "held").rglob("*"))
    assert opened == held
    assert any(p.name.startswith("raw-") for p in held)
    for relative in held:
        if (tmp_path / "held" / relative).is_file() and relative.name != ".lock":
            assert (tmp_path / "held" / relative).read_bytes() == (
                tmp_path / "opened" / relative
            ).read_bytes(), relative


def test_raw_files_of_containers_no_longer_sampled_are_closed(tmp_path: Path) -> None:
    """A container removed behind dockerlink's back gets no more samples: its raw file is not
    kept open until its hour ends or expires, but closed once it is stale (10 minutes)."""
    clock = Clock()
    history = HistoryStore(tmp_path / "stats", clock=clock, held_files=10)
    history.open()
    for i in range(60):  # 15 minutes; CID is removed after the first minute
        clock.now = T0 + 15 * i
        for container_id in [CID, OTHER] if i < 4 else [OTHER]:
            history.append(container_id, make_sample(int(clock.now), i))
        history.maintain()
        held = {p for p in open_fds() if p.startswith(str(tmp_path)) and p.endswith(".jsonl")}
        stale = clock.now - (T0 + 45) > store_module.STALE_FAILURE_S
        assert (str(tmp_path / "stats" / CID / f"raw-{T0}.jsonl") in held) is not stale, i
        assert history.open_files == len(held) == (1 if stale else 2)
    history.close()


def test_a_close_that_fails_still_lets_go_of_the_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The kernel frees a descriptor even when close() reports an error (a network filesystem's
    failed write-back): the writer must forget it, or a later open() given the same number
    would take this container's lines."""
    clock = Clock()
    history = HistoryStore(tmp_path / "stats", clock=clock, held_files=10)
    history.open()
    history.append(CID, make_sample(T0, 0))
    assert history.open_files == 1
    real_close = os.close

    def failing_close(fd: int) -> None:
        real_close(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "close", failing_close)
    clock.now = T0 + 3600  # a new hour: the old file is let go, the new one held
    history.append(CID, make_sample(T0 + 3600, 1))
    monkeypatch.undo()
    assert "Input/output error" in caplog.text
    assert history.open_files == 1
    # the new hour's line is in the new file, the old file holds only its own line
    assert (tmp_path / "stats" / CID / f"raw-{T0 + 3600}.jsonl").read_bytes().count(b"\n") == 1
    assert (tmp_path / "stats" / CID / f"raw-{T0}.jsonl").read_bytes().count(b"\n") == 1
    history.close()
    assert history.open_files == 0


def test_a_run_made_while_its_first_line_is_written_knows_its_newest_sample(
    threaded: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two repeated samples appended while the first of them is still being written: its run
    is made when it is served, and then knows the second as its newest, for last() (the
    dashboard's current figures) and the rule that a sample must be newer than the last."""
    first = make_sample(T0, 0)._replace(delta_up_kib=0, delta_down_kib=0)
    assert threaded.append(CID, first)
    threaded.flush()
    disk = SlowDisk(monkeypatch)  # the run's open line waits for the gate
    second, third = first._replace(t=T0 + 15), first._replace(t=T0 + 30)
    assert threaded.append(CID, second)
    assert threaded.append(CID, third)
    disk.gate.set()
    threaded.flush()
    assert threaded.last(CID) == third
    assert not threaded.append(CID, first._replace(t=T0 + 20))
    assert threaded.query(CID) == [first, second, third]
