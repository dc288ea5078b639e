"""Units, and values the engine reports read the same way everywhere: sizes, CPU limits, times.

A leaf module (it imports nothing of dockerlink), so the resource maths, the domain and the
metrics export can all use it without pulling each other in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CPU_PERIOD_US",
    "GIB",
    "KIB",
    "KIB_PER_GIB",
    "cpus_of",
    "engine_time_ns",
    "engine_time_s",
]

KIB = 1024
GIB = 1 << 30
KIB_PER_GIB = GIB // KIB
#: The CPU period of containers dockerlink creates (the engine's default, 100 ms). Containers the
#: original service made use 10 ms; updates keep each container's own period.
CPU_PERIOD_US = 100_000


def cpus_of(host_config: Mapping[str, Any]) -> float:
    """The container's CPU limit in CPUs (0 when unlimited), from either style of setting it."""
    nano = host_config.get("NanoCpus") or 0
    if nano:
        return float(nano) / 1e9
    quota = host_config.get("CpuQuota") or 0
    period = host_config.get("CpuPeriod") or CPU_PERIOD_US
    return quota / period if quota > 0 else 0.0


def engine_time_ns(text: Any) -> int | None:
    """The engine's RFC 3339 UTC time (``2026-11-27T05:07:58.67982636Z``) as unix nanoseconds.

    None for the zero time (``0001-01-01T00:00:00Z``, what a stopped container reports) and for
    anything unparseable.
    """
    if not isinstance(text, str) or len(text) < 20 or text.startswith("0001-"):
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    rest = text[19:]
    fraction = ""
    if rest.startswith("."):
        digits = rest[1:]
        end = 0
        while end < len(digits) and digits[end].isdigit():
            end += 1
        fraction, rest = digits[:end], digits[end:]
    if rest not in {"Z", "+00:00"}:
        return None
    nanos = int((fraction + "000000000")[:9])
    return int(moment.timestamp()) * 1_000_000_000 + nanos


def engine_time_s(text: Any) -> int | None:
    """:func:`engine_time_ns` in whole unix seconds (the fraction dropped)."""
    nanos = engine_time_ns(text)
    return None if nanos is None else nanos // 1_000_000_000
