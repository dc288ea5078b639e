"""docker_api: a small async client for the Docker Engine API over its unix socket or TCP (TLS).

It knows nothing of the application using it::

    from docker_api import DockerClient, NotFound

    async with DockerClient("/var/run/docker.sock", timeout=30) as docker:
        try:
            info = await docker.containers.inspect("web1")
        except NotFound:
            ...

Resources hang off the client: ``docker.containers``, ``docker.execs``, ``docker.images``,
``docker.events``. Every call has a timeout (the client's, or its own ``timeout=``); every failure
is one of the exceptions in :mod:`docker_api.errors`.
"""

from ._util import exception_chain
from .client import MAX_API_VERSION, MIN_API_VERSION, DockerClient
from .errors import (
    APIError,
    BadParameter,
    Conflict,
    DockerError,
    EngineConnectionError,
    EngineTimeout,
    EngineUnavailable,
    EngineUnreachable,
    ExecTimeout,
    NotFound,
    NotModified,
    ServerError,
    UnsupportedEngineVersion,
)
from .events import Reconnected
from .execs import ExecResult
from .hijack import HijackedStream
from .streams import Frame, FrameDecoder, StreamType
from .tls import TLSConfig

__all__ = [
    "MAX_API_VERSION",
    "MIN_API_VERSION",
    "APIError",
    "BadParameter",
    "Conflict",
    "DockerClient",
    "DockerError",
    "EngineConnectionError",
    "EngineTimeout",
    "EngineUnavailable",
    "EngineUnreachable",
    "ExecResult",
    "ExecTimeout",
    "Frame",
    "FrameDecoder",
    "HijackedStream",
    "NotFound",
    "NotModified",
    "Reconnected",
    "ServerError",
    "StreamType",
    "TLSConfig",
    "UnsupportedEngineVersion",
    "exception_chain",
]
