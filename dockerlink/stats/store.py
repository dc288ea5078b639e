"""HistoryStore: every container's stats history, append-only on disk, served from memory.

Layout under the store's root (``<data_dir>/stats``)::

    .lock                              held (flock) by the one dockerlink process using this root
    ticks-<period start>.jsonl         the tick log: the time of each tick with runs; one file
                                       per hour; kept 4 hours
    <full container id>/
        raw-<period start>.jsonl       every sample; one file per hour; kept 4 hours
        day-<period start>.jsonl       2-minute points; one file per 6 hours; kept 24 hours
        week-<period start>.jsonl      20-minute points; one file per day; kept 7 days

**Lines.** Each file is JSON lines: an absolute *keyframe* object, then *delta* arrays relative to
the line before (see :mod:`.codec`)::

    {"t":1764200000,"m":52224,"ml":2147483648,"c":1234,"cl":15000,"u":12345,"d":67890,"du":3,"dd":7}
    [15,-8,112,2,5]
    [15,0,-96]

Every file starts with a keyframe, and a keyframe follows at least every 120 deltas, after any
change a delta cannot express (limits, a counter reset that left totals higher), and whenever a
process starts appending to a file. Units: ``t`` unix seconds, ``m`` memory used in KiB, ``ml``
the memory limit in bytes, ``c``/``cl`` CPU use and limit in hundredths of a percent (one core =
10000, limit 0 = unlimited), ``u``/``d`` network totals in KiB (up = transmitted, down =
received), ``du``/``dd`` the network traffic since the previous sample in KiB. A steady sample
costs ~10-25 bytes.

**Runs.** A sample with the same figures as the one before and no traffic since (a stopped
container's, at every tick) *repeats* it. Such samples are a *run*: on disk, one open repeat line
``["="]`` when the run starts, and one closed line with every time difference (``["=",15,15,16]``)
when it ends: at the container's next other sample, at the end of the file's period, when the
container is no longer sampled (:meth:`HistoryStore.end_run`) or at the stop. Meanwhile the
*tick log* gets each tick's time once, for all the runs together, so that a tick costs one line
in all, not one per stopped container. In memory a run's samples wait in a list of times, and are
added to the tiers (one repeat line in memory, a bucket addition per bucket, the points of the
buckets that hold nothing else as one run of points) when something needs them: a query of the
container, its next other sample, or the maintenance, at most ``SETTLE_AFTER_S`` after the first
of them. The day and week points a run closes are written then (a crash before rebuilds them
from raw, as any point). :meth:`HistoryStore.repeat_many` takes a tick's repeated samples with a
lookup and an append each; the same list of them again, tick after tick, is one *ride*
(:class:`_Ride`): one time a tick for all of them. A thousand containers of which 800 are
stopped thus cost the sampler 200 lines a tick, not 1,000.

**Tiers.** A point of the ``day`` tier summarises the samples whose timestamps fall in one
``t // 120`` bucket, a ``week`` point one ``t // 1200`` bucket (:class:`.series.Bucket` says how),
and files cover ``t // period`` buckets; everything is a function of the sample's own timestamp,
so a restart of dockerlink shifts nothing. A point is written when its bucket closes: when a later
sample arrives, or when :meth:`HistoryStore.maintain` finds the bucket's time is over. The open
bucket is answered as a provisional point. After a restart the open buckets, and any point a crash
kept from being written, are rebuilt from the ``raw`` files, which reach further back than any
bucket.

**Crash safety.** Each line is one ``write()`` of a complete line on an ``O_APPEND`` file. A
reader skips a line that does not parse, and the deltas after it until the next keyframe. Before
appending to a file it did not write itself, the store truncates a torn last line (a crash in the
middle of a write) so that the next line starts clean. Lines are not fsynced: a killed process
loses nothing it wrote, since the data is in the kernel already; a power loss can lose the last
seconds of history (what the kernel had not written back yet) or leave a torn tail, which is then
skipped and repaired. A run that a crash left open (its file ends in, or goes on after, an open
repeat line) is read back from the tick log: the repeated sample at each tick time of the file's
period after it, up to the next sample in the file. (A container that failed to be sampled at
one of those ticks, or was removed behind dockerlink's back just before the crash, gets a sample
there too.) An fsync per sample would cost a disk flush per container per tick for data
that is a monitoring aid, not a record.

**A full disk.** A line that cannot be written (ENOSPC, or any other ``OSError``) is skipped: the
sample stays in memory and is served, the file is repaired before its next line, and the outage
is logged once. On a full disk, files with room left in their last block still take lines while
others fail, so the outage ends only when a file that failed takes a line again (logged once),
not at the first write that happens to fit.

**Retention.** :meth:`HistoryStore.maintain` (the sampler runs it once a minute) deletes whole
files whose period ended more than the tier's window ago, so a container holds at most ~5 raw,
5 day and 8 week files. A container removed behind dockerlink's back keeps its history until
then; :meth:`HistoryStore.delete` removes one at once (a delete through the API).

**Memory.** Each tier of each container is a :class:`.chunks.ChunkedSeries`: the lines of its
current file period in memory as written, the periods closed since start-up compressed, and the
files of the periods before start-up left on disk (they never change again) until a query reads
them; a thousand containers' weeks take ~15 MB at start and ~30 MB once every file was written by
this process, where decoded they took ~160 MB. :meth:`HistoryStore.open` reads only the newest
file of each tier. A query decodes what it asks for; the decoded tiers of the series read last
are kept (``DECODED_SAMPLES``, about 7 MB), and the 4-hour answers of the most recently queried
containers are kept rendered (``HOT_ENTRIES``, about 6 MB), so that a panel asking again pays a
slice and a join.

**One writer.** Every disk operation after :meth:`HistoryStore.open` (appending a line, repairing a
torn tail, making a directory, deleting expired files and removed histories) is done by one
writer, in the order the store asked for them. The writer keeps each container's current raw file
open for appending, within the budget of :mod:`.held` (a line every tick for every container
would otherwise cost an ``open()`` and a ``close()`` each). With ``writer_thread=True`` (what
the service uses, :func:`open_history`) that writer is a dedicated thread fed by a queue, so a
slow or stuck disk never holds up the event loop: :meth:`~HistoryStore.append`,
:meth:`~HistoryStore.delete` and :meth:`~HistoryStore.maintain` only queue work, and queries
answer from memory. Without it, the caller's thread does each operation at once (tools and
tests). :meth:`~HistoryStore.close` lets the writer finish everything queued first.

**What a query sees.** A raw sample is served once its line is written (for a sample in a run:
its open repeat line and its tick's time in the tick log; or once its write failed: a full
disk), never before, so whatever the route has answered is on disk and survives a ``kill -9``
(the guarantee the store gave when it wrote on the loop). Until then :meth:`~HistoryStore.last`
already returns it (the sampler computes the next network delta from it), and
:meth:`~HistoryStore.written` waits until every sample appended so far is served (a sample taken
on the spot for a query). Day and week points are served as soon as their bucket closes, before
their line is written: a crash before that rebuilds them from the raw files.

The store is not thread-safe: it lives on the event loop (its writer thread touches only the
disk and its own state), and each call is short.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..journal import (
    JournalLocked,
    lock_directory,
    make_directory,
    open_for_append,
    repair_tail,
    write_lines,
)
from .chunks import ChunkedSeries, DecodedCache
from .codec import KEYFRAME_EVERY, OPEN_RUN, LineEncoder
from .held import held_files_budget
from .series import (
    Bucket,
    Sample,
    by_slot,
    join_entries,
    render_entries,
    render_json,
    repeats,
)

__all__ = [
    "DAY",
    "RAW",
    "SCALES",
    "TIERS",
    "WEEK",
    "HistoryStore",
    "StoreLocked",
    "Tier",
    "open_history",
    "tier_for_scale",
]

log = logging.getLogger("dockerlink.stats")

HOUR_S = 3600
DAY_S = 24 * HOUR_S


@dataclass(frozen=True, slots=True)
class Tier:
    """One resolution of the history: points every ``resolution_s`` (0 = every sample), kept for
    ``window_s``, in files that each cover ``file_period_s``."""

    name: str
    resolution_s: int
    window_s: int
    file_period_s: int


RAW = Tier("raw", 0, 4 * HOUR_S, HOUR_S)
DAY = Tier("day", 120, DAY_S, 6 * HOUR_S)
WEEK = Tier("week", 1200, 7 * DAY_S, DAY_S)
TIERS = (RAW, DAY, WEEK)
#: The route's ``scale`` values; any other value means ``instant``.
SCALES = {"instant": RAW, "day": DAY, "week": WEEK}

#: A deleted container's id is refused for this long, so that a sample in flight when it was
#: deleted cannot bring its history back.
TOMBSTONE_S = HOUR_S
#: The 4-hour answers of the most recently queried containers are kept rendered, this many
#: entries in all (32 containers at 15 s sampling, about 6 MB): a panel showing a container asks
#: again and again, and rendering 960 samples is most of a query's cost.
HOT_ENTRIES = 32 * 960
#: Decoded samples kept for the series read last, in all (72 bytes each: about 7 MB): the
#: week, day and 4-hour windows of ~45 containers, a panel's page of them. (150,000 samples
#: took the peak RSS at 1,000 containers, each week asked for once, to 150 MB and over in
#: some runs of ``scripts/bench scale``.)
DECODED_SAMPLES = 100_000
#: A write outage is no longer waited on for a container not sampled for this long.
STALE_FAILURE_S = 600
#: A run of repeated samples waits at most about this long before the maintenance adds it to
#: the tiers (a query, or the container's next other sample, adds it at once); the day and week
#: points it closes are written then. Less by up to SETTLE_SPREAD_S, by container, so that the
#: runs of containers stopped at the same moment are not all added at the same maintenance.
SETTLE_AFTER_S = 1800
SETTLE_SPREAD_S = 600
#: The most ticks a ride keeps (each run's are taken into the tiers every SETTLE_AFTER_S, the
#: ride's list is not shortened): past that, the ride ends and the next tick starts another.
RIDE_TICKS = 1024

_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"([a-z]+)-([0-9]+)\.jsonl")
_TICK_FILE = re.compile(r"ticks-([0-9]+)\.jsonl")


def tier_for_scale(scale: str) -> Tier:
    return SCALES.get(scale, RAW)


class StoreLocked(RuntimeError):
    """Another process holds the store's root."""


