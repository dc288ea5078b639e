"""The application context: long-lived objects opened at start and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sanic import Request

from .settings import Settings

if TYPE_CHECKING:
    from docker_api import DockerClient

    from .hosting import Hosting
    from .stats import HistoryStore, Sampler


@dataclass
class AppContext:
    settings: Settings
    docker: DockerClient | None = None
    hosting: Hosting | None = None
    history: HistoryStore | None = None
    sampler: Sampler | None = None


def context_of(request: Request) -> AppContext:
    ctx = request.app.ctx
    assert isinstance(ctx, AppContext)
    return ctx
