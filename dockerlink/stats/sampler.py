"""The Sampler: one background task that samples every container on the engine into the history.

Every ``interval_s`` it lists every container (running or not) and, ``concurrency`` at a time,
inspects each one (state and configured limits) and, when it runs, takes a one-shot stats sample.
Each engine call has its own timeout. A tick runs to its end before the next one is scheduled, so
ticks never overlap; a tick that overruns the interval is followed by the next one at once.
A failing engine or a bad container is logged and skipped; the loop only ends when cancelled.
Once a minute it also runs the store's retention (:meth:`HistoryStore.maintain`).

How the figures are made (see :mod:`.metrics` for the formulas):

- CPU percent: the change in the container's CPU time over the change in the engine's read time
  between this sample and this process's previous one of the same run of the container. With no
  such reading (the first sample after dockerlink or the container started), it is the CPU time
  since the container started over the time since then, which is exact when the container started
  after the previous sample and the best figure available otherwise.
- Memory used: usage minus inactive file cache; the limit is the engine's (``memory_stats.limit``).
- Network: totals summed over every interface; the deltas are against the last stored sample,
  and a restart (a new ``StartedAt``) or a counter that went down makes the delta the new total.
- A container that is not running gets a sample with zero usage and its configured limits
  (the memory limit is the host's memory when none is configured, as the engine reports it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import docker_api
from docker_api import DockerClient

from .metrics import (
    KIB,
    cpu_limit_centi,
    cpu_percent,
    engine_time_ns,
    memory_used_bytes,
    net_delta,
    network_totals,
    round_kib,
)
from .series import Sample
from .store import HistoryStore

__all__ = ["MAINTAIN_EVERY_S", "SAMPLE_CONCURRENCY", "Sampler", "call_timeout_for"]

log = logging.getLogger("dockerlink.stats")

#: Containers sampled at once. A one-shot stats call waits for the engine's collector (about 1 s
#: here) and 50 of them at once took 1.25 s, so 200 containers take about 5 s; the engine client
#: keeps 64 connections, which leaves room for API requests.
SAMPLE_CONCURRENCY = 48
MAINTAIN_EVERY_S = 60.0
#: No engine call of the sampler waits less than this (a one-shot stats call takes ~1 s).
MIN_CALL_TIMEOUT_S = 5.0


def call_timeout_for(interval_s: float, docker_timeout_s: float) -> float:
    """Each sampler call may take up to one interval (at least 5 s), never more than any call."""
    return min(docker_timeout_s, max(interval_s, MIN_CALL_TIMEOUT_S))


@dataclass(frozen=True, slots=True)
class _CpuReading:
    """The previous CPU reading of one run of a container (``StartedAt`` names the run)."""

    started_at: str
    total_ns: int
    read_ns: int


class Sampler:
    """Samples every container on the engine into a :class:`HistoryStore`."""

    def __init__(
        self,
        docker: DockerClient,
        store: HistoryStore,
        *,
        interval_s: float,
        call_timeout_s: float,
        concurrency: int = SAMPLE_CONCURRENCY,
        maintain_every_s: float = MAINTAIN_EVERY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.docker = docker
        self.store = store
        self.interval_s = interval_s
        self.call_timeout_s = call_timeout_s
        self.concurrency = concurrency
        self.maintain_every_s = maintain_every_s
        self._clock = clock
        self._cpu: dict[str, _CpuReading] = {}
        self._host_memory_bytes: int | None = None
        self._engine_failing = False
        #: Completed ticks, for tests and logs.
        self.ticks = 0

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every ``interval_s`` until cancelled.

        Returns at once over a memory-only store: another process samples into that data_dir.
        """
        if not self.store.persistent:
            return
        loop = asyncio.get_running_loop()
        next_maintain = loop.time() + self.maintain_every_s
        log.info("stats sampler: every %g s", self.interval_s)
        while True:
            started = loop.time()
            await self._tick_logged()
            if loop.time() >= next_maintain:
                try:
                    self.store.maintain()
                except Exception:
                    log.exception("stats sampler: retention failed")
                next_maintain = loop.time() + self.maintain_every_s
            await asyncio.sleep(max(started + self.interval_s - loop.time(), 0.0))

    async def _tick_logged(self) -> None:
        try:
            sampled = await self.tick()
        except docker_api.DockerError as exc:
            if not self._engine_failing:
                log.warning("stats sampler: cannot list containers: %s", exc.message)
            self._engine_failing = True
            return
        except Exception:
            log.exception("stats sampler: tick failed")
            return
        if self._engine_failing:
            log.info("stats sampler: the engine answers again")
            self._engine_failing = False
        log.debug("stats sampler: %d containers sampled", sampled)

    async def tick(self) -> int:
        """Sample every container once; returns how many samples were recorded."""
        summaries = await self.docker.containers.list(all=True, timeout=self.call_timeout_s)
        ids = [str(summary["Id"]) for summary in summaries if summary.get("Id")]
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(container_id: str) -> bool:
            async with semaphore:
                return await self._sample_logged(container_id)

        recorded = await asyncio.gather(*(one(container_id) for container_id in ids))
        for gone in set(self._cpu).difference(ids):
            del self._cpu[gone]
        self.ticks += 1
        return sum(recorded)

    async def _sample_logged(self, container_id: str) -> bool:
        try:
            info = await self.docker.containers.inspect(container_id, timeout=self.call_timeout_s)
            return await self.sample(info) is not None
        except docker_api.NotFound:
            return False  # removed since the listing
        except docker_api.DockerError as exc:
            log.warning("stats sampler: %s: %s", container_id[:12], exc.message)
        except Exception:
            log.exception("stats sampler: %s: cannot sample", container_id[:12])
        return False

    # -- one container -------------------------------------------------------------------------

    async def sample(self, info: Mapping[str, Any]) -> Sample | None:
        """Sample the container ``info`` (an inspect answer) describes, and record it.

        Returns the sample, or None when the store did not take it (same second as the last one,
        or the container was just deleted).
        """
        container_id = str(info["Id"])
        state = info.get("State") or {}
        host_config = info.get("HostConfig") or {}
        memory_limit = int(host_config.get("Memory") or 0) or await self._host_memory()
        cpu_limit = cpu_limit_centi(host_config)
        stats: dict[str, Any] | None = None
        if state.get("Running"):
            stats = await self.docker.containers.stats(container_id, timeout=self.call_timeout_s)
        read_ns = engine_time_ns(stats.get("read")) if stats is not None else None
        t = int(self._clock())
        if stats is None or read_ns is None:  # not running (or it stopped since the inspect)
            self._cpu.pop(container_id, None)
            sample = Sample(t, 0, memory_limit, 0, cpu_limit, 0, 0, 0, 0)
        else:
            started_at = str(state.get("StartedAt") or "")
            sample = self._running_sample(container_id, t, started_at, stats, read_ns)
            sample = sample._replace(
                mem_limit_bytes=sample.mem_limit_bytes or memory_limit,
                cpu_limit_centi=cpu_limit,
            )
        return sample if self.store.append(container_id, sample) else None

    async def forget(self, container_id: str) -> None:
        """A container was deleted through the API: drop its history and what is kept about it.

        Meant for :attr:`Hosting.delete_hooks`.
        """
        self._cpu.pop(container_id, None)
        self.store.delete(container_id)

    def _running_sample(
        self, container_id: str, t: int, started_at: str, stats: Mapping[str, Any], read_ns: int
    ) -> Sample:
        memory = stats.get("memory_stats") or {}
        cpu_usage = (stats.get("cpu_stats") or {}).get("cpu_usage") or {}
        cpu_total = int(cpu_usage.get("total_usage") or 0)
        previous = self._cpu.get(container_id)
        same_run = previous is not None and previous.started_at == started_at
        if previous is not None and same_run and cpu_total >= previous.total_ns:
            percent = cpu_percent(cpu_total - previous.total_ns, read_ns - previous.read_ns)
        else:
            started_ns = engine_time_ns(started_at)
            percent = cpu_percent(cpu_total, read_ns - started_ns) if started_ns else 0.0
        self._cpu[container_id] = _CpuReading(started_at, cpu_total, read_ns)

        tx_bytes, rx_bytes = network_totals(stats.get("networks"))
        up, down = tx_bytes // KIB, rx_bytes // KIB
        last = self.store.last(container_id)
        restarted = previous is not None and not same_run
        return Sample(
            t=t,
            mem_used_kib=round_kib(memory_used_bytes(memory)),
            mem_limit_bytes=int(memory.get("limit") or 0),
            cpu_centi=round(percent * 100),
            cpu_limit_centi=0,  # from the configuration, set by the caller
            up_kib=up,
            down_kib=down,
            delta_up_kib=net_delta(last.up_kib if last else 0, up, reset=restarted),
            delta_down_kib=net_delta(last.down_kib if last else 0, down, reset=restarted),
        )

    async def _host_memory(self) -> int:
        """The host's memory: the engine's limit for a container with none configured."""
        if self._host_memory_bytes is None:
            info = await self.docker.info(timeout=self.call_timeout_s)
            self._host_memory_bytes = int(info.get("MemTotal") or 0)
        return self._host_memory_bytes
