"""Append-only JSON-lines files that survive a crash: the event log and the webhook queue.

The same rules as the stats history (:mod:`dockerlink.stats.store`): each line is one ``write()``
of a whole line on an ``O_APPEND`` file, so a killed process loses nothing it wrote; a reader skips
a line that does not parse (a write torn by a power loss); before a process appends to a file it
did not write itself, a torn last line is cut so that the next line starts clean (or ended, when
all it lacks is its line break). These functions do blocking file I/O: callers run them off the
event loop.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "DIRECTORY_MODE",
    "FILE_MODE",
    "Appender",
    "JournalLocked",
    "append_lines",
    "lock_directory",
    "make_directory",
    "open_for_append",
    "read_objects",
    "repair_tail",
    "write_lines",
]

log = logging.getLogger("dockerlink.journal")

#: How far back from the end of a file a torn line is looked for.
_TAIL_BYTES = 64 * 1024


class JournalLocked(RuntimeError):
    """Another process holds the directory."""


#: Modes of what dockerlink creates under data_dir (less the umask): its history, events and
#: webhook queue name every tenant's containers, for dockerlink's user and group only (the
#: shipped unit's UMask=0027 gives the same).
DIRECTORY_MODE = 0o750
FILE_MODE = 0o640


def make_directory(directory: Path) -> None:
    """``directory`` and its missing parents, with :data:`DIRECTORY_MODE`."""
    if directory.is_dir():
        return
    make_directory(directory.parent)
    try:
        directory.mkdir(mode=DIRECTORY_MODE)
    except FileExistsError:
        if not directory.is_dir():  # a file there: said now, not at the first open
            raise NotADirectoryError(f"{directory} is not a directory") from None


def lock_directory(directory: Path) -> int:
    """Create ``directory`` and hold its ``.lock`` (flock) for this process; the lock's fd."""
    make_directory(directory)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in {errno.EWOULDBLOCK, errno.EACCES}:
            raise JournalLocked(f"{directory} is in use by another process") from None
        raise
    return fd


def append_lines(path: str | Path, data: bytes) -> None:
    """One ``write()`` of whole lines at the end of the file (created if needed)."""
    fd = open_for_append(path)
    try:
        write_lines(fd, data, path)
    finally:
        os.close(fd)


def open_for_append(path: str | Path) -> int:
    """The file at ``path`` (created if needed) opened for :func:`write_lines`."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)


def write_lines(fd: int, data: bytes, path: str | Path) -> None:
    """One ``write()`` of whole lines at the end of the file ``fd`` (from
    :func:`open_for_append`; ``path`` names it in an error)."""
    written = os.write(fd, data)
    if written != len(data):  # only when the disk is full; the reader skips the torn part
        raise OSError(errno.ENOSPC, f"short write to {path}")


class Appender:
    """Appends whole lines to files, cutting a torn tail first the first time this process
    appends to each (:func:`repair_tail`), and again after an append to it failed. Used by one
    thread (a writer thread)."""

    def __init__(self) -> None:
        #: The files this process may append to as they are.
        self._clean: set[Path] = set()

    def append(self, path: Path, data: bytes, *, make_folder: bool = False) -> None:
        """:func:`append_lines` to ``path`` (its folder made first with ``make_folder``);
        raises OSError."""
        try:
            if path not in self._clean:
                if make_folder:
                    make_directory(path.parent)
                repair_tail(path)
            append_lines(path, data)
        except OSError:
            self._clean.discard(path)
            raise
        self._clean.add(path)

    def forget(self, path: Path) -> None:
        """``path`` was deleted (a file, or a folder of files): a file made there again is
        appended to like one this process did not write."""
        self._clean = {p for p in self._clean if p != path and p.parent != path}


def repair_tail(path: str | Path) -> bool:
    """End the file with a whole line, so the next line starts clean; True if it changed.

    A last line without its ``\n`` is cut (a write torn by a crash), unless it is a whole JSON
    object or array that only lacks the line break (a write torn just before it): readers take
    such a line, so it is kept, and ended."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return False
        chunk = min(size, _TAIL_BYTES)
        tail = os.pread(fd, chunk, size - chunk)
        if tail.endswith(b"\n"):
            return False
        cut = tail.rfind(b"\n")
        if (cut >= 0 or chunk == size) and _whole(tail[cut + 1 :]):
            os.pwrite(fd, b"\n", size)
            log.warning("ended a last line that lacked its line break in %s", path)
        elif cut >= 0:
            os.ftruncate(fd, size - chunk + cut + 1)
            log.warning("cut a torn line at the end of %s", path)
        elif chunk == size:
            os.ftruncate(fd, 0)
            log.warning("cut a torn line at the end of %s", path)
        else:  # a line longer than the tail window: end it, readers skip it
            os.pwrite(fd, b"\n", size)
            log.warning("ended a torn line longer than %d bytes in %s", _TAIL_BYTES, path)
        return True
    finally:
        os.close(fd)


def _whole(line: bytes) -> bool:
    """True when ``line`` is a whole JSON object or array (what every journal line is)."""
    try:
        return isinstance(orjson.loads(line), (dict, list))
    except orjson.JSONDecodeError:
        return False


def read_objects(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a file, one per line; lines that do not parse are skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            yield value
