"""HistoryStore on a disk that refuses writes: samples kept in memory, files never broken, and
one log line when the outage begins and one when it ends, however writes interleave; the same
whether the caller writes or the store's writer thread does."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockerlink import journal
from dockerlink.stats import store as store_module
from dockerlink.stats.codec import decode_lines
from dockerlink.stats.store import STALE_FAILURE_S, HistoryStore

from .clock import T0, Clock
from .test_stats_store import CID, OTHER, make_sample

CANNOT_WRITE = "stats history: cannot write under"
WRITING_AGAIN = "stats history: writing under"


class Disk:
    """Replaces the store's line writer: lines for the ``full`` containers fail with ENOSPC,
    after writing ``torn_bytes`` of the line (a short write, as a full filesystem does)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full: set[str] = set()
        self.torn_bytes = 0
        real = journal.write_lines

        def write_line(fd: int, line: bytes, path: str | Path) -> None:
            if Path(path).parent.name in self.full:
                os.write(fd, line[: self.torn_bytes])
                raise OSError(errno.ENOSPC, "No space left on device")
            real(fd, line, path)

        monkeypatch.setattr(store_module, "write_lines", write_line)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    return Disk(monkeypatch)


@pytest.fixture(params=["inline", "writer thread"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[HistoryStore]:
    history = HistoryStore(
        tmp_path / "stats", clock=clock, writer_thread=request.param == "writer thread"
    )
    history.open()
    yield history
    history.close()


def tick(store: HistoryStore, clock: Clock, i: int, *containers: str) -> None:
    clock.now = T0 + 15 * i
    for container_id in containers:
        assert store.append(container_id, make_sample(int(clock.now), i))
    store.flush()


def test_one_line_per_outage_while_other_files_still_take_lines(
    store: HistoryStore, clock: Clock, disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dockerlink.stats")
    tick(store, clock, 0, CID, OTHER)
    disk.full.add(CID)  # OTHER's file still has room in its last block
    for i in range(1, 10):
        tick(store, clock, i, CID, OTHER)
    assert caplog.text.count(CANNOT_WRITE) == 1
    assert WRITING_AGAIN not in caplog.text
    assert len(store.query(CID) or []) == 10  # kept in memory, and served
    disk.full.clear()
    for i in range(10, 13):
        tick(store, clock, i, CID, OTHER)
    assert caplog.text.count(WRITING_AGAIN) == 1
    disk.full.add(OTHER)  # a second outage is logged again
    tick(store, clock, 13, CID, OTHER)
    assert caplog.text.count(CANNOT_WRITE) == 2


def test_a_short_write_never_breaks_the_file(
    store: HistoryStore, clock: Clock, disk: Disk, tmp_path: Path
) -> None:
    for i in range(3):
        tick(store, clock, i, CID)
    disk.full.add(CID)
    disk.torn_bytes = 5
    tick(store, clock, 3, CID)  # half a line lands, then ENOSPC
    raw = tmp_path / "stats" / CID / f"raw-{T0}.jsonl"
    assert not raw.read_bytes().endswith(b"\n")
    reader = HistoryStore(tmp_path / "copy", clock=clock)  # a reader meanwhile skips the tail
    (tmp_path / "copy" / CID).mkdir(parents=True)
    (tmp_path / "copy" / CID / raw.name).write_bytes(raw.read_bytes())
    reader.open()
    assert [s.t for s in reader.query(CID) or []] == [T0, T0 + 15, T0 + 30]
    reader.close()
    disk.full.clear()
    tick(store, clock, 4, CID)
    data = raw.read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    assert [s.t for s in decode_lines(lines)] == [T0, T0 + 15, T0 + 30, T0 + 60]
    assert lines[-1].startswith(b"{")  # a keyframe after the repair


def test_an_outage_of_a_container_no_longer_sampled_is_not_waited_on(
    store: HistoryStore, clock: Clock, disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dockerlink.stats")
    disk.full.add(CID)
    tick(store, clock, 0, CID, OTHER)  # CID's write fails, then CID is never sampled again
    disk.full.clear()
    for i in range(1, 2 + STALE_FAILURE_S // 15):
        tick(store, clock, i, OTHER)
    store.maintain()
    disk.full.add(OTHER)
    tick(store, clock, 100, OTHER)
    assert caplog.text.count(CANNOT_WRITE) == 2  # a new outage, logged
