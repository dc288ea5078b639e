"""One tier of one container's history in memory: its lines, encoded as on disk, decoded on demand.

A week of history is ~2,200 samples a container; as a decoded :class:`.series.Series` that is
~160 KB, as the lines of the history files (:mod:`.codec`) ~50 KB, and most histories are never
read in a day. So a :class:`ChunkedSeries` keeps the encoded lines, one chunk per file period
(what retention deletes whole), and decodes them when a query asks: the decoded views of the
series read last are kept in a :class:`DecodedCache` bounded in samples, so a panel asking again
and again about the containers it shows pays nothing more. The chunks of past periods never
change again and are kept compressed (zlib: the lines shrink about 4 times).

What a decoded view holds is exactly what a :class:`.series.Series` fed the same samples held:
the lines of each chunk are decoded on their own (a damaged line loses the deltas up to the next
keyframe of its chunk, as when reading the file), samples not newer than every one before are
skipped, and so are those that :meth:`ChunkedSeries.drop_until` dropped.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

from .codec import KEYFRAME_EVERY, LineEncoder, decode_chunk
from .series import Sample, Series, by_slot

__all__ = ["ChunkedSeries", "DecodedCache"]

log = logging.getLogger("dockerlink.stats")

#: zlib level for closed chunks: 1 is ~4 times smaller already, and several times faster than 6.
_ZLIB_LEVEL = 1


class DecodedCache:
    """The decoded views of the most recently read series, ``max_samples`` samples in all at
    most (a decoded sample takes 72 bytes); the least recently read are forgotten first."""

    __slots__ = ("_series", "max_samples", "samples")

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self.samples = 0
        self._series: OrderedDict[int, ChunkedSeries] = OrderedDict()

    def __len__(self) -> int:
        return len(self._series)

    def used(self, series: ChunkedSeries, added: int) -> None:
        """``series`` was just read (and its view grew by ``added`` samples)."""
        key = id(series)
        if key in self._series:
            self._series.move_to_end(key)
        else:
            self._series[key] = series
        self.samples += added
        while self.samples > self.max_samples and len(self._series) > 1:
            _, evicted = self._series.popitem(last=False)
            self.samples -= evicted.forget_decoded()

    def changed(self, delta: int) -> None:
        """A cached view grew (appended samples) or shrank (dropped ones) by ``delta``."""
        self.samples += delta

    def discard(self, series: ChunkedSeries) -> None:
        if self._series.pop(id(series), None) is not None:
            self.samples -= series.forget_decoded()


class ChunkedSeries:
    """Samples oldest first, strictly increasing ``t``, kept as encoded lines in chunks of
    ``period_s`` seconds (by ``t - t % period_s``), with a decoded view on demand."""

    __slots__ = (
        "_cache",
        "_chunks",
        "_compressed",
        "_decoded",
        "_encoder",
        "_floor",
        "_last",
        "_last_known",
        "_open_start",
        "_ticks",
        "period_s",
    )

    def __init__(
        self,
        period_s: int,
        cache: DecodedCache,
        keyframe_every: int = KEYFRAME_EVERY,
        ticks: Mapping[int, Sequence[int]] | None = None,
    ) -> None:
        """``ticks``: the tick log's times by period start, for the open repeat lines of files
        (see :mod:`.codec`)."""
        self.period_s = period_s
        self._cache = cache
        self._ticks: Mapping[int, Sequence[int]] = ticks if ticks is not None else {}
        #: Encoded lines by period start: the one being appended to as a bytearray, those closed
        #: since start-up compressed, the newest read at start-up as read, and the files of
        #: the periods before it as their paths.
        self._chunks: dict[int, bytearray | bytes | Path] = {}
        #: The period starts of the compressed chunks.
        self._compressed: set[int] = set()
        self._encoder = LineEncoder(keyframe_every)
        #: The chunk the encoder appends to (its lines follow the encoder's previous one).
        self._open_start: int | None = None
        #: Samples at or before this time were dropped.
        self._floor = -1
        self._decoded: Series | None = None
        self._last: Sample | None = None
        self._last_known = True

    # -- filling -------------------------------------------------------------------------------

    def load_file(self, start: int, path: Path) -> None:
        """A history file left on disk, read when a query needs it: a file of a past period,
        which no line is appended to any more."""
        self._chunks[start] = path
        self._compressed.discard(start)
        self._last, self._last_known = None, False
        if self._decoded is not None:
            self._cache.discard(self)

    def load_chunk(self, start: int, data: bytes) -> None:
        """The lines of a history file read at start-up, as they are."""
        self._chunks[start] = data
        self._compressed.discard(start)
        self._last, self._last_known = None, False
        if self._decoded is not None:
            self._cache.discard(self)

    def append(self, sample: Sample) -> None:
        """Add a sample newer than every one held."""
        start = sample.t - sample.t % self.period_s
        if start != self._open_start:
            self._close_open_chunk()
            chunk = bytearray(self._chunk(start))
            if chunk and not chunk.endswith(b"\n"):  # a torn line read from a file: end it
                chunk += b"\n"
            self._chunks[start] = chunk
            self._compressed.discard(start)
            self._open_start = start
            self._encoder.restart()  # a keyframe first: the chunk's earlier lines are not ours
        open_chunk = self._chunks[start]
        assert isinstance(open_chunk, bytearray)
        open_chunk += self._encoder.encode(sample)
        self._last, self._last_known = sample, True
        if self._decoded is not None:
            self._decoded.append(sample)
            self._cache.changed(1)

    def append_run(self, sample: Sample, times: Sequence[int]) -> None:
        """Add ``sample`` again at each of ``times`` (increasing, newer than every sample held;
        see :meth:`.LineEncoder.encode_run`): what :meth:`append` of each would hold."""
        for slot, group in by_slot(times, self.period_s):
            start = slot * self.period_s
            if start != self._open_start:  # a new chunk: its first line is a keyframe
                self.append(sample._replace(t=group[0], delta_up_kib=0, delta_down_kib=0))
                group = group[1:]
                if not group:
                    continue
            open_chunk = self._chunks[start]
            assert isinstance(open_chunk, bytearray)
            open_chunk += self._encoder.encode_run(sample, group)
            figures = sample[1:7]
            last = Sample(group[-1], *figures, 0, 0)
            self._last, self._last_known = last, True
            if self._decoded is not None:
                self._decoded.extend([(t, *figures, 0, 0) for t in group])
                self._cache.changed(len(group))

    def _close_open_chunk(self) -> None:
        if self._open_start is not None:
            chunk = self._chunks.get(self._open_start)
            if isinstance(chunk, bytearray):
                self._chunks[self._open_start] = zlib.compress(chunk, _ZLIB_LEVEL)
                self._compressed.add(self._open_start)
            self._open_start = None

    def drop_until(self, t: float) -> int:
        """Forget every sample with a timestamp <= ``t``: whole chunks at once, and the rest from
        the decoded view. Returns how many the decoded view lost (0 when there is none)."""
        floor = int(t)
        if floor <= self._floor:
            return 0
        self._floor = floor
        chunks = self._chunks
        if chunks and min(chunks) + self.period_s - 1 <= floor:  # (once a period, at most)
            for start in [s for s in chunks if s + self.period_s - 1 <= floor]:
                del chunks[start]
                self._compressed.discard(start)
                if start == self._open_start:
                    self._open_start = None
        if not chunks or (self._last is not None and self._last.t <= floor):
            self._last, self._last_known = None, True
        if self._decoded is None:
            return 0
        dropped = self._decoded.drop_until(floor)
        self._cache.changed(-dropped)
        return dropped

    # -- reading -------------------------------------------------------------------------------

    def decoded(self) -> Series:
        """Every sample held, decoded (kept in the cache until it is the least recently read)."""
        series = self._decoded
        if series is None:
            series = Series()
            newest = self._floor
            for start, lines in self._chunks_in_order():
                samples: list[tuple[int, ...]] = []
                for sample in decode_chunk(lines, self._ticks.get(start, ())):
                    if sample[0] > newest:  # strictly increasing, whatever a file holds
                        samples.append(sample)
                        newest = sample[0]
                series.extend(samples)
            self._decoded = series
            self._last, self._last_known = series.last(), True
            self._cache.used(self, len(series))
        else:
            self._cache.used(self, 0)
        return series

    def forget_decoded(self) -> int:
        """Drop the decoded view (the cache evicts it); returns how many samples it held."""
        held = len(self._decoded) if self._decoded is not None else 0
        self._decoded = None
        return held

    def __len__(self) -> int:
        return len(self.decoded())

    def last(self) -> Sample | None:
        """The newest sample held."""
        if not self._last_known:
            self._last = None
            for start, lines in reversed(self._chunks_in_order()):
                decoded = decode_chunk(lines, self._ticks.get(start, ()))
                found = [s for s in decoded if s[0] > self._floor]
                if found:
                    self._last = Sample(*max(found, key=lambda s: s[0]))
                    break
            self._last_known = True
        return self._last

    def samples_after(self, t: float) -> list[Sample]:
        """The samples with a timestamp > ``t``, oldest first, decoding only the chunks that may
        hold them when there is no decoded view."""
        if self._decoded is not None:
            return [Sample(*row) for row in self._decoded.rows(self._decoded.index_after(t))]
        newest = max(math.floor(t), self._floor)  # timestamps are whole seconds
        found: list[Sample] = []
        for start, lines in self._chunks_in_order():
            if start + self.period_s - 1 <= t:
                continue
            for sample in decode_chunk(lines, self._ticks.get(start, ())):
                if sample[0] > newest:
                    found.append(Sample(*sample))
                    newest = sample[0]
        return found

    def _chunk(self, start: int) -> bytes:
        """The lines of a chunk (empty if there is none, or its file cannot be read)."""
        chunk = self._chunks.get(start, b"")
        if isinstance(chunk, Path):
            try:
                return chunk.read_bytes()
            except OSError as exc:
                log.warning("stats history: cannot read %s: %s", chunk, exc)
                return b""
        if start in self._compressed:
            return zlib.decompress(chunk)
        return bytes(chunk) if isinstance(chunk, bytearray) else chunk

    def _chunks_in_order(self) -> list[tuple[int, bytes]]:
        return [(start, self._chunk(start)) for start in sorted(self._chunks)]

    def oldest_start(self) -> int | None:
        """The period start of the oldest chunk, None when there is none."""
        return min(self._chunks, default=None)

    def encoded_bytes(self) -> int:
        """Bytes the chunks in memory take (compressed ones as compressed)."""
        return sum(len(chunk) for chunk in self._chunks.values() if not isinstance(chunk, Path))