class _Track:
    """One container's history in one tier: its samples, its files."""

    __slots__ = ("bucket", "closed_before", "files", "series")

    def __init__(
        self, period_s: int, cache: DecodedCache, ticks: dict[int, list[int]] | None = None
    ) -> None:
        self.series = ChunkedSeries(period_s, cache, ticks=ticks)
        #: The period starts of its files (those asked of the writer included).
        self.files: set[int] = set()
        #: Aggregated tiers: the open bucket, and the index below which buckets are written.
        self.bucket: Bucket | None = None
        self.closed_before = 0

    @property
    def empty(self) -> bool:
        return not self.files and self.series.last() is None and self.bucket is None


class _History:
    __slots__ = ("aggregated", "container_id", "directory", "quiet_until", "raw", "tracks")

    def __init__(
        self,
        container_id: str,
        directory: Path | None,
        cache: DecodedCache,
        ticks: dict[int, list[int]],
    ) -> None:
        self.container_id = container_id
        self.directory = directory
        self.tracks = {
            tier.name: _Track(tier.file_period_s, cache, ticks if tier is RAW else None)
            for tier in TIERS
        }
        #: The same tracks at hand for every sample: the raw one, and the aggregated tiers'.
        self.raw = self.tracks[RAW.name]
        self.aggregated = tuple((tier, self.tracks[tier.name]) for tier in TIERS[1:])
        #: During a run: the maintenance has nothing to do for it before this time.
        self.quiet_until = 0.0


class _Run:
    """A container's run: samples that repeat the one before them (:meth:`HistoryStore._settle`
    adds those served to the tiers). It lasts until the container's next other sample.

    While it rides (:class:`_Ride`), the ticks of the ride are the ride's: reading or changing
    :attr:`newest`, :attr:`served` or :attr:`times` takes them first (:meth:`leave`). Adding
    its times to the tiers (a query, the maintenance) reads and takes them without that
    (:meth:`first_pending`, :meth:`take_pending`, :attr:`waiting`): the run goes on riding.
    """

    __slots__ = (
        "_newest",
        "_served",
        "_times",
        "container_id",
        "figures",
        "ride",
        "ride_from",
        "wait",
    )

    def __init__(self, container_id: str, sample: Sample) -> None:
        self.container_id = container_id
        #: Every field of the samples but their time.
        self.figures: tuple[int, ...] = tuple(sample[1:])
        #: The time of the newest one appended (served or not), and of the newest served.
        self._newest = self._served = sample.t
        #: The times of those served and not yet added to the tiers.
        self._times: list[int] = []
        #: How long after the first of those the maintenance adds them.
        self.wait = SETTLE_AFTER_S - int(container_id[:4], 16) % SETTLE_SPREAD_S
        self.ride: _Ride | None = None
        #: Where its times not yet taken begin in the ride's.
        self.ride_from = 0

    def sample(self, t: int) -> Sample:
        return Sample(t, *self.figures)

    @property
    def newest(self) -> int:
        if self.ride is not None:
            self.leave()
        return self._newest

    @newest.setter
    def newest(self, t: int) -> None:
        if self.ride is not None:
            self.leave()
        self._newest = t

    @property
    def served(self) -> int:
        if self.ride is not None:
            self.leave()
        return self._served

    @served.setter
    def served(self, t: int) -> None:
        if self.ride is not None:
            self.leave()
        self._served = t

    @property
    def times(self) -> list[int]:
        if self.ride is not None:
            self.leave()
        return self._times

    @times.setter
    def times(self, times: list[int]) -> None:
        if self.ride is not None:
            self.leave()
        self._times = times

    @property
    def newest_seen(self) -> int:
        """:attr:`newest`, without leaving a ride."""
        return self._newest if self.ride is None else max(self._newest, self.ride.newest)

    def served_tick(self, t: int) -> None:
        """A tick of it served on its own: one from before it joined its ride (earlier than any
        of the ride's), or one of a ride it left since the tick was appended."""
        if t > self._served:
            self._times.append(t)
            self._served = t

    def leave(self) -> None:
        """Take the ride's ticks and leave it, which ends it (see :class:`_Ride`)."""
        ride, self.ride = self.ride, None
        if ride is None:
            return
        ride.over = True
        if ride.times:
            self._times.extend(ride.times[self.ride_from :])
            self._served = ride.times[-1]
        self._newest = max(self._newest, ride.newest)
        if ride.in_flight:
            ride.left.append(self)

    def first_pending(self) -> int | None:
        """The time of the first of :attr:`times`, ride or not; None when there are none."""
        if self._times:
            return self._times[0]
        ride = self.ride
        if ride is None or len(ride.times) <= self.ride_from:
            return None
        return ride.times[self.ride_from]

    def take_pending(self) -> list[int]:
        """:attr:`times`, which are then none, without leaving a ride."""
        times, self._times = self._times, []
        ride = self.ride
        if ride is not None:
            times.extend(ride.times[self.ride_from :])
            self.ride_from = len(ride.times)
        return times

    @property
    def waiting(self) -> bool:
        """Whether samples of it are not in the tiers yet (served or not)."""
        ride = self.ride
        if ride is None:
            return bool(self._times) or self._newest > self._served
        return self.first_pending() is not None or ride.in_flight or self._newest > self._served


