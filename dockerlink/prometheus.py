"""Prometheus metrics: dockerlink's own instruments, and ``GET /metrics`` in the text format.

The text exposition format (version 0.0.4) is written here by hand rather than with
prometheus-client: it is a few lines of escaping and formatting, the figures already live in the
sampler, the history and the mirror, and the service keeps its four runtime dependencies. The
tests parse the output with prometheus-client's own parser.

What is exported (``id`` is the full container id, ``name`` the name without its ``/``):

- per container: ``dockerlink_container_state`` (1 for the current state, 0 for the others),
  memory used and limit in bytes, CPU seconds used (a counter, reset when the container
  restarts) and the CPU limit in cores, network bytes received and transmitted (counters, reset
  when it restarts). Limits are 0 when none is set. Usage figures come from the sampler's last
  sample of the container: 0 while it is not running, absent until it is first sampled;
- ``dockerlink_http_requests_total`` and ``dockerlink_http_request_duration_seconds`` by method
  and route pattern (``unmatched`` for paths no route matches, so the label set stays small);
- ``dockerlink_sampler_tick_duration_seconds`` and ``dockerlink_sampler_errors_total``;
  ``dockerlink_sampler_ticks_total``, ``dockerlink_sampler_late_ticks_total`` (ticks that started
  more than 1 s after they were due) and ``dockerlink_sampler_max_lateness_seconds``;
- ``dockerlink_background_task_failures_total`` by ``task`` (``mirror``, ``mirror-reconcile``,
  ``sampler``): unexpected failures; each is logged and the task starts again;
- ``dockerlink_engine_up``: 1 when the engine answered a ping during this scrape;
- ``dockerlink_stats_open_files`` by ``holder`` (``cgroups``: running containers' files the
  sampler keeps open; ``history``: raw history files the writer keeps open), and the process's
  ``process_open_fds`` and ``process_max_fds`` (its soft ``RLIMIT_NOFILE``), named as
  Prometheus' client libraries name them;
- from :mod:`.events` and :mod:`.webhooks`: restarts, OOM kills and crashes per container, and the
  webhook delivery counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import docker_api

from .units import cpus_of

if TYPE_CHECKING:
    from docker_api import DockerClient

    from .mirror import ContainerMirror
    from .stats import HistoryStore, Sampler

__all__ = [
    "CONTAINER_STATES",
    "CONTENT_TYPE",
    "Counter",
    "Exposition",
    "Histogram",
    "ServiceMetrics",
    "method_label",
    "render_metrics",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The engine's container states; each container gets one ``dockerlink_container_state`` per state.
CONTAINER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
#: Request durations: most routes answer in milliseconds, a stop may wait its grace period.
HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: A sampler tick is about one second (a one-shot stats call) and should stay under the interval.
TICK_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
#: The longest a scrape waits for the engine (ping, and a listing when the mirror is stale).
SCRAPE_ENGINE_TIMEOUT_S = 5.0
UNMATCHED_ROUTE = "unmatched"
#: The methods recorded and logged as themselves. The HTTP server accepts any token as a method
#: (kilobytes long, control characters included): every other one is ``other``, so that a client
#: can neither grow the label sets without bound nor forge a log line.
STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
OTHER_METHOD = "other"

Labels = tuple[tuple[str, str], ...]


# -- instruments -----------------------------------------------------------------------------


class Counter:
    """A monotonically increasing value per label set."""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        self.name, self.help_text, self.label_names = name, help_text, tuple(label_names)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        self.values[label_values] = self.values.get(label_values, 0.0) + amount

    def forget(self, label: str, value: str) -> None:
        """Drop every series whose ``label`` is ``value`` (what it counted is gone)."""
        index = self.label_names.index(label)
        for key in [key for key in self.values if key[index] == value]:
            del self.values[key]

    def write(self, out: Exposition) -> None:
        out.family(self.name, "counter", self.help_text)
        for values, total in sorted(self.values.items()):
            out.sample(self.name, tuple(zip(self.label_names, values, strict=True)), total)


class Histogram:
    """Observations counted in cumulative ``le`` buckets, per label set."""

    def __init__(
        self,
        name: str,
        help_text: str,
        buckets: Sequence[float],
        label_names: Sequence[str] = (),
    ) -> None:
        self.name, self.help_text, self.label_names = name, help_text, tuple(label_names)
        self.bounds = tuple(sorted(buckets))
        #: The first bucket's bound (most request durations are in it); +Inf without buckets.
        self.first_bound = self.bounds[0] if self.bounds else math.inf
        #: Per label set: a count per bucket (not cumulative; the last one is +Inf), and the sum.
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *label_values: str) -> None:
        counts, total = self.series_of(label_values)
        counts[self.bucket_of(value)] += 1
        total[0] += value

    def series_of(self, label_values: tuple[str, ...]) -> tuple[list[int], list[float]]:
        """The counts and sum of a label set (made empty when it has none yet)."""
        series = self.series.get(label_values)
        if series is None:
            series = self.series[label_values] = ([0] * (len(self.bounds) + 1), [0.0])
        return series

    def bucket_of(self, value: float) -> int:
        """The index of the first bucket ``value`` is in (not above its bound): the last one,
        +Inf, for a value above every bound, or NaN."""
        if value <= self.first_bound:
            return 0
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                return i
        return len(self.bounds)

    def write(self, out: Exposition) -> None:
        out.family(self.name, "histogram", self.help_text)
        for values, (counts, total) in sorted(self.series.items()):
            labels = tuple(zip(self.label_names, values, strict=True))
            running = 0
            for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
                running += count
                le = "+Inf" if math.isinf(bound) else repr(float(bound))  # as Prometheus writes it
                out.sample(f"{self.name}_bucket", (*labels, ("le", le)), running)
            out.sample(f"{self.name}_sum", labels, total[0])
            out.sample(f"{self.name}_count", labels, running)


class ServiceMetrics:
    """dockerlink's own instruments, fed by the app's request class and the sampler's tick hook."""

    def __init__(self) -> None:
        self.http_requests = Counter(
            "dockerlink_http_requests_total",
            "HTTP requests answered, by method, route pattern and status.",
            ("method", "route", "status"),
        )
        self.http_duration = Histogram(
            "dockerlink_http_request_duration_seconds",
            "Time from receiving a request to its answer, by method and route pattern.",
            HTTP_BUCKETS_S,
            ("method", "route"),
        )
        self.task_failures = Counter(
            "dockerlink_background_task_failures_total",
            "Unexpected failures of a background task (each is logged; the task starts again).",
            ("task",),
        )
        self.sampler_tick = Histogram(
            "dockerlink_sampler_tick_duration_seconds",
            "Time the stats sampler took to sample every container once.",
            TICK_BUCKETS_S,
        )

        #: Per method, route and status: the request counter's key, and the duration
        #: histogram's series (what observe_requests would otherwise look up or make each time).
        self._request_series: dict[
            tuple[str, str, int], tuple[tuple[str, str, str], tuple[list[int], list[float]]]
        ] = {}

    def observe_requests(self, requests: Iterable[tuple[str, str, int, float]]) -> None:
        """Count requests and their durations: each its method, route, status and duration in
        seconds. ``method``: the request's, or its label already (:func:`method_label`: the
        series are kept by label, so a label is found at once)."""
        series = self._request_series
        counted = self.http_requests.values
        durations = self.http_duration
        first_bound = durations.first_bound
        for method, route, status, duration_s in requests:
            found = series.get((method, route, status))
            if found is None:
                found = self._series_of(method, route, status)
            key, (counts, total) = found
            counted[key] = counted.get(key, 0.0) + 1.0
            counts[0 if duration_s <= first_bound else durations.bucket_of(duration_s)] += 1
            total[0] += duration_s

    def _series_of(
        self, method: str, route: str, status: int
    ) -> tuple[tuple[str, str, str], tuple[list[int], list[float]]]:
        """The request counter's key and the duration histogram's series of a request, made
        the first time they are needed and kept by the method's label."""
        label = method_label(method)
        found = self._request_series.get((label, route, status))
        if found is None:
            found = self._request_series[label, route, status] = (
                (label, route, str(status)),
                self.http_duration.series_of((label, route)),
            )
        return found

    def observe_tick(self, duration_s: float) -> None:
        self.sampler_tick.observe(duration_s)


