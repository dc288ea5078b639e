"""The engine connection the settings describe (a unix socket, or TCP with TLS client certs),
and the probe ``/health`` asks whether the engine answers."""

from __future__ import annotations

import asyncio
from typing import Any

from docker_api import DockerClient, TLSConfig

from .settings import Settings

__all__ = ["ENGINE_CONNECTIONS", "HEALTH_TIMEOUT_S", "EngineProbe", "engine_client"]

#: /health must answer quickly even when the engine hangs.
HEALTH_TIMEOUT_S = 5.0
#: Connections to the engine at most: the sampler takes up to three quarters of them (see
#: :func:`dockerlink.stats.sampler.concurrency_for`), API requests the rest.
ENGINE_CONNECTIONS = 64


def engine_client(settings: Settings) -> DockerClient:
    """A client for ``docker_sock`` (with ``docker_cert_path``'s certificates over TCP)."""
    tls = (
        TLSConfig.from_cert_path(settings.docker_cert_path)
        if settings.docker_cert_path is not None
        else None
    )
    return DockerClient(
        settings.docker_sock,
        timeout=settings.docker_timeout,
        tls=tls,
        max_connections=ENGINE_CONNECTIONS,
    )


class EngineProbe:
    """The engine's ``/version``, one call at a time, shared by every caller that asks while it
    runs: a burst of health checks costs the engine one call, not one each. (The engine runs
    ``runc --version`` and the like for every ``/version``: ~10 ms of its time, and under 200
    clients a call each made /health time out.)"""

    def __init__(self, docker: DockerClient) -> None:
        self._docker = docker
        self._timeout_s = min(docker.timeout, HEALTH_TIMEOUT_S)
        self._in_flight: asyncio.Future[dict[str, Any]] | None = None

    async def version(self) -> dict[str, Any]:
        """The engine's answer, or the :class:`docker_api.DockerError` of the shared call."""
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.ensure_future(self._docker.version(timeout=self._timeout_s))
            self._in_flight.add_done_callback(_retrieve)
        # Shielded: a caller that goes away does not cancel the call for the others.
        return await asyncio.shield(self._in_flight)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark the outcome as seen, so that a failure nobody awaited is not reported as lost."""
    if not future.cancelled():
        future.exception()
