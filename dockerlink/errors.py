"""HTTP errors, and the one place that turns domain and engine errors into HTTP answers.

Handlers and request parsing raise :class:`HTTPError` subclasses; the domain raises
:class:`~dockerlink.domain_errors.DomainError` subclasses and lets ``docker_api`` errors through.
The app's single error handler renders all three as one line of plain text, the last two through
the tables below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import docker_api

from . import domain_errors as domain

_Entry = TypeVar("_Entry")

__all__ = [
    "DOMAIN_ERROR_STATUS",
    "ENGINE_ERROR_STATUS",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "HTTPError",
    "NotFound",
    "PreconditionFailed",
    "TooManyRequests",
    "Unauthorized",
    "domain_error_answer",
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


#: Domain error class -> HTTP status; the answer is the error's own message. Looked up along the
#: exception's MRO, so the most specific entry wins. A unit test checks every class is here.
DOMAIN_ERROR_STATUS: dict[type[domain.DomainError], int] = {
    domain.DomainError: 500,
    domain.InvalidRequest: 400,
    domain.NoSuchContainer: 404,
    domain.NoSuchImage: 404,
    # 406 for a power action in the wrong state, as the original service answered.
    domain.WrongState: 406,
    domain.AlreadyRunning: 406,
    domain.AlreadyStopped: 406,
    domain.NotRunning: 406,
    domain.NotRunningForExec: 409,
    domain.InUse: 409,
    domain.NotManaged: 412,
    domain.MustBeStopped: 412,
    domain.GitFailed: 412,
    domain.GitBusy: 409,
    domain.ActionFailed: 500,
}


def domain_error_answer(exc: domain.DomainError) -> tuple[int, str]:
    """The HTTP status and message for a domain error."""
    return _most_specific(DOMAIN_ERROR_STATUS, exc), exc.message


class NotFound(HTTPError):
    status_code = 404


class Conflict(HTTPError):
    status_code = 409


class PreconditionFailed(HTTPError):
    status_code = 412


class TooManyRequests(HTTPError):
    status_code = 429


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
    status, prefix = _most_specific(ENGINE_ERROR_STATUS, exc)
    return status, prefix + _first_letter_lower(exc.message) + _output_so_far(exc)


def _most_specific(table: Mapping[type[Any], _Entry], exc: Exception) -> _Entry:
    """The entry of the exception's own class, else of its nearest base class in ``table``."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    raise AssertionError(f"unmapped error {type(exc).__name__}")  # pragma: no cover


def _output_so_far(exc: docker_api.DockerError) -> str:
    """What a timed-out exec printed before its deadline (the answer is still one line)."""
    if not isinstance(exc, docker_api.ExecTimeout):
        return ""
    text = " ".join(exc.output.decode("utf-8", "replace").split())
    dropped = f"; {domain.dropped_note(exc.dropped)}" if exc.dropped else ""
    return (f"; output so far: {text}" if text else "; it printed nothing") + dropped


def _first_letter_lower(message: str) -> str:
    """Engine messages start with a capital ("No such image: x"); ours are lowercase lines."""
    message = " ".join(message.split())
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        return message[0].lower() + message[1:]
    return message
