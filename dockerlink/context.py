"""The application context: the long-lived objects opened at start and shared by every request.

Built whole by one start-up listener (``open_services`` in :mod:`dockerlink.app`): no field is
ever missing, so no handler checks whether the app has started.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sanic import Request

from .ssh_bridge import SSHBridge

if TYPE_CHECKING:
    from docker_api import DockerClient

    from .answered import AnsweredRequests
    from .engine import EngineProbe
    from .events import LifecycleEvents
    from .git import GitService
    from .hosting import Hosting
    from .mirror import ContainerMirror
    from .prometheus import ServiceMetrics
    from .settings import Settings
    from .stats import HistoryStore, Sampler
    from .terminal import TerminalSessions


@dataclass
class AppContext:
    settings: Settings
    docker: DockerClient
    probe: EngineProbe
    mirror: ContainerMirror
    hosting: Hosting
    #: Git in the containers; it holds each container's git lock.
    git: GitService
    history: HistoryStore
    sampler: Sampler
    metrics: ServiceMetrics
    #: The requests answered in this turn of the loop, logged and counted at its end.
    answered: AnsweredRequests
    lifecycle: LifecycleEvents
    terminals: TerminalSessions
    #: The background tasks, by name, from server start to server stop.
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    #: The SSH bridge (/v1/ssh/...), with its in-memory count of failed logins per container
    #: and of open sessions.
    ssh: SSHBridge = field(default_factory=SSHBridge)


def context_of(request: Request) -> AppContext:
    ctx = request.app.ctx
    assert isinstance(ctx, AppContext), "the app has not started"
    return ctx