def method_label(method: str) -> str:
    """``method`` if it is a standard HTTP method, else ``other``."""
    return method if method in STANDARD_METHODS else OTHER_METHOD


# -- the text format -------------------------------------------------------------------------


class Exposition:
    """Builds a text-format page: a ``# HELP`` and ``# TYPE`` line per family, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines.append(f"# HELP {name} {escaped}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: Labels, value: float) -> None:
        self.samples(name, [(self.labels(labels), value)])

    @staticmethod
    def labels(labels: Labels) -> str:
        """``labels`` as a sample writes them between braces (for :meth:`samples`)."""
        return ",".join(f'{key}="{_label_value(text)}"' for key, text in labels)

    def samples(self, name: str, rows: Iterable[tuple[str, float]]) -> None:
        """Samples of ``name``, each with labels :meth:`labels` wrote (a set written once for
        many samples)."""
        self.lines.extend(
            f"{name}{{{labels}}} {_number(value)}" if labels else f"{name} {_number(value)}"
            for labels, value in rows
        )

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


# -- a scrape --------------------------------------------------------------------------------


async def render_metrics(
    *,
    docker: DockerClient,
    mirror: ContainerMirror,
    history: HistoryStore,
    sampler: Sampler,
    service: ServiceMetrics,
    extra: Sequence[Callable[[Exposition], None]] = (),
) -> str:
    """The whole ``/metrics`` page.

    Containers come from the mirror while it follows the engine, else from the engine itself;
    when the engine does not answer within ``SCRAPE_ENGINE_TIMEOUT_S``, the page says
    ``dockerlink_engine_up 0`` and has no container series rather than stale ones.
    """
    infos = await _containers(docker, mirror)
    out = Exposition()
    _write_containers(out, infos or [], history, sampler)
    service.http_requests.write(out)
    service.http_duration.write(out)
    service.sampler_tick.write(out)
    service.task_failures.write(out)
    out.family(
        "dockerlink_sampler_errors_total",
        "counter",
        "Sampler failures: ticks that could not list containers, containers not sampled.",
    )
    out.sample("dockerlink_sampler_errors_total", (), sampler.errors)
    out.family("dockerlink_sampler_ticks_total", "counter", "Sampler ticks completed.")
    out.sample("dockerlink_sampler_ticks_total", (), sampler.ticks)
    out.family(
        "dockerlink_sampler_late_ticks_total",
        "counter",
        "Sampler ticks that started more than 1 s after they were due.",
    )
    out.sample("dockerlink_sampler_late_ticks_total", (), sampler.late_ticks)
    out.family(
        "dockerlink_sampler_max_lateness_seconds",
        "gauge",
        "The longest a sampler tick started after it was due, since dockerlink started.",
    )
    out.sample("dockerlink_sampler_max_lateness_seconds", (), sampler.max_lateness_s)
    out.family("dockerlink_engine_up", "gauge", "1 when the Docker engine answered this scrape.")
    out.sample("dockerlink_engine_up", (), 0 if infos is None else 1)
    _write_files(out, sampler.open_files, history.open_files)
    for write in extra:  # families kept elsewhere: lifecycle events, webhooks
        write(out)
    return out.text()


def _write_files(out: Exposition, cgroups: int, history: int) -> None:
    out.family(
        "dockerlink_stats_open_files",
        "gauge",
        "Files the stats code keeps open: running containers' cgroup files, raw history files.",
    )
    out.sample("dockerlink_stats_open_files", (("holder", "cgroups"),), cgroups)
    out.sample("dockerlink_stats_open_files", (("holder", "history"),), history)
    with contextlib.suppress(OSError):  # no /proc: not Linux
        open_fds = len(os.listdir("/proc/self/fd"))
        out.family("process_open_fds", "gauge", "Number of open file descriptors.")
        out.sample("process_open_fds", (), open_fds)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        out.family("process_max_fds", "gauge", "Maximum number of open file descriptors.")
        out.sample("process_max_fds", (), soft)


async def _containers(docker: DockerClient, mirror: ContainerMirror) -> list[dict[str, Any]] | None:
    """Every container's inspect, or None when the engine does not answer."""
    try:
        async with asyncio.timeout(SCRAPE_ENGINE_TIMEOUT_S):
            await docker.ping(timeout=SCRAPE_ENGINE_TIMEOUT_S)
            return await mirror.every_container(timeout=SCRAPE_ENGINE_TIMEOUT_S)
    except (docker_api.DockerError, TimeoutError):
        return None


