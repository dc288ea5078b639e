"""The lines of a history file: absolute keyframes and compact deltas (format: see ``store``).

A keyframe is a JSON object holding every field of a sample::

    {"t":1764200000,"m":52224,"ml":2147483648,"c":1234,"cl":15000,"u":12345,"d":67890,"du":3,"dd":7}

A delta line is a JSON array of differences from the previous sample of the same file, in the order
``[dt, d_mem_used, d_cpu, d_up, d_down]``, with trailing zeros left out (``[15]`` is a sample 15 s
after the previous one with nothing changed). Limits and network deltas are not in a delta line:
the limits are the previous ones, and the network deltas are derived from the totals, the way the
service defines them (the difference, or the new total when the counter went down). Whenever that
would not give the sample back exactly (a limit changed, a restart left the counters higher than
before), the writer writes a keyframe instead, so every line decodes to exactly what was written.

A *repeat* line stands for samples that are the previous one again but for their time (the same
figures, no traffic since: a stopped container, sampled at every tick). It holds the time
differences, each from the sample before::

    ["=",15,15,16]

is three samples, 15, 30 and 46 s after the previous one. The writer writes it when such a run
ends (another sample, the file's period ends, the container is gone, the process stops). While a
run goes on, the file holds an *open* repeat line, ``["="]``, and the store's tick log (see
``store``) holds the times of the ticks; a run that a crash kept from being closed is read back
from the tick log: the previous sample again at each tick time after it and before the next
sample the file holds. An open line followed by its closed one stands for nothing itself.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from .series import Sample, repeats

__all__ = ["KEYFRAME_EVERY", "OPEN_RUN", "LineEncoder", "decode_chunk", "decode_lines"]

#: At most this many delta lines follow a keyframe: a line that cannot be read (torn by a crash,
#: damaged on disk) loses the samples up to the next keyframe and no more.
KEYFRAME_EVERY = 120

_KEYS = ("t", "m", "ml", "c", "cl", "u", "d", "du", "dd")
#: The line of a run of repeated samples that goes on (its closed line follows when it ends).
OPEN_RUN = b'["="]\n'


class LineEncoder:
    """Encodes the samples of one file, in order. Call :meth:`restart` when starting a new file."""

    __slots__ = ("_keyframe_every", "_previous", "_since_keyframe")

    def __init__(self, keyframe_every: int = KEYFRAME_EVERY) -> None:
        self._keyframe_every = keyframe_every
        self._previous: Sample | None = None
        self._since_keyframe = 0

    @property
    def previous(self) -> Sample | None:
        """The sample of the last line encoded (None before the first, and after a restart)."""
        return self._previous

    def restart(self) -> None:
        """The next line is a keyframe (new file, or the file's end is not known to be clean)."""
        self._previous = None

    def encode(self, sample: Sample) -> bytes:
        """The line for ``sample``, ending in ``\\n``."""
        previous = self._previous
        self._previous = sample
        if previous is None or self._since_keyframe >= self._keyframe_every:
            return self._keyframe(sample)
        # Unpacked once: this runs for every sample of every container at every tick.
        t, mem, mem_limit, cpu, cpu_limit, up, down, delta_up, delta_down = sample
        t0, mem0, mem_limit0, cpu0, cpu_limit0, up0, down0, _, _ = previous
        if not (  # a delta line decodes back to exactly ``sample`` (net_delta, inlined)
            t > t0
            and mem_limit == mem_limit0
            and cpu_limit == cpu_limit0
            and delta_up == (up if up < up0 else up - up0)
            and delta_down == (down if down < down0 else down - down0)
        ):
            return self._keyframe(sample)
        self._since_keyframe += 1
        # [dt, d_mem_used, d_cpu, d_up, d_down] without its trailing zeros.
        dt, d_mem, d_cpu, d_up, d_down = t - t0, mem - mem0, cpu - cpu0, up - up0, down - down0
        if d_down:
            line = f"[{dt},{d_mem},{d_cpu},{d_up},{d_down}]\n"
        elif d_up:
            line = f"[{dt},{d_mem},{d_cpu},{d_up}]\n"
        elif d_cpu:
            line = f"[{dt},{d_mem},{d_cpu}]\n"
        elif d_mem:
            line = f"[{dt},{d_mem}]\n"
        else:
            line = f"[{dt}]\n"
        return line.encode()

    def repeats(self, sample: Sample) -> bool:
        """Whether ``sample`` repeats the previous one (same figures, no traffic, later), so
        that it can be in a repeat line; the next line is not due to be a keyframe."""
        previous = self._previous
        return (
            previous is not None
            and self._since_keyframe < self._keyframe_every
            and repeats(sample, previous)
        )

    def encode_run(self, sample: Sample, times: Sequence[int]) -> bytes:
        """The lines for ``sample`` again at each of ``times`` (increasing): one repeat line
        when :meth:`repeats` holds for the first of them, else that one's own line first."""
        head = b""
        first = sample._replace(t=times[0], delta_up_kib=0, delta_down_kib=0)
        if not self.repeats(first):
            head = self.encode(first)
            times = times[1:]
            if not times:
                return head
        previous = self._previous
        assert previous is not None
        differences = []
        t0 = previous[0]
        for t in times:
            differences.append(t - t0)
            t0 = t
        self._previous = first._replace(t=t0)
        self._since_keyframe += 1
        return head + b'["=",' + ",".join(map(str, differences)).encode() + b"]\n"

    def _keyframe(self, sample: Sample) -> bytes:
        self._since_keyframe = 0
        return orjson.dumps(dict(zip(_KEYS, sample, strict=True))) + b"\n"


def decode_lines(lines: Iterable[bytes], ticks: Sequence[int] = ()) -> Iterator[Sample]:
    """Every sample a file's lines hold, skipping what cannot be read; ``ticks``: the tick log's
    times for the file's period (what an open repeat line stands for)."""
    values: list[Any] = []
    for line in lines:
        if line:
            try:
                values.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                values.append(None)
    for row in _fold(values, ticks):
        yield Sample(*row)


def decode_chunk(data: bytes, ticks: Sequence[int] = ()) -> list[tuple[int, ...]]:
    """Every sample the lines of ``data`` (a file's, or a run of them) hold, as tuples in
    :class:`Sample` field order: exactly what :func:`decode_lines` gives, several times faster.

    The lines are parsed as one JSON array (one call instead of one per line). When that cannot
    be done line for line (a damaged line, an empty one), the lines are parsed one by one.
    """
    body = data.strip(b"\n")
    if not body:
        return []
    values: Any = None
    if b"\n\n" not in body:
        try:
            values = orjson.loads(b"[" + body.replace(b"\n", b",") + b"]")
        except orjson.JSONDecodeError:
            values = None
    if not isinstance(values, list) or len(values) != body.count(b"\n") + 1:
        return [tuple(sample) for sample in decode_lines(body.split(b"\n"), ticks)]
    return _fold(values, ticks)


_INTS = {int}
#: What a delta line leaves out, by its length: trailing zeros.
_PADDING: tuple[list[int], ...] = ([], [0, 0, 0, 0], [0, 0, 0], [0, 0], [0], [])


def _fold(values: list[Any], ticks: Sequence[int]) -> list[tuple[int, ...]]:
    """The samples of a file's parsed lines (None for a line that did not parse).

    A line that makes no sense yields nothing, and so do the delta and repeat lines after it
    until the next keyframe: deltas are only applied to a sample known to be right.
    """
    found: list[tuple[int, ...]] = []
    previous: tuple[int, ...] | None = None
    #: The sample an open repeat line repeats, until the line that ends its run.
    running: tuple[int, ...] | None = None
    padding = _PADDING
    for value in values:
        kind = type(value)
        sample: tuple[int, ...] | None = None
        if kind is list:
            count = len(value)
            if count and value[0] == "=":
                if previous is None:
                    continue
                if count == 1:  # an open run
                    running = previous
                    continue
                differences = value[1:]
                if set(map(type, differences)) != _INTS or min(differences) <= 0:
                    previous = None
                    continue
                running = None  # its run, closed
                t, figures = previous[0], previous[1:7]
                for dt in differences:
                    t += dt
                    found.append((t, *figures, 0, 0))
                previous = found[-1]
                continue
            if previous is not None and 1 <= count <= 5 and set(map(type, value)) == _INTS:
                # bools and floats are not deltas
                dt, d_mem, d_cpu, d_up, d_down = value + padding[count] if count < 5 else value
                t, mem, mem_limit, cpu, cpu_limit, up, down = previous[:7]
                new_up, new_down = up + d_up, down + d_down
                if (
                    dt > 0
                    and mem + d_mem >= 0
                    and cpu + d_cpu >= 0
                    and new_up >= 0
                    and new_down >= 0
                ):
                    sample = (
                        t + dt,
                        mem + d_mem,
                        mem_limit,
                        cpu + d_cpu,
                        cpu_limit,
                        new_up,
                        new_down,
                        new_up if new_up < up else new_up - up,  # net_delta
                        new_down if new_down < down else new_down - down,
                    )
        elif kind is dict:
            sample = _keyframe_tuple(value)
        if sample is not None and running is not None:
            _fill(found, running, ticks, sample[0])
            running = None
        if sample is not None:
            found.append(sample)
        previous = sample
    if running is not None:
        _fill(found, running, ticks, None)
    return found


def _fill(
    found: list[tuple[int, ...]],
    repeated: tuple[int, ...],
    ticks: Sequence[int],
    before: int | None,
) -> None:
    """An open run cut short: ``repeated`` again at each tick time after it (and before
    ``before``)."""
    start = bisect.bisect_right(ticks, repeated[0])
    stop = len(ticks) if before is None else bisect.bisect_left(ticks, before)
    figures = repeated[1:7]
    found.extend((t, *figures, 0, 0) for t in ticks[start:stop])


def _keyframe_tuple(value: dict[str, Any]) -> tuple[int, ...] | None:
    numbers = []
    for key in _KEYS:
        n = value.get(key)
        if type(n) is not int or n < 0:  # bools and floats are not figures
            return None
        numbers.append(n)
    return tuple(numbers)
