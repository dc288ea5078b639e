"""HTTP errors, and the one table that turns engine errors into HTTP answers.

Handlers and the domain raise :class:`HTTPError` subclasses, or let ``docker_api`` errors
through; the app's single error handler renders both as one line of plain text.
"""

from __future__ import annotations

from collections.abc import Mapping

import docker_api

__all__ = [
    "ENGINE_ERROR_STATUS",
    "ActionFailed",
    "BadRequest",
    "Conflict",
    "EngineUnavailable",
    "Forbidden",
    "GatewayTimeout",
    "HTTPError",
    "NotDockerlink",
    "NotFound",
    "PreconditionFailed",
    "TooManyRequests",
    "Unauthorized",
    "WrongState",
    "engine_error_answer",
]


class HTTPError(Exception):
    """An answer to send: ``status_code`` and a one-line ``message`` (plus optional headers)."""

    status_code = 500

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(HTTPError):
    status_code = 400


class Unauthorized(HTTPError):
    status_code = 401

    def __init__(self) -> None:
        super().__init__("unauthorized", headers={"WWW-Authenticate": "Bearer"})


class Forbidden(HTTPError):
    status_code = 403


class NotFound(HTTPError):
    status_code = 404


class WrongState(HTTPError):
    """The container is not in a state the action applies to (406, as the original)."""

    status_code = 406


class Conflict(HTTPError):
    status_code = 409


class PreconditionFailed(HTTPError):
    status_code = 412


class NotDockerlink(PreconditionFailed):
    def __init__(self, too_old: bool = False) -> None:
        message = "this docker has not been created with dockerlink"
        super().__init__(message + (" or is too old" if too_old else ""))


class TooManyRequests(HTTPError):
    status_code = 429


class ActionFailed(HTTPError):
    """The engine could not carry out the action (a start it refused...)."""

    status_code = 500


class EngineUnavailable(HTTPError):
    status_code = 503


class GatewayTimeout(HTTPError):
    status_code = 504


#: Engine error class -> (HTTP status, prefix for the engine's message). Looked up along the
#: exception's MRO, so the most specific entry wins. A unit test checks every class is here.
ENGINE_ERROR_STATUS: dict[type[docker_api.DockerError], tuple[int, str]] = {
    docker_api.DockerError: (502, "docker engine error: "),
    docker_api.EngineConnectionError: (503, "docker engine unavailable: "),
    docker_api.EngineUnreachable: (503, "docker engine unavailable: "),
    docker_api.EngineTimeout: (503, "docker engine unavailable: "),
    docker_api.UnsupportedEngineVersion: (503, "docker engine unavailable: "),
    docker_api.EngineUnavailable: (503, "docker engine unavailable: "),
    docker_api.ExecTimeout: (504, ""),
    docker_api.APIError: (502, "docker engine error: "),
    docker_api.NotModified: (409, ""),
    docker_api.BadParameter: (400, ""),
    docker_api.NotFound: (404, ""),
    docker_api.Conflict: (409, ""),
    docker_api.ServerError: (500, "docker engine error: "),
}


def engine_error_answer(exc: docker_api.DockerError) -> tuple[int, str]:
    """The HTTP status and message for an engine error that reached the edge."""
    for cls in type(exc).__mro__:
        entry = ENGINE_ERROR_STATUS.get(cls)
        if entry is not None:
            status, prefix = entry
            return status, prefix + _first_letter_lower(exc.message) + _output_so_far(exc)
    raise AssertionError(f"unmapped engine error {type(exc).__name__}")  # pragma: no cover


def _output_so_far(exc: docker_api.DockerError) -> str:
    """What a timed-out exec printed before its deadline (the answer is still one line)."""
    if not isinstance(exc, docker_api.ExecTimeout):
        return ""
    text = " ".join(exc.output.decode("utf-8", "replace").split())
    return f"; output so far: {text}" if text else "; it printed nothing"


def _first_letter_lower(message: str) -> str:
    """Engine messages start with a capital ("No such image: x"); ours are lowercase lines."""
    message = " ".join(message.split())
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        return message[0].lower() + message[1:]
    return message
