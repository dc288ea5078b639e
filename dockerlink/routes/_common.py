"""The domain objects a handler reaches through its request."""

from __future__ import annotations

from sanic import Request
from sanic.request import RequestParameters

from docker_api import DockerClient

from ..context import context_of
from ..hosting import Hosting

__all__ = ["docker_of", "hosting_of", "query"]


def query(request: Request) -> RequestParameters:
    """The query string with blank values kept, so that ``?t=`` is refused, not ignored."""
    return request.get_args(keep_blank_values=True)


def hosting_of(request: Request) -> Hosting:
    hosting = context_of(request).hosting
    assert hosting is not None, "the app has not started"
    return hosting


def docker_of(request: Request) -> DockerClient:
    docker = context_of(request).docker
    assert docker is not None, "the app has not started"
    return docker
