"""The figures of one sample, as ``docker stats`` computes them."""

from __future__ import annotations

import pytest

from dockerlink.stats.resources import (
    cpu_limit_centi,
    cpu_percent,
    memory_used_bytes,
    net_delta,
    network_totals,
    round_kib,
)
from dockerlink.units import engine_time_ns

MIB = 1 << 20


def test_memory_used_subtracts_inactive_file_on_cgroup_v1() -> None:
    stats = {"usage": 100 * MIB, "stats": {"total_inactive_file": 30 * MIB, "inactive_file": MIB}}
    assert memory_used_bytes(stats) == 70 * MIB


def test_memory_used_subtracts_inactive_file_on_cgroup_v2() -> None:
    stats = {"usage": 100 * MIB, "stats": {"inactive_file": 40 * MIB, "anon": 60 * MIB}}
    assert memory_used_bytes(stats) == 60 * MIB


def test_memory_used_keeps_usage_when_the_cache_is_not_smaller() -> None:
    assert memory_used_bytes({"usage": 10, "stats": {"total_inactive_file": 10}}) == 10
    assert memory_used_bytes({"usage": 10, "stats": {"inactive_file": 11}}) == 10
    assert memory_used_bytes({"usage": 10}) == 10


def test_memory_used_of_a_stopped_container_is_zero() -> None:
    assert memory_used_bytes({}) == 0


def test_cpu_percent_is_cpu_time_over_wall_time() -> None:
    second = 1_000_000_000
    assert cpu_percent(second // 2, second) == pytest.approx(50.0)
    assert cpu_percent(3 * second, 2 * second) == pytest.approx(150.0)


@pytest.mark.parametrize(("cpu_ns", "wall_ns"), [(0, 10), (-5, 10), (5, 0), (5, -1)])
def test_cpu_percent_is_zero_without_positive_deltas(cpu_ns: int, wall_ns: int) -> None:
    assert cpu_percent(cpu_ns, wall_ns) == 0.0


def test_cpu_limit_from_quota_and_period_or_nano_cpus() -> None:
    assert cpu_limit_centi({"CpuQuota": 50_000, "CpuPeriod": 100_000}) == 5000
    assert cpu_limit_centi({"CpuQuota": 15_000, "CpuPeriod": 10_000}) == 15000
    assert cpu_limit_centi({"NanoCpus": 2_500_000_000}) == 25000
    assert cpu_limit_centi({"CpuQuota": 0, "CpuPeriod": 100_000}) == 0
    assert cpu_limit_centi({"CpuQuota": -1}) == 0
    assert cpu_limit_centi({}) == 0


def test_network_sums_every_interface_up_is_transmitted() -> None:
    networks = {
        "eth0": {"rx_bytes": 1000, "tx_bytes": 10},
        "eth1": {"rx_bytes": 24, "tx_bytes": 2038},
    }
    assert network_totals(networks) == (2048, 1024)
    assert network_totals(None) == (0, 0)
    assert network_totals({}) == (0, 0)


def test_net_delta_never_negative() -> None:
    assert net_delta(100, 150) == 50
    assert net_delta(100, 100) == 0
    assert net_delta(100, 30) == 30  # counters restarted from zero
    assert net_delta(100, 150, reset=True) == 150  # a restart seen by other means


def test_round_kib() -> None:
    assert round_kib(0) == 0
    assert round_kib(511) == 0
    assert round_kib(512) == 1
    assert round_kib(64 * MIB) == 65536


def test_engine_time_ns() -> None:
    assert engine_time_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert engine_time_ns("2026-11-27T05:07:58.67982636Z") == 1_795_756_078_679_826_360
    assert engine_time_ns("2026-11-27T05:07:58Z") == 1_795_756_078_000_000_000
    assert engine_time_ns("0001-01-01T00:00:00Z") is None
    assert engine_time_ns("yesterday") is None
    assert engine_time_ns(None) is None
    assert engine_time_ns("2026-11-27T05:07:58.1+02:00") is None