class _Ride:
    """Runs that go on together: those of the sampler's stopped containers, whose list it hands
    again, the very same, at every tick while none of them changes. A tick of them all is then
    one time appended here, not one to each run (nor to each file's run, see
    :class:`_WriterRide`).

    Another sample of one of them, or its deletion, makes it take the ride's ticks and leave
    (:meth:`_Run.leave`), which ends the ride: the next tick of the list goes run by run, and
    starts a new ride. (Queries, ``last()`` and the maintenance read a run without that.) A ride
    tick served after a run left (it was written while the run rode) is given to that run on its
    own (:attr:`left`)."""

    __slots__ = ("left", "newest", "over", "repeats", "runs", "start", "times")

    def __init__(self, repeats: list[tuple[str, tuple[int, ...]]], runs: list[_Run], t: int):
        #: The sampler's list, known by its identity.
        self.repeats = repeats
        self.runs = runs
        #: The times of the ticks of the ride served so far, and of the newest appended.
        self.times: list[int] = []
        self.newest = self.start = t
        self.over = False
        #: Runs that left while ticks of the ride were being written.
        self.left: list[_Run] = []
        for run in runs:
            run.ride = self
            run.ride_from = 0

    @property
    def in_flight(self) -> bool:
        """Whether ticks of the ride are appended and not served yet."""
        return self.newest > (self.times[-1] if self.times else self.start)

    def end(self) -> None:
        """Every run leaves."""
        for run in self.runs:
            if run.ride is self:
                run.leave()
        self.over = True


class _Repeated:
    """The samples ``(t, *figures)`` of each ``(container id, figures)`` of ``repeats``, each
    continuing its container's run (a tick of their runs), handed to the writer and back as
    one; ``ride``: the ride they are a tick of, if they are."""

    __slots__ = ("repeats", "ride", "t")

    def __init__(
        self, repeats: list[tuple[str, tuple[int, ...]]], t: int, ride: _Ride | None = None
    ) -> None:
        self.repeats = repeats
        self.t = t
        self.ride = ride


