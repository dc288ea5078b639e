"""The requests answered during one turn of the event loop, logged and counted at its end.

Every answered request gets one log line and is counted in the request metrics. Made on each
request's way, that was a call into the logs and one into the metrics, each looking up for
itself what it needed (the log handler, the running loop, the time, the series). Under load
one turn answers tens of requests: here each is noted with one append, and the turn's lines
and counts are made in one loop over them once the turn ends.
"""

from __future__ import annotations

import asyncio
import time
from asyncio import _get_running_loop
from typing import Protocol

from .logs import RequestLine, log_requests
from .prometheus import UNMATCHED_ROUTE, ServiceMetrics, method_label

__all__ = ["AnsweredRequests", "ObservedRequest", "route_label"]


class MatchedRoute(Protocol):
    """What is read of the route a request matched."""

    @property
    def path(self) -> str: ...


class ObservedRequest(Protocol):
    """What is read of an answered request (a Sanic request with an id and a start)."""

    @property
    def request_id(self) -> str: ...
    @property
    def started_s(self) -> float: ...
    @property
    def bad_url(self) -> str | None: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> str: ...
    @property
    def route(self) -> MatchedRoute | None: ...


class AnsweredRequests:
    """The requests answered and not logged yet, with the status each answer started with and
    when (``time.monotonic()``); logged and counted at the end of the loop turn that answered
    them."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self._answered: list[tuple[ObservedRequest, int, float]] = []
        #: The loop whose turn's end logs them; None once they are.
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, request: ObservedRequest, status: int) -> None:
        """Note ``request`` answered now with ``status``: it is logged and counted at the end
        of this turn of the running loop (at once when none runs)."""
        self._answered.append((request, status, time.monotonic()))
        loop = self._loop
        if loop is None or not loop.is_running():  # (or a loop stopped before its turn ended)
            loop = self._loop = _get_running_loop()
            if loop is None:
                self.flush()
            else:
                loop.call_soon(self.flush)

    def flush(self) -> None:
        """Log and count every request noted so far, in the order they were answered: one
        line each (``[id] METHOD path?query status duration ms``) and the request metrics."""
        self._loop = None
        answered, self._answered = self._answered, []
        if not answered:
            return
        wall_s = time.time() - time.monotonic()  # what to add to a monotonic time
        lines: list[RequestLine] = []
        counted: list[tuple[str, str, int, float]] = []
        for request, status, answered_s in answered:
            duration_s = answered_s - request.started_s
            method = method_label(request.method)
            path = request.bad_url
            if not path:
                path = request.path
                query_string = request.query_string
                if query_string:
                    path = f"{path}?{query_string}"
            lines.append(
                (answered_s + wall_s, request.request_id, method, path, status, duration_s * 1000)
            )
            counted.append((method, route_label(request), status, duration_s))
        try:
            log_requests(lines)
        finally:
            self.metrics.observe_requests(counted)


#: Route pattern -> its label, made once per route.
_route_labels: dict[str, str] = {}


def route_label(request: ObservedRequest) -> str:
    """The matched route's pattern (``/v1/container/stats``), not the path: a bounded label."""
    route = request.route
    if route is None:
        return UNMATCHED_ROUTE
    path = route.path
    label = _route_labels.get(path)
    if label is None:
        label = _route_labels[path] = "/" + path.rstrip("/")
    return label
