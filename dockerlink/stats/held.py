"""How many files the stats code may keep open, so that it reads and appends without an
``open()`` and a ``close()`` per file per tick.

Opening a file by its path walks every directory of that path (five for
``/sys/fs/cgroup/memory/docker/<id>/memory.stat``), and that is most of the cost of reading a
small kernel file: measured with 200 containers on a 2-CPU machine, about 10 µs of CPU per file
to open, read and close it against 2.5 µs for a ``pread()`` of the same file kept open. The
sampler reads five files per running container and appends one line per container every tick,
so it keeps those files open: the cgroup source its running containers' files, the history
writer each container's current raw file.

Each of the two may hold a quarter of the process's file limit (``RLIMIT_NOFILE``, its soft
value) beyond the first 512, which are left to the sockets, the listeners and the engine's
connections: with the 65,536 of the systemd unit that ships with dockerlink, 16,256 each (the
files of 3,251 running containers, the raw files of 16,256); with a limit of 1,024, 128 each.
Past its share, a file is opened, used and closed as before: nothing is lost but speed.

A raw history file deleted behind dockerlink's back while it is held (not by the retention or a
delete through the API, which close it first) takes the lines of the rest of its hour into the
deleted file; the next hour's file is made as usual.
"""

from __future__ import annotations

import resource

__all__ = ["RESERVED_FDS", "held_files_budget"]

#: File descriptors never counted on for held files.
RESERVED_FDS = 512


def held_files_budget() -> int:
    """How many files one of the two holders may keep open under the current limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(0, (soft - RESERVED_FDS) // 4)