_CONTAINER_FAMILIES = (
    ("dockerlink_container_state", "gauge", "1 for the container's current state, else 0."),
    (
        "dockerlink_container_memory_used_bytes",
        "gauge",
        "Memory in use (usage minus inactive file cache, as docker stats shows it).",
    ),
    ("dockerlink_container_memory_limit_bytes", "gauge", "Memory limit; 0 when none is set."),
    (
        "dockerlink_container_cpu_seconds_total",
        "counter",
        "CPU time used since the container started.",
    ),
    ("dockerlink_container_cpu_limit_cores", "gauge", "CPU limit in cores; 0 when none is set."),
    (
        "dockerlink_container_network_receive_bytes_total",
        "counter",
        "Bytes received on every interface since the container started.",
    ),
    (
        "dockerlink_container_network_transmit_bytes_total",
        "counter",
        "Bytes sent on every interface since the container started.",
    ),
)


def _write_containers(
    out: Exposition, infos: Iterable[Mapping[str, Any]], history: HistoryStore, sampler: Sampler
) -> None:
    """Every container's samples. Thirteen a container: each one's labels are written once (a
    thousand containers make 13,000 lines at every scrape)."""
    rows: dict[str, list[tuple[str, float]]] = {name: [] for name, _, _ in _CONTAINER_FAMILIES}
    states = rows["dockerlink_container_state"]
    memory_limits = rows["dockerlink_container_memory_limit_bytes"]
    cpu_limits = rows["dockerlink_container_cpu_limit_cores"]
    memory_used = rows["dockerlink_container_memory_used_bytes"]
    cpu_seconds = rows["dockerlink_container_cpu_seconds_total"]
    received = rows["dockerlink_container_network_receive_bytes_total"]
    transmitted = rows["dockerlink_container_network_transmit_bytes_total"]
    known_states = {state: out.labels((("state", state),)) for state in CONTAINER_STATES}
    for info in sorted(infos, key=lambda i: str(i.get("Name", ""))):
        container_id = str(info["Id"])
        name = str(info.get("Name", "")).lstrip("/")
        labels = out.labels((("id", container_id), ("name", name)))
        state = str((info.get("State") or {}).get("Status") or "unknown")
        state_labels = known_states
        if state not in known_states:
            state_labels = {**known_states, state: out.labels((("state", state),))}
        for candidate, candidate_labels in state_labels.items():
            states.append((f"{labels},{candidate_labels}", 1 if candidate == state else 0))
        host_config = info.get("HostConfig") or {}
        memory_limits.append((labels, int(host_config.get("Memory") or 0)))
        cpu_limits.append((labels, cpus_of(host_config)))
        last = history.last(container_id)
        if last is not None:
            memory_used.append((labels, last.mem_used_kib * 1024))
        usage = sampler.usage.get(container_id)
        if usage is not None:
            cpu_seconds.append((labels, usage.cpu_ns / 1e9))
            received.append((labels, usage.rx_bytes))
            transmitted.append((labels, usage.tx_bytes))
    for family, kind, help_text in _CONTAINER_FAMILIES:
        out.family(family, kind, help_text)
        out.samples(family, rows[family])
