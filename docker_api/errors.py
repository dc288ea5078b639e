"""The exceptions raised by docker_api, and the one place where engine answers become them.

    DockerError                      root of everything this package raises
    ├── EngineConnectionError        no answer from the engine at all
    │   ├── EngineUnreachable        the socket is missing, refused, or the connection broke
    │   └── EngineTimeout            the engine did not answer within the call's timeout
    ├── UnsupportedEngineVersion     the engine speaks no API version this client supports
    ├── ExecTimeout                  an exec ran past its deadline (what it printed is attached)
    └── APIError                     the engine answered with an error status
        ├── NotModified              304: the object is already in the requested state
        ├── BadParameter             400: the engine rejected a parameter, or an ambiguous id prefix
        ├── NotFound                 404: no such container, image, exec...
        ├── Conflict                 409: name in use, container not running, removal in progress...
        ├── EngineUnavailable        503: the engine is up but cannot serve the call
        └── ServerError              any other 5xx (runtime failures, 500 on bad JSON types...)

Other statuses (401, 403, 501, unexpected 3xx/4xx) raise plain ``APIError``. Callers branch on
these types, never on status numbers or message text.
"""

from __future__ import annotations

import orjson

__all__ = [
    "APIError",
    "BadParameter",
    "Conflict",
    "DockerError",
    "EngineConnectionError",
    "EngineTimeout",
    "EngineUnavailable",
    "EngineUnreachable",
    "ExecTimeout",
    "NotFound",
    "NotModified",
    "ServerError",
    "UnsupportedEngineVersion",
    "error_for_status",
]


class DockerError(Exception):
    """Root of every error raised by docker_api."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineConnectionError(DockerError):
    """The engine gave no answer: the request may or may not have been carried out."""


class EngineUnreachable(EngineConnectionError):
    """The engine's socket is missing or refused the connection, or the connection broke."""


class EngineTimeout(EngineConnectionError):
    """The engine did not answer within the call's timeout."""


class UnsupportedEngineVersion(DockerError):
    """The engine's API version range does not overlap the client's."""


class ExecTimeout(DockerError):
    """An exec did not finish within its deadline; ``output`` holds what it printed until then
    (up to the run's ``max_output_bytes``; ``dropped`` counts the bytes past it).

    The process may still be running inside the container: the engine has no call to stop an
    exec, only the container.
    """

    def __init__(self, message: str, output: bytes, *, dropped: int = 0) -> None:
        super().__init__(message)
        self.output = output
        self.dropped = dropped


class APIError(DockerError):
    """The engine answered with an error status; ``message`` is the engine's own text."""

    status_code: int = 0

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


class NotModified(APIError):
    """304: the object is already in the requested state (start a running container...)."""

    status_code = 304


class BadParameter(APIError):
    status_code = 400


class NotFound(APIError):
    status_code = 404


class Conflict(APIError):
    status_code = 409


class EngineUnavailable(APIError):
    status_code = 503


class ServerError(APIError):
    status_code = 500


_BY_STATUS: dict[int, type[APIError]] = {
    304: NotModified,
    400: BadParameter,
    404: NotFound,
    409: Conflict,
    503: EngineUnavailable,
}


def engine_message(body: bytes, content_type: str, reason: str) -> str:
    """The engine's error text: JSON ``message``, else the text body, else the reason phrase."""
    text = ""
    if body:
        if "json" in content_type:
            try:
                decoded = orjson.loads(body)
            except orjson.JSONDecodeError:
                decoded = None
            if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
                text = decoded["message"]
        if not text:
            text = body.decode("utf-8", "replace")
    return text.strip() or reason or "no message"


#: An id prefix that matches several objects is the caller's bad parameter, but engines up to at
#: least 20.10 answer it with a 500 (found by fuzzing: ``POST /v1/container/stop?id=f``). The
#: message is the only sign of it; it is read here, at the boundary, and nowhere else.
_AMBIGUOUS_PREFIX = "multiple ids found with provided prefix"


def error_for_status(status_code: int, body: bytes, content_type: str, reason: str) -> APIError:
    """Build the exception for an engine answer whose status is not a success."""
    message = engine_message(body, content_type, reason)
    cls = _BY_STATUS.get(status_code)
    if cls is None:
        cls = ServerError if status_code >= 500 else APIError
    if cls is ServerError and message.lower().startswith(_AMBIGUOUS_PREFIX):
        cls = BadParameter
    return cls(message, status_code)