class HistoryStore:
    """The stats history of every container, by full container id.

    ``root`` None keeps the history in memory only (see :func:`open_history`). ``clock`` gives the
    current unix time (tests inject their own).
    """

    def __init__(
        self,
        root: Path | None,
        *,
        clock: Callable[[], float] = time.time,
        keyframe_every: int = KEYFRAME_EVERY,
        writer_thread: bool = False,
        held_files: int | None = None,
    ) -> None:
        """``writer_thread``: do the disk operations in a thread of their own (see above).
        ``held_files``: how many raw files may be kept open for appending (default:
        :func:`.held_files_budget`)."""
        self.root = root
        self._clock = clock
        self._histories: dict[str, _History] = {}
        self._decoded = DecodedCache(DECODED_SAMPLES)
        #: The newest sample accepted for each container while its line is not yet written.
        self._unwritten: dict[str, Sample] = {}
        #: Raw samples whose lines the writer has written (or failed to), to be served, each
        #: with whether it repeats the one before, and the ticks of runs.
        self._written: deque[tuple[str, Sample, bool] | _Repeated] = deque()
        #: Each container's run, while it lasts.
        self._runs: dict[str, _Run] = {}
        #: The runs of the sampler's stopped containers, while they go on together.
        self._ride: _Ride | None = None
        #: The tick log's times by period start, as read at start-up (what the open repeat
        #: lines of files stand for), and the period starts of the tick log's files.
        self._ticks: dict[int, list[int]] = {}
        self._tick_files: set[int] = set()
        self._writer = _Writer(
            root,
            keyframe_every,
            self._written,
            held_files_budget() if held_files is None else held_files,
        )
        self._writer_thread = writer_thread
        self._ops: queue.SimpleQueue[_Op | None] | None = None
        self._thread: threading.Thread | None = None
        self._tombstones: dict[str, float] = {}
        #: Rendered answer entries of the raw tier, one per sample, for the hot containers.
        self._rendered: OrderedDict[str, list[str]] = OrderedDict()
        self._rendered_entries = 0
        self._lock_fd: int | None = None

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def persistent(self) -> bool:
        return self.root is not None

    @property
    def open_files(self) -> int:
        """The raw files the writer keeps open now (see :mod:`.held`)."""
        return self._writer.open_files

    def open(self) -> None:
        """Take the root (one process at a time), load every history, apply retention."""
        if self.root is None:
            return
        try:
            fd = lock_directory(self.root)
        except JournalLocked:
            raise StoreLocked(
                f"the stats history in {self.root} is in use by another process"
            ) from None
        self._lock_fd = fd
        for entry in os.scandir(self.root):
            match = _TICK_FILE.fullmatch(entry.name)
            if match:
                start = int(match.group(1))
                self._tick_files.add(start)
                self._ticks[start] = _read_ticks(Path(entry.path))
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir() and _CONTAINER_ID.fullmatch(entry.name):
                self._histories[entry.name] = self._load(Path(entry.path))
        if self._writer_thread:
            self._ops = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=self._write_queued, name="dockerlink-stats-writer", daemon=True
            )
            self._thread.start()
        self.maintain()

    def close(self) -> None:
        """Let the writer finish what is queued (this waits on the disk), then let go of the
        root. Call it from a worker thread when an event loop runs."""
        self._serve_written()
        for container_id in list(self._runs):  # the points they close are written
            history = self._histories.get(container_id)
            if history is not None:
                self._settle(history)
        if self._ops is not None and self._thread is not None:
            self._ops.put(None)
            self._thread.join()
            self._ops = self._thread = None
        self._writer.close()
        self._histories.clear()
        self._unwritten.clear()
        self._written.clear()
        self._runs.clear()
        self._ride = None
        self._ticks.clear()
        self._tick_files.clear()
        self._rendered.clear()
        self._rendered_entries = 0
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- reading -------------------------------------------------------------------------------

    def __contains__(self, container_id: object) -> bool:
        self._serve_written()
        return container_id in self._histories

    def container_ids(self) -> list[str]:
        self._serve_written()
        return list(self._histories)

    def resolve_prefix(self, prefix: str) -> str | None:
        """The one stored container id starting with ``prefix``; None if none or several."""
        if not prefix:
            return None
        self._serve_written()
        found = [cid for cid in self._histories if cid.startswith(prefix)]
        return found[0] if len(found) == 1 else None

    def last(self, container_id: str) -> Sample | None:
        """The newest sample appended for the container (its line may not be written yet)."""
        unwritten = self._unwritten.get(container_id)
        if unwritten is not None:
            return unwritten
        self._serve_written()
        run = self._runs.get(container_id)
        if run is not None:
            return run.sample(run.newest_seen)  # (a ride goes on: a dashboard asks every 15 s)
        history = self._histories.get(container_id)
        return history.tracks[RAW.name].series.last() if history is not None else None

    def latest(self) -> list[tuple[str, Sample]]:
        """The newest sample of every container sampled in the last 4 hours."""
        after = self._clock() - RAW.window_s
        found = []
        for container_id in list(self._histories):
            sample = self.last(container_id)
            if sample is not None and sample.t > after:
                found.append((container_id, sample))
        return found

    def rows(
        self, container_id: str, *, scale: str = "instant", since: float = 0.0
    ) -> list[tuple[int, ...]] | None:
        """The points ``scale`` answers with timestamps > ``since``, oldest first, as tuples in
        :class:`Sample` field order; None when nothing is stored for the container."""
        history = self._settled(container_id)
        if history is None:
            return None
        tier = tier_for_scale(scale)
        track = history.tracks[tier.name]
        after = max(since, self._clock() - tier.window_s)
        series = track.series.decoded()
        rows = list(series.rows(series.index_after(after)))
        provisional = track.bucket.point() if track.bucket is not None else None
        if provisional is not None and provisional.t > after:
            rows.append(provisional.as_tuple())
        return rows

    def query(
        self, container_id: str, *, scale: str = "instant", since: float = 0.0
    ) -> list[Sample] | None:
        rows = self.rows(container_id, scale=scale, since=since)
        return None if rows is None else [Sample(*row) for row in rows]

    def query_json(
        self, container_id: str, *, scale: str = "instant", since: float = 0.0
    ) -> bytes | None:
        """The route's answer body, or None when nothing is stored for the container."""
        history = self._settled(container_id)
        if history is not None and tier_for_scale(scale) is RAW:
            entries = self._hot_entries(history)
            series = history.tracks[RAW.name].series.decoded()
            start = series.index_after(max(since, self._clock() - RAW.window_s))
            return join_entries(entries[start:])
        rows = self.rows(container_id, scale=scale, since=since)
        return None if rows is None else render_json(rows)

    def _hot_entries(self, history: _History) -> list[str]:
        """The rendered entries of the raw tier, kept for the most recently queried containers."""
        entries = self._rendered.get(history.container_id)
        if entries is not None:
            self._rendered.move_to_end(history.container_id)
            return entries
        entries = render_entries(history.tracks[RAW.name].series.decoded().rows())
        if len(entries) <= HOT_ENTRIES:
            self._rendered[history.container_id] = entries
            self._rendered_entries += len(entries)
            self._evict_rendered()
        return entries

    def drop_rendered(self) -> None:
        """Forget every rendered answer (benchmarks measure the first query this way)."""
        self._rendered.clear()
        self._rendered_entries = 0

    def _evict_rendered(self) -> None:
        while self._rendered_entries > HOT_ENTRIES:
            _, evicted = self._rendered.popitem(last=False)
            self._rendered_entries -= len(evicted)

    def _forget_rendered(self, container_id: str) -> None:
        evicted = self._rendered.pop(container_id, None)
        if evicted is not None:
            self._rendered_entries -= len(evicted)

    def has_recent(self, container_id: str, scale: str = "instant") -> bool:
        """True when ``scale`` would answer with at least one point (``since`` = 0)."""
        history = self._settled(container_id)
        if history is None:
            return False
        tier = tier_for_scale(scale)
        track = history.tracks[tier.name]
        newest = track.bucket.last if track.bucket is not None else track.series.last()
        return newest is not None and newest.t > self._clock() - tier.window_s

    # -- writing -------------------------------------------------------------------------------

    def append(self, container_id: str, sample: Sample) -> bool:
        """Record a sample; False (and nothing done) when it is not newer than the last one, or
        the container was just deleted. Timestamps have one-second resolution.

        The sample is served once the writer has written its line (at once without a writer
        thread); :meth:`last` returns it already."""
        if not _CONTAINER_ID.fullmatch(container_id):
            raise ValueError(f"not a full container id: {container_id!r}")
        return self.append_many([(container_id, sample)]) == 1

    def append_many(self, samples: Iterable[tuple[str, Sample]]) -> int:
        """Record each ``(container id, sample)`` as :meth:`append` does, in order, handing them
        to the writer at once (the sampler's tick); returns how many were taken. A sample for an
        id that is not a full container id is not taken."""
        taken: list[tuple[str, Sample, bool]] = []
        tombstones = self._tombstones
        unwritten = self._unwritten
        histories = self._histories
        runs = self._runs
        tick_files = self._tick_files
        period_s = RAW.file_period_s
        valid = _CONTAINER_ID.fullmatch
        self._serve_written()
        for container_id, sample in samples:
            if container_id in tombstones:
                continue
            last = unwritten.get(container_id)  # what last() returns, without a call each
            run = runs.get(container_id) if last is None else None
            if run is not None:
                if sample.t <= run.newest:
                    continue
                repeat = sample[1:] == run.figures
                if repeat:
                    run.newest = sample.t
            else:
                if last is None:
                    history = histories.get(container_id)
                    last = history.raw.series.last() if history is not None else None
                if last is None:
                    repeat = False
                    if not valid(container_id):
                        continue
                elif sample.t <= last.t:
                    continue
                else:
                    repeat = repeats(sample, last)
            if self.root is None:
                self._serve(container_id, sample, repeat)
            else:
                unwritten[container_id] = sample
                if repeat:
                    tick_files.add(sample.t - sample.t % period_s)
            taken.append((container_id, sample, repeat))
        if self.root is not None and taken:
            self._submit(self._writer.append_raw, taken)
            self._serve_written()
        return len(taken)

    def repeat_many(self, repeats: list[tuple[str, tuple[int, ...]]], t: int) -> int:
        """Record, for each ``(container id, figures)``, the sample ``(t, *figures)``, expected
        to repeat the container's last one (a stopped container's, at a tick): what
        :meth:`append_many` of those samples does, with less work for each that continues its
        run. Returns how many were taken.

        The same list again (the very object) while every one of its runs goes on, untouched
        since: one tick of their ride (see :class:`_Ride`), whatever their number."""
        self._serve_written()
        ride = self._ride
        if ride is not None:
            if (
                repeats is ride.repeats
                and not ride.over
                and t > ride.newest
                and len(ride.times) < RIDE_TICKS
            ):
                ride.newest = t
                self._submit_repeated(_Repeated(repeats, t, ride))
                return len(repeats)
            ride.end()
            self._ride = None
        runs = self._runs
        unwritten = self._unwritten
        tombstones = self._tombstones
        continuing: list[tuple[str, tuple[int, ...]]] = []
        others: list[tuple[str, Sample]] = []
        for item in repeats:
            container_id, figures = item
            run = runs.get(container_id)
            if (
                run is None
                or t <= run.newest
                or (figures is not run.figures and figures != run.figures)
                or container_id in unwritten
                or (tombstones and container_id in tombstones)
            ):
                others.append((container_id, Sample(t, *figures)))
                continue
            run.figures = figures  # the caller's, the same object at every tick
            run.newest = t
            continuing.append(item)
        if continuing:
            self._submit_repeated(_Repeated(continuing, t))
            if not others:
                self._ride = _Ride(repeats, [runs[item[0]] for item in continuing], t)
        return len(continuing) + (self.append_many(others) if others else 0)

    def _submit_repeated(self, repeated: _Repeated) -> None:
        if self.root is None:
            self._serve_repeated(repeated)
        else:
            t = repeated.t
            self._tick_files.add(t - t % RAW.file_period_s)
            self._submit(self._writer.append_repeated, repeated)
            self._serve_written()

    async def written(self) -> None:
        """Wait (without blocking the loop) until every sample appended so far is served."""
        if self._ops is not None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            loop = done.get_loop()

            def finish() -> None:
                if not done.done():
                    done.set_result(None)

            def wake() -> None:
                loop.call_soon_threadsafe(finish)

            self._ops.put((wake, ()))
            await done
        self._serve_written()

    def flush(self) -> None:
        """Wait (blocking) until the writer has done everything asked of it so far."""
        if self._ops is not None:
            finished = threading.Event()
            self._ops.put((finished.set, ()))
            finished.wait()
        self._serve_written()

    def _submit(self, operation: Callable[..., None], *args: Any) -> None:
        """Hand one disk operation to the writer (or do it now, without a writer thread)."""
        if self._ops is not None:
            self._ops.put((operation, args))
        else:
            operation(*args)

    def _write_queued(self) -> None:
        """The writer thread: every queued operation in order, until ``None``."""
        assert self._ops is not None
        while (item := self._ops.get()) is not None:
            operation, args = item
            try:
                operation(*args)
            except Exception:  # a bug: log it, keep writing the others
                log.exception("stats history: the writer failed")

    def _serve_written(self) -> None:
        """Serve the raw samples whose lines the writer has written since the last call."""
        written = self._written
        while written:
            entry = written.popleft()
            if isinstance(entry, _Repeated):
                self._serve_repeated(entry)
                continue
            container_id, sample, repeat = entry
            if self._unwritten.get(container_id) is sample:
                del self._unwritten[container_id]
            if container_id not in self._tombstones:
                self._serve(container_id, sample, repeat)

    def _serve_repeated(self, repeated: _Repeated) -> None:
        runs, t, ride = self._runs, repeated.t, repeated.ride
        if ride is not None:
            ride.times.append(t)  # for the runs still in the ride
            for left in ride.left:  # and those that left it since this tick was appended
                if runs.get(left.container_id) is left:
                    left.served_tick(t)
            if not ride.in_flight:
                ride.left.clear()
            return
        for container_id, _ in repeated.repeats:
            run = runs.get(container_id)
            if run is not None:  # (None: deleted since)
                run.served_tick(t)

    def _serve(self, container_id: str, sample: Sample, repeat: bool = False) -> None:
        """Put a raw sample in memory, and feed the aggregated tiers. A sample that repeats the
        one before joins its container's run, added to the tiers later (:meth:`_settle`)."""
        history = self._histories.get(container_id)
        if repeat and history is not None:
            run = self._runs.get(container_id)
            if run is None:
                run = self._runs[container_id] = _Run(container_id, sample)
            run.times.append(sample.t)
            run.served = sample.t
            # Appended before its run was made (its first sample was still being written):
            # the run's newest had not been told.
            if run.newest < sample.t:
                run.newest = sample.t
            return
        if history is None:
            directory = self.root / container_id if self.root is not None else None
            history = _History(container_id, directory, self._decoded, self._ticks)
            self._histories[container_id] = history
        elif container_id in self._runs:
            self._settle(history)
            self._runs.pop(container_id).leave()
            history.quiet_until = 0.0
        raw = history.raw
        if history.directory is not None:
            raw.files.add(sample.t - sample.t % RAW.file_period_s)
        raw.series.append(sample)
        entries = self._rendered.get(container_id)
        if entries is not None:
            entries.extend(render_entries([sample]))
            self._rendered_entries += 1
            self._evict_rendered()
        for tier, track in history.aggregated:
            self._feed(history, tier, track, sample)

    def _settle(self, history: _History) -> None:
        """Add the container's run of repeated samples to its tiers, as :meth:`_serve` of each
        would (without a line, a bucket addition and a render each)."""
        run = self._runs.get(history.container_id)
        if run is None:
            return
        times = run.take_pending()
        if not times:
            return
        history.quiet_until = 0.0  # buckets to close
        sample = run.sample(times[-1])
        raw = history.raw
        if history.directory is not None:
            period_s = RAW.file_period_s
            first, last = times[0] - times[0] % period_s, times[-1] - times[-1] % period_s
            raw.files.update(range(first, last + 1, period_s))
        raw.series.append_run(sample, times)
        entries = self._rendered.get(history.container_id)
        if entries is not None:
            figures = sample[1:7]
            entries.extend(render_entries((t, *figures, 0, 0) for t in times))
            self._rendered_entries += len(times)
            self._evict_rendered()
        for tier, track in history.aggregated:
            self._feed_run(history, tier, track, sample, times)

    def _settled(self, container_id: str) -> _History | None:
        """The container's history with every sample served in its tiers."""
        self._serve_written()
        history = self._histories.get(container_id)
        if history is not None:
            self._settle(history)
        return history

    def end_run(self, container_id: str) -> None:
        """The container is no longer sampled (it is gone): its run on disk ends here."""
        if self.root is not None:
            self._submit(self._writer.end_run, container_id)

    def delete(self, container_id: str) -> None:
        """Forget a container's history, on disk and in memory (it was deleted through the API)."""
        if not _CONTAINER_ID.fullmatch(container_id):
            raise ValueError(f"not a full container id: {container_id!r}")
        self._serve_written()
        self._tombstones[container_id] = self._clock()
        self._histories.pop(container_id, None)
        self._unwritten.pop(container_id, None)
        run = self._runs.pop(container_id, None)
        if run is not None:
            run.leave()  # (a ride of it is over: its next tick goes run by run)
        self._forget_rendered(container_id)
        if self.root is not None:
            self._submit(self._writer.remove, container_id, self.root / container_id)

    def maintain(self) -> None:
        """Close buckets whose time is over, delete expired files, trim memory, forget histories
        that have expired entirely."""
        self._serve_written()
        now = self._clock()
        runs = self._runs
        for container_id, history in list(self._histories.items()):
            if history.quiet_until > now:
                continue
            run = runs.get(container_id)
            first = run.first_pending() if run is not None else None
            if run is not None and first is not None and first + run.wait <= now:
                self._settle(history)
            # A sample still being written may belong to a bucket whose time is over: that
            # bucket closes when the sample is served (or at the next maintenance), so that
            # the point holds it, as it would have without a writer thread. The buckets of a
            # run not yet added close when it is.
            waiting = (run is not None and run.waiting) or container_id in self._unwritten
            if not waiting:
                for tier in TIERS[1:]:
                    track = history.tracks[tier.name]
                    bucket = track.bucket
                    if bucket is not None and (bucket.index + 1) * tier.resolution_s <= now:
                        self._close_bucket(history, tier)
            for tier in TIERS:
                self._expire(history, tier, now)
            expired = all(track.empty for track in history.tracks.values())
            if expired and not waiting:
                del self._histories[container_id]
                if run is not None:
                    runs.pop(container_id).leave()
                self._forget_rendered(container_id)
                if history.directory is not None:
                    self._submit(self._writer.remove, container_id, history.directory)
            elif run is not None or not waiting:
                history.quiet_until = _quiet_until(history, run, now)
        for start in sorted(self._tick_files):
            if start + RAW.file_period_s > now - RAW.window_s:
                break
            self._tick_files.discard(start)
            self._ticks.pop(start, None)
            self._submit(self._writer.unlink_ticks, start)
        for container_id, deleted_at in list(self._tombstones.items()):
            if deleted_at + TOMBSTONE_S <= now:
                del self._tombstones[container_id]
        if self.root is not None:
            self._submit(self._writer.forget_stale, now - STALE_FAILURE_S)

    # -- internals -----------------------------------------------------------------------------

    def _feed(self, history: _History, tier: Tier, track: _Track, sample: Sample) -> None:
        """Add ``sample`` to the open bucket of ``tier`` (``track``), closing the one before."""
        index = sample.t // tier.resolution_s
        bucket = track.bucket
        if bucket is None or bucket.index != index:
            if index < track.closed_before:
                return
            if bucket is not None:
                self._close_bucket(history, tier)
            bucket = track.bucket = Bucket(index)
        bucket.add(sample)

    def _feed_run(
        self, history: _History, tier: Tier, track: _Track, sample: Sample, times: list[int]
    ) -> None:
        """:meth:`_feed` ``sample`` at each of ``times``, a bucket at a time. A bucket that holds
        nothing but these samples, and is not the last, has their point but for its time: those
        are closed together, as a run of points."""
        resolution_s = tier.resolution_s
        figures = sample[1:7]
        points: list[int] = []  # the times of the points of such buckets
        final = times[-1] // resolution_s
        for index, group in by_slot(times, resolution_s):
            last = Sample(group[-1], *figures, 0, 0)
            bucket = track.bucket
            if bucket is not None and bucket.index == index:
                bucket.add_run(last, len(group))
            elif index >= track.closed_before:
                if bucket is not None:  # (before the first of the points)
                    self._close_bucket(history, tier)
                if index != final:
                    points.append(last.t)
                    track.closed_before = index + 1
                else:
                    bucket = track.bucket = Bucket(index)
                    bucket.add_run(last, len(group))
        if points:
            point = sample._replace(t=points[0], delta_up_kib=0, delta_down_kib=0)
            if history.directory is not None:
                period_s = tier.file_period_s
                starts = range(points[0] - points[0] % period_s, points[-1] + 1, period_s)
                track.files.update(starts)
                self._submit(self._writer.append_points, history.container_id, tier, point, points)
            track.series.append_run(point, points)

    def _close_bucket(self, history: _History, tier: Tier) -> None:
        track = history.tracks[tier.name]
        bucket = track.bucket
        if bucket is None:
            return
        track.bucket = None
        track.closed_before = bucket.index + 1
        point = bucket.point()
        if point is not None:
            if history.directory is not None:
                track.files.add(point.t - point.t % tier.file_period_s)
                self._submit(self._writer.append_line, history.container_id, tier, point, False)
            track.series.append(point)

    def _expire(self, history: _History, tier: Tier, now: float) -> None:
        track = history.tracks[tier.name]
        horizon = now - tier.window_s
        files = track.files
        if files and min(files) + tier.file_period_s <= horizon:  # (once a period, at most)
            for start in sorted(files):
                assert history.directory is not None  # files exist only on disk
                if start + tier.file_period_s > horizon:
                    break
                self._submit(self._writer.unlink, history.container_id, tier, start)
                files.discard(start)
        entries = self._rendered.get(history.container_id) if tier is RAW else None
        if entries is not None:
            track.series.decoded()  # the entries follow the decoded view, sample for sample
        dropped = track.series.drop_until(horizon)
        if dropped and entries is not None:
            del entries[:dropped]
            self._rendered_entries -= dropped

    def _load(self, directory: Path) -> _History:
        container_id = directory.name
        history = _History(container_id, directory, self._decoded, self._ticks)
        by_tier = {tier.name: tier for tier in TIERS}
        files: list[tuple[str, int]] = []
        for name in os.listdir(directory):
            match = _FILE_NAME.fullmatch(name)
            if match and match.group(1) in by_tier:
                files.append((match.group(1), int(match.group(2))))
        newest = {tier_name: start for tier_name, start in sorted(files, key=lambda f: f[1])}
        for tier_name, start in files:
            track = history.tracks[tier_name]
            track.files.add(start)
            path = directory / _file_name(by_tier[tier_name], start)
            if start != newest[tier_name]:
                track.series.load_file(start, path)  # read when a query needs it
                continue
            try:
                data = path.read_bytes()
            except OSError as exc:
                log.warning("stats history: cannot read %s: %s", directory, exc)
                continue
            track.series.load_chunk(start, data)
        # Rebuild the open buckets (and any point a crash kept from being written) from raw.
        raw = history.raw.series
        for tier, track in history.aggregated:
            point = track.series.last()
            track.closed_before = point.t // tier.resolution_s + 1 if point is not None else 0
            for sample in raw.samples_after(track.closed_before * tier.resolution_s - 1):
                self._feed(history, tier, track, sample)
        return history


