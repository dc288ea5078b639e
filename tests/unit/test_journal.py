"""journal.Appender: whole lines, a torn tail cut before this process first appends to a file."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from dockerlink import journal
from dockerlink.journal import Appender


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
