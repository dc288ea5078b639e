"""Resource maths for one container sample: pure functions, the figures ``docker stats`` shows.

The formulas mirror the docker CLI, ``cli/command/container/stats_helpers.go``
(https://github.com/docker/cli/blob/v20.10.24/cli/command/container/stats_helpers.go; unchanged on
master): ``calculateMemUsageUnixNoCache`` for memory, ``calculateCPUPercentUnix`` for CPU and
``calculateNetwork`` for network. The one difference is where the previous CPU reading comes from:
the CLI reads ``precpu_stats`` from a streamed sample, but a one-shot sample has it zeroed, so the
sampler keeps its own previous reading and passes both here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..units import KIB, cpus_of

__all__ = [
    "cpu_limit_centi",
    "cpu_percent",
    "memory_used",
    "memory_used_bytes",
    "net_delta",
    "network_totals",
    "round_kib",
]


def memory_used_bytes(memory_stats: Mapping[str, Any]) -> int:
    """Memory in use: usage minus the inactive file cache (``calculateMemUsageUnixNoCache``).

    cgroup v1 reports ``total_inactive_file``, cgroup v2 ``inactive_file``; the cache is only
    subtracted when it is smaller than the usage, as the CLI does.
    """
    stats = memory_stats.get("stats") or {}
    return memory_used(
        _int(memory_stats.get("usage")),
        _int(stats.get("inactive_file")),
        _int(stats["total_inactive_file"]) if "total_inactive_file" in stats else None,
    )


def memory_used(usage: int, inactive_file: int, total_inactive_file: int | None = None) -> int:
    """:func:`memory_used_bytes` of the figures themselves (``total_inactive_file`` None when
    the cgroup reports none, as on cgroup v2)."""
    if total_inactive_file is not None and total_inactive_file < usage:  # cgroup v1
        return usage - total_inactive_file
    if inactive_file < usage:  # cgroup v2
        return usage - inactive_file
    return usage


def cpu_percent(cpu_delta_ns: int, wall_delta_ns: int) -> float:
    """CPU use between two readings, 100 = one core busy the whole time.

    ``calculateCPUPercentUnix`` divides the container's CPU time by the host's CPU time and
    multiplies by the number of CPUs; the host's CPU time over the CPU count is the wall time, so
    this is the same figure measured with the engine's own read timestamps. 0 when either delta
    is not positive (no time passed, or the counter went backwards).
    """
    if cpu_delta_ns <= 0 or wall_delta_ns <= 0:
        return 0.0
    return cpu_delta_ns / wall_delta_ns * 100.0


def cpu_limit_centi(host_config: Mapping[str, Any]) -> int:
    """The CPU limit in hundredths of a percent (one core = 10000): quota / period, 0 unlimited."""
    return round(cpus_of(host_config) * 10_000)


def network_totals(networks: Mapping[str, Any] | None) -> tuple[int, int]:
    """``(transmitted, received)`` bytes summed over every interface (``calculateNetwork``).

    ``networks`` is absent for ``NetworkMode=none`` or ``host``: both totals are then 0.
    """
    tx = rx = 0
    for counters in (networks or {}).values():
        if isinstance(counters, Mapping):
            tx += _int(counters.get("tx_bytes"))
            rx += _int(counters.get("rx_bytes"))
    return tx, rx


def net_delta(previous_total: int, total: int, *, reset: bool = False) -> int:
    """Traffic since the previous sample; never negative.

    A counter that went down, or a restart seen by other means (``reset``), started again from
    zero: everything it counts now is new.
    """
    if reset or total < previous_total:
        return total
    return total - previous_total


def round_kib(n_bytes: int) -> int:
    """Bytes to KiB, rounded to the nearest (memory figures)."""
    return (n_bytes + KIB // 2) // KIB


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)