#: One disk operation for the writer: a function of :class:`_Writer` and its arguments.
_Op = tuple[Callable[..., None], tuple[Any, ...]]


class _FileState:
    """What the writer knows of the file one container's tier is appended to."""

    __slots__ = ("_run", "clean", "encoder", "fd", "file_start", "path", "ride")

    def __init__(self, keyframe_every: int) -> None:
        self.encoder = LineEncoder(keyframe_every)
        #: The period start of the file the encoder is writing, None before the first line.
        self.file_start: int | None = None
        #: That file's path (a string: made once per file, not once per line).
        self.path = ""
        #: True once this process wrote a whole line at the end of that file.
        self.clean = False
        #: That file kept open for appending (raw files, within the writer's budget), or None.
        self.fd: int | None = None
        #: The times of the run of repeated samples the file's open repeat line stands for so
        #: far (None when its last line is not one): its closed line lists them.
        self._run: list[int] | None = None
        #: The ride this file's run is on (its times since are the ride's), if any.
        self.ride: _WriterRide | None = None

    @property
    def run(self) -> list[int] | None:
        if self.ride is not None:
            self.ride.end()
        return self._run

    @run.setter
    def run(self, times: list[int] | None) -> None:
        if self.ride is not None:
            self.ride.end()
        self._run = times


