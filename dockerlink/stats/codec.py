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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from .resources import net_delta
from .series import Sample

__all__ = ["KEYFRAME_EVERY", "LineDecoder", "LineEncoder", "decode_chunk", "decode_lines"]

#: At most this many delta lines follow a keyframe: a line that cannot be read (torn by a crash,
#: damaged on disk) loses the samples up to the next keyframe and no more.
KEYFRAME_EVERY = 120

_KEYS = ("t", "m", "ml", "c", "cl", "u", "d", "du", "dd")


class LineEncoder:
    """Encodes the samples of one file, in order. Call :meth:`restart` when starting a new file."""

    __slots__ = ("_keyframe_every", "_previous", "_since_keyframe")

    def __init__(self, keyframe_every: int = KEYFRAME_EVERY) -> None:
        self._keyframe_every = keyframe_every
        self._previous: Sample | None = None
        self._since_keyframe = 0

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

    def _keyframe(self, sample: Sample) -> bytes:
        self._since_keyframe = 0
        return orjson.dumps(dict(zip(_KEYS, sample, strict=True))) + b"\n"


class LineDecoder:
    """Decodes the lines of one file in order.

    A line that does not parse, or makes no sense, yields nothing, and so do the delta lines after
    it until the next keyframe: deltas are only applied to a sample known to be right.
    """

    __slots__ = ("_previous",)

    def __init__(self) -> None:
        self._previous: Sample | None = None

    def decode(self, line: bytes) -> Sample | None:
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            value = None
        sample: Sample | None = None
        if isinstance(value, list):
            sample = _apply_delta(self._previous, value)
        elif isinstance(value, dict):
            sample = _keyframe(value)
        self._previous = sample
        return sample


def _keyframe(value: dict[str, Any]) -> Sample | None:
    numbers: list[int] = []
    for key in _KEYS:
        n = value.get(key)
        if type(n) is not int or n < 0:  # bools and floats are not figures
            return None
        numbers.append(n)
    return Sample(*numbers)


#: What a delta line leaves out, by its length: trailing zeros.
_PADDING: tuple[list[int], ...] = ([], [0, 0, 0, 0], [0, 0, 0], [0, 0], [0], [])


def _apply_delta(previous: Sample | None, deltas: list[Any]) -> Sample | None:
    if previous is None or not 1 <= len(deltas) <= 5:
        return None
    for d in deltas:
        if type(d) is not int:  # bools and floats are not deltas
            return None
    dt, d_mem, d_cpu, d_up, d_down = deltas + _PADDING[len(deltas)]
    t, mem, mem_limit, cpu, cpu_limit, up, down = previous[:7]
    if dt <= 0 or mem + d_mem < 0 or cpu + d_cpu < 0 or up + d_up < 0 or down + d_down < 0:
        return None
    return Sample(
        t + dt,
        mem + d_mem,
        mem_limit,
        cpu + d_cpu,
        cpu_limit,
        up + d_up,
        down + d_down,
        net_delta(up, up + d_up),
        net_delta(down, down + d_down),
    )


def decode_lines(lines: Iterable[bytes]) -> Iterator[Sample]:
    """Every sample a file's lines hold, skipping what cannot be read."""
    decoder = LineDecoder()
    for line in lines:
        if not line:
            continue
        sample = decoder.decode(line)
        if sample is not None:
            yield sample


def decode_chunk(data: bytes) -> list[tuple[int, ...]]:
    """Every sample the lines of ``data`` (a file's, or a run of them) hold, as tuples in
    :class:`Sample` field order: exactly what :func:`decode_lines` gives, several times faster.

    The lines are parsed as one JSON array (one call instead of one per line) and the deltas
    applied inline. When that cannot be done line for line (a damaged line, an empty one), the
    lines are decoded one by one.
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
        return [tuple(sample) for sample in decode_lines(body.split(b"\n"))]
    found: list[tuple[int, ...]] = []
    previous: tuple[int, ...] | None = None
    padding = _PADDING
    for value in values:
        kind = type(value)
        if kind is list:
            count = len(value)
            if previous is None or not 1 <= count <= 5:
                previous = None
                continue
            if set(map(type, value)) != _INTS:  # bools and floats are not deltas
                previous = None
                continue
            dt, d_mem, d_cpu, d_up, d_down = value + padding[count] if count < 5 else value
            t, mem, mem_limit, cpu, cpu_limit, up, down = previous[:7]
            new_up, new_down = up + d_up, down + d_down
            if dt <= 0 or mem + d_mem < 0 or cpu + d_cpu < 0 or new_up < 0 or new_down < 0:
                previous = None
                continue
            previous = (
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
            found.append(previous)
        elif kind is dict:
            previous = _keyframe_tuple(value)
            if previous is not None:
                found.append(previous)
        else:
            previous = None
    return found


_INTS = {int}


def _keyframe_tuple(value: dict[str, Any]) -> tuple[int, ...] | None:
    numbers = []
    for key in _KEYS:
        n = value.get(key)
        if type(n) is not int or n < 0:
            return None
        numbers.append(n)
    return tuple(numbers)
