"""The application context: long-lived objects opened at start and shared by every request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sanic import Request

from .metrics import ServiceMetrics
from .settings import Settings
from .ssh_bridge import SSHBridge

if TYPE_CHECKING:
    from docker_api import DockerClient

    from .engine import EngineProbe
    from .hosting import Hosting
    from .mirror import ContainerMirror
    from .stats import HistoryStore, Sampler
    from .terminal import TerminalSessions


@dataclass
class AppContext:
    settings: Settings
    docker: DockerClient | None = None
    probe: EngineProbe | None = None
    hosting: Hosting | None = None
    mirror: ContainerMirror | None = None
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    history: HistoryStore | None = None
    sampler: Sampler | None = None
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    terminals: TerminalSessions | None = None
    #: The SSH bridge (/v1/ssh/...), with its in-memory count of failed logins per container.
    ssh: SSHBridge = field(default_factory=SSHBridge)


def context_of(request: Request) -> AppContext:
    ctx = request.app.ctx
    assert isinstance(ctx, AppContext)
    return ctx