class _WriterRide:
    """The writer's side of a :class:`_Ride`: the raw files' runs of its containers, within one
    file period. A tick of the ride is one time appended here (and one line in the tick log);
    the first look at one of the files' runs gives each its times, and ends it."""

    __slots__ = ("ids", "of", "over", "sampled", "start", "states", "times")

    def __init__(
        self,
        of: _Ride,
        ids: list[str],
        states: list[_FileState],
        start: int,
        sampled: dict[str, int],
    ) -> None:
        #: The store's ride it writes.
        self.of = of
        self.ids = ids
        self.states = states
        #: The file period the runs are in.
        self.start = start
        self.times: list[int] = []
        self.over = False
        #: The writer's newest sample time of each container (see :meth:`_Writer.forget_stale`).
        self.sampled = sampled
        for state in states:
            state.ride = self

    def end(self) -> None:
        """Give each file's run the ride's times; the ride is over."""
        if self.over:
            return
        self.over = True
        for state in self.states:
            if state.ride is self:
                state.ride = None
                if state.run is not None:
                    state.run.extend(self.times)
        self.note_sampled()

    def note_sampled(self) -> None:
        if self.times:
            sampled, t = self.sampled, self.times[-1]
            for container_id in self.ids:
                sampled[container_id] = t


class _Writer:
    """Every disk operation of a store after it is open, and what they need to know: the delta
    chain of each file, and whether a write outage is going on. Used by one thread at a time
    (the store's writer thread, or its caller's)."""

    def __init__(
        self,
        root: Path | None,
        keyframe_every: int,
        written: deque[tuple[str, Sample, bool] | _Repeated],
        held_files: int,
    ) -> None:
        self.root = root
        self._keyframe_every = keyframe_every
        self._written = written
        self._files: dict[tuple[str, str], _FileState] = {}
        #: How many raw files may be kept open (see :mod:`.held`), and how many are.
        self._held_files = held_files
        self.open_files = 0
        #: The (container id, tier) whose last write failed: non-empty during a write outage.
        self._failed: set[tuple[str, str]] = set()
        #: The newest raw sample time of each container, for :meth:`forget_stale`.
        self._sampled: dict[str, int] = {}
        #: The raw files' runs of the store's ride, while it goes on in one file period.
        self._ride: _WriterRide | None = None
        #: The tick log's file being appended to, and the last time written to it.
        self._tick_log = _FileState(keyframe_every)
        self._tick_written: int | None = None

    def append_line(self, container_id: str, tier: Tier, sample: Sample, raw: bool) -> None:
        """Append one line for ``sample`` to the tier's file for its period; then a raw sample
        is handed back to be served, written or not."""
        try:
            self._append(container_id, tier, sample)
        finally:
            if raw:
                self._sampled[container_id] = sample.t
                self._written.append((container_id, sample, False))

    def append_raw(self, samples: list[tuple[str, Sample, bool]]) -> None:
        """:meth:`append_line` for each raw sample, in order; a sample that repeats the one
        before (``True``) joins the run of its file, and once all are done the tick log takes
        the times of those that did."""
        repeated: list[tuple[str, Sample]] = []
        ticks: set[int] = set()
        try:
            for container_id, sample, repeat in samples:
                if not repeat:
                    self.append_line(container_id, RAW, sample, True)
                    continue
                repeated.append((container_id, sample))
                if self._repeat(container_id, sample.t, sample[1:]):
                    ticks.add(sample.t)
            for t in sorted(ticks):
                self._append_tick(t)
        finally:
            for container_id, sample in repeated:
                self._sampled[container_id] = sample.t
                self._written.append((container_id, sample, True))

    def append_points(
        self, container_id: str, tier: Tier, sample: Sample, times: list[int]
    ) -> None:
        """Append ``sample`` at each of ``times`` (an aggregated tier's run of points), one
        write per file."""
        for _, group in by_slot(times, tier.file_period_s):
            self._append(container_id, tier, sample, times=list(group))

    def append_repeated(self, repeated: _Repeated) -> None:
        """:meth:`append_raw` of samples that each continue their container's run, as one.
        A tick of a ride (see :class:`_WriterRide`) in the same file period as the one before
        is one time for all."""
        t = repeated.t
        start = t - t % RAW.file_period_s
        ride = self._ride
        if ride is not None:
            if ride.of is repeated.ride and not ride.over and ride.start == start:
                try:
                    ride.times.append(t)
                    self._append_tick(t)
                finally:
                    self._written.append(repeated)
                return
            ride.end()
            self._ride = None
        in_run = False
        states: list[_FileState] | None = [] if repeated.ride is not None else None
        try:
            for container_id, figures in repeated.repeats:
                state = self._continue_run(container_id, t)
                if state is not None:
                    in_run = True
                    if states is not None:
                        states.append(state)
                else:  # (what _repeat does then)
                    states = None
                    sample = Sample(t, *figures)
                    in_run = self._append(container_id, RAW, sample, repeat=True) or in_run
            if in_run:
                self._append_tick(t)
        finally:
            sampled = self._sampled
            for container_id, _ in repeated.repeats:
                sampled[container_id] = t
            self._written.append(repeated)
        if repeated.ride is not None and states is not None:
            ids = [container_id for container_id, _ in repeated.repeats]
            self._ride = _WriterRide(repeated.ride, ids, states, start, sampled)

    def _repeat(self, container_id: str, t: int, figures: tuple[int, ...]) -> bool:
        """Append the raw sample ``(t, *figures)``, which repeats the one before: nothing to
        write while its file's run goes on, else the open repeat line (or the sample's own line
        when it cannot start a run). True when the sample is in a run (the tick log must hold
        its time)."""
        if self._continue_run(container_id, t) is not None:
            return True
        return self._append(container_id, RAW, Sample(t, *figures), repeat=True)

    def _continue_run(self, container_id: str, t: int) -> _FileState | None:
        """Add ``t`` to the run of the container's raw file, and return the file's state, when
        that run goes on (nothing to write); None when it does not."""
        state = self._files.get((container_id, RAW.name))
        start = t - t % RAW.file_period_s
        if state is not None and state.run is not None and state.file_start == start:
            state.run.append(t)
            return state
        return None

    def _append(
        self,
        container_id: str,
        tier: Tier,
        sample: Sample,
        repeat: bool = False,
        times: list[int] | None = None,
    ) -> bool:
        """Append the line of ``sample`` (``repeat``: the open repeat line when it can be
        one; ``times``: the lines of ``sample`` at each of them, all in one file period);
        True when a run was opened."""
        assert self.root is not None
        key = (container_id, tier.name)
        state = self._files.get(key)
        if state is None:
            state = self._files[key] = _FileState(self._keyframe_every)
        t = times[0] if times else sample.t
        start = t - t % tier.file_period_s
        if (
            state.fd is not None  # (then clean)
            and state.file_start == start
            and state.run is None
            and not repeat
            and not times
            and not self._failed
        ):
            # The next line of a file kept open (a running container's, at every tick).
            try:
                write_lines(state.fd, state.encoder.encode(sample), state.path)
            except OSError as exc:
                self._failed_write(key, state, exc)
            return False
        if state.file_start != start:
            self._end_run(key, state)
            self._let_go(state)
            state.file_start = start
            state.clean = False
            state.path = os.path.join(self.root, container_id, _file_name(tier, start))
        path = state.path
        opened = False
        try:
            if not state.clean:
                make_directory(self.root / container_id)
                repair_tail(path)
                state.encoder.restart()
                state.run = None
                self._let_go(state)  # (none is open here; a bug must not leak one)
                if tier is RAW and self.open_files < self._held_files:
                    state.fd = open_for_append(path)
                    self.open_files += 1
            if repeat and state.run is None and state.encoder.repeats(sample):
                line = OPEN_RUN
                opened = True
            elif times:
                line = self._closed_run(state) + state.encoder.encode_run(sample, times)
            else:
                line = self._closed_run(state) + state.encoder.encode(sample)
            self._write(state, line)
        except OSError as exc:
            self._failed_write(key, state, exc)
            return False
        state.run = [sample.t] if opened else None
        self._wrote(key, state)
        return opened

    def _closed_run(self, state: _FileState) -> bytes:
        """The closed repeat line of the file's run (none when no run goes on)."""
        run, state.run = state.run, None
        previous = state.encoder.previous
        if not run or previous is None:
            return b""
        return state.encoder.encode_run(previous, run)

    def _end_run(self, key: tuple[str, str], state: _FileState) -> None:
        """Close the file's run, if one goes on."""
        if state.run is None:
            return
        try:
            self._write(state, self._closed_run(state))
        except OSError as exc:
            self._failed_write(key, state, exc)
            return
        self._wrote(key, state)

    def end_run(self, container_id: str) -> None:
        """The container is no longer sampled: close the run of its raw file."""
        key = (container_id, RAW.name)
        state = self._files.get(key)
        if state is not None:
            self._end_run(key, state)

    def _append_tick(self, t: int) -> None:
        """Append a tick time to the tick log (its file for ``t``'s raw period), once."""
        assert self.root is not None
        state = self._tick_log
        if t == self._tick_written:
            return  # (a tick's samples come in several batches)
        start = t - t % RAW.file_period_s
        if state.file_start != start:
            self._let_go(state)
            state.file_start = start
            state.clean = False
            state.path = os.path.join(self.root, _tick_file_name(start))
        try:
            if not state.clean:
                repair_tail(state.path)
                self._let_go(state)
                state.fd = open_for_append(state.path)
                self.open_files += 1
            self._write(state, b"%d\n" % t)
        except OSError as exc:
            self._failed_write(_TICK_LOG, state, exc)
            return
        self._tick_written = t
        self._wrote(_TICK_LOG, state)

    def unlink_ticks(self, start: int) -> None:
        """Delete an expired file of the tick log."""
        assert self.root is not None
        if self._tick_log.file_start == start:
            self._let_go(self._tick_log)
            self._tick_log.file_start = None
        try:
            os.unlink(os.path.join(self.root, _tick_file_name(start)))
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("stats history: cannot delete an expired file: %s", exc)

    def _write(self, state: _FileState, line: bytes) -> None:
        if state.fd is not None:
            write_lines(state.fd, line, state.path)
            return
        fd = open_for_append(state.path)
        try:
            write_lines(fd, line, state.path)
        finally:
            os.close(fd)

    def _failed_write(self, key: tuple[str, str], state: _FileState, exc: OSError) -> None:
        self._let_go(state)
        state.clean = False
        state.run = None
        if not self._failed:
            log.error("stats history: cannot write under %s: %s", self.root, exc)
        self._failed.add(key)

    def _wrote(self, key: tuple[str, str], state: _FileState) -> None:
        state.clean = True
        if key in self._failed:
            self._failed.clear()
            log.info("stats history: writing under %s again", self.root)

    def unlink(self, container_id: str, tier: Tier, start: int) -> None:
        """Delete an expired file (a file that cannot be deleted is logged, and left to the
        retention at the next start)."""
        assert self.root is not None
        try:
            (self.root / container_id / _file_name(tier, start)).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("stats history: cannot delete an expired file: %s", exc)
        state = self._files.get((container_id, tier.name))
        if state is not None and state.file_start == start:
            self._let_go(state)
            state.file_start = None
            state.run = None

    def remove(self, container_id: str, directory: Path) -> None:
        """Delete a container's history directory, and forget its files."""
        if self._ride is not None:
            self._ride.end()
            self._ride = None
        for key in [key for key in self._files if key[0] == container_id]:
            self._let_go(self._files.pop(key))
        self._failed = {key for key in self._failed if key[0] != container_id}
        self._sampled.pop(container_id, None)

        if directory.exists():
            _remove_tree(directory)

    def close(self) -> None:
        """Close every run, and every file kept open."""
        for key, state in self._files.items():
            self._end_run(key, state)
            self._let_go(state)
        self._let_go(self._tick_log)

    def _let_go(self, state: _FileState) -> None:
        """Close the file ``state`` keeps open, if any. The descriptor is forgotten first: the
        kernel frees it even when ``close()`` reports an error (a network filesystem's failed
        write-back), and a later ``open()`` may be given the same number."""
        fd, state.fd = state.fd, None
        if fd is not None:
            self.open_files -= 1
            try:
                os.close(fd)
            except OSError as exc:
                log.warning("stats history: closing %s: %s", state.path, exc)

    def forget_stale(self, sampled_before: float) -> None:
        """For containers no longer sampled (removed behind dockerlink's back): stop waiting for
        a failed file to take a line again, and close the raw files kept open for them."""
        sampled = self._sampled
        if self._ride is not None and not self._ride.over:
            self._ride.note_sampled()
        if self._failed:
            self._failed = {
                key
                for key in self._failed
                if key == _TICK_LOG or sampled.get(key[0], 0) >= sampled_before
            }
        for container_id in [cid for cid, t in sampled.items() if t < sampled_before]:
            del sampled[container_id]  # (sampled again: known again)
            for tier in TIERS:
                key = (container_id, tier.name)
                state = self._files.get(key)
                if state is not None:
                    self._end_run(key, state)
                    self._let_go(state)


