"""The engine connection the settings describe: a unix socket, or TCP with TLS client certs."""

from __future__ import annotations

from docker_api import DockerClient, TLSConfig

from .settings import Settings

__all__ = ["engine_client"]


def engine_client(settings: Settings) -> DockerClient:
    """A client for ``docker_sock`` (with ``docker_cert_path``'s certificates over TCP)."""
    tls = (
        TLSConfig.from_cert_path(settings.docker_cert_path)
        if settings.docker_cert_path is not None
        else None
    )
    return DockerClient(settings.docker_sock, timeout=settings.docker_timeout, tls=tls)
