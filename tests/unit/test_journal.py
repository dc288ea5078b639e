"""journal.Appender: whole lines, a torn tail cut before this process first appends to a file."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from dockerlink import journal
from dockerlink.journal import Appender
from dockerlink.stats.series import Sample
from dockerlink.stats.store import HistoryStore

from .clock import Clock


def test_a_torn_tail_is_cut_once_then_lines_are_appended_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "folder" / "queue.jsonl"
    appender = Appender()
    appender.append(path, b"1\n", make_folder=True)  # the folder made, the file created
    path.write_bytes(b'1\n{"torn')  # a crash in the middle of a write, by another process
    other = Appender()  # a new process: it has not written this file
    other.append(path, b"2\n")
    assert path.read_bytes() == b"1\n2\n"
    other.append(path, b"3\n")
    assert path.read_bytes() == b"1\n2\n3\n"
    with pytest.raises(FileNotFoundError):
        Appender().append(tmp_path / "missing" / "x.jsonl", b"1\n")  # no folder made


def test_after_a_failed_append_the_tail_is_cut_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.jsonl"
    appender = Appender()
    appender.append(path, b"1\n")
    real = journal.write_lines

    def torn(fd: int, data: bytes, where: str | Path) -> None:
        real(fd, data[:3], where)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal, "write_lines", torn)
    with pytest.raises(OSError, match="No space"):
        appender.append(path, b"[2,3,4]\n")
    monkeypatch.undo()
    assert path.read_bytes() == b"1\n[2,"
    appender.append(path, b"5\n")
    assert path.read_bytes() == b"1\n5\n"
    # A file deleted and made again (its folder forgotten) is treated as one not written here.
    path.write_bytes(b"9\n[tor")
    appender.forget(tmp_path)
    appender.append(path, b"6\n")
    assert path.read_bytes() == b"9\n6\n"


@pytest.mark.parametrize(
    ("content", "repaired"),
    [
        (b'1\n{"a": 1}', b'1\n{"a": 1}\n'),  # whole but for its line break: kept, ended
        (b"1\n[15,3]", b"1\n[15,3]\n"),
        (b'{"a": 1}', b'{"a": 1}\n'),  # the only line
        (b'1\n{"a": 1', b"1\n"),  # torn: cut
        (b"1\n[15,3", b"1\n"),
        (b"1\n7", b"1\n"),  # a number is not a journal line
        (b'{"a"', b""),
    ],
)
def test_a_last_line_without_its_line_break_is_kept_when_whole(
    tmp_path: Path, content: bytes, repaired: bytes
) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    assert journal.repair_tail(path)
    assert path.read_bytes() == repaired
    assert not journal.repair_tail(path)  # nothing more to do


def test_what_dockerlink_writes_under_data_dir_is_for_its_user_and_group(
    tmp_path: Path, clock: Clock
) -> None:
    """Histories, events and the webhook queue name every tenant's containers: under a umask
    of 022 (dockerlink run outside the shipped unit) other users still get nothing."""
    data = tmp_path / "data"
    old_umask = os.umask(0o022)
    try:
        os.close(journal.lock_directory(data / "events"))
        Appender().append(data / "webhooks" / "queue.jsonl", b"{}\n", make_folder=True)
        store = HistoryStore(data / "stats", clock=clock)
        store.open()
        store.append("ab" * 32, Sample(int(clock()), 1, 2, 3, 4, 5, 6, 7, 8))
        store.close()
    finally:
        os.umask(old_umask)
    made = [data, *data.rglob("*")]
    assert any(p.name.endswith(".jsonl") for p in made)
    assert len([p for p in made if p.is_file()]) >= 4  # locks, a queue, a history file
    for path in made:
        expected = journal.DIRECTORY_MODE if path.is_dir() else journal.FILE_MODE
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_a_file_where_a_folder_should_be_is_said_at_once(tmp_path: Path) -> None:
    (tmp_path / "stats").write_text("")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        journal.make_directory(tmp_path / "stats")
    with pytest.raises(NotADirectoryError):
        journal.make_directory(tmp_path / "stats" / "abc")