def _remove_tree(directory: Path) -> None:
    """``rm -r``, each file or directory that cannot be deleted logged (and the rest deleted)."""

    def failed(function: Any, path: str, exc: BaseException) -> None:
        log.warning("stats history: cannot delete %s: %s", path, exc)

    if sys.version_info >= (3, 12):
        shutil.rmtree(directory, onexc=failed)
    else:
        shutil.rmtree(directory, onerror=lambda f, path, info: failed(f, path, info[1]))


def _quiet_until(history: _History, run: _Run | None, now: float) -> float:
    """Until when the maintenance has nothing to do for a history: no file or chunk expires, no
    bucket's time is over, its run (if any) is not due. (New samples only open later buckets and
    files.) Meanwhile a decoded view may keep samples past the window's end: answers leave them
    out. During a run the buckets' times do not count: they close when the run is added, and
    meanwhile the open one is answered as the provisional point it is (``run.wait`` at most)."""
    if run is None:
        until = now + SETTLE_AFTER_S
    else:
        first = run.first_pending()
        until = first + run.wait if first is not None else now + run.wait
    for tier in TIERS:
        track = history.tracks[tier.name]
        oldest = min(track.files) if track.files else track.series.oldest_start()
        if oldest is not None:
            until = min(until, oldest + tier.file_period_s + tier.window_s)
        if run is None and track.bucket is not None:
            until = min(until, (track.bucket.index + 1) * tier.resolution_s)
    return until


def _file_name(tier: Tier, start: int) -> str:
    return f"{tier.name}-{start}.jsonl"


def _tick_file_name(start: int) -> str:
    return f"ticks-{start}.jsonl"


#: The tick log's key among the writer's failed files.
_TICK_LOG = ("", "ticks")


def _read_ticks(path: Path) -> list[int]:
    """The times a file of the tick log holds, sorted (a line that is not a time is skipped)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.warning("stats history: cannot read %s: %s", path, exc)
        return []
    return sorted({int(line) for line in data.split(b"\n") if line.isdigit()})


def open_history(root: Path) -> HistoryStore:
    """A store on ``root``; when another process holds it (a second dockerlink, or a test run on
    the same ``data_dir``), an error is logged and the history is kept in memory only: writing
    into files another process appends to would interleave their delta chains."""
    store = HistoryStore(root, writer_thread=True)
    try:
        store.open()
    except StoreLocked as exc:
        log.error("%s: this process keeps stats in memory only and does not sample", exc)
        store = HistoryStore(None)
    return store
