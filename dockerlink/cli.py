"""The ``dockerlink`` command: ``serve``, ``check`` and ``version``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import docker_api

from . import __version__
from .settings import Settings, SettingsError, load_settings

__all__ = ["main"]

_DESCRIPTION = """\
dockerlink runs a hosting panel's customer containers on one Docker host.
Settings come from the environment and from a .env file in the working directory
(see .env.example); a bad value stops start-up with a line naming the setting."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockerlink", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "serve",
        help="run the HTTP API (the default)",
        description="Run the HTTP API on host:port from the settings, until SIGINT or SIGTERM.",
    )
    commands.add_parser(
        "check",
        help="check the settings and the engine, then exit (0 when all is well)",
        description="Validate the settings, reach the engine and report its API version.",
    )
    commands.add_parser("version", help="print dockerlink's version")
    args = parser.parse_args(argv)

    if args.command == "version":
        print(f"dockerlink {__version__}")
        return 0
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"dockerlink: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        return asyncio.run(_check(settings))
    return serve(settings)


def serve(settings: Settings) -> int:
    from .app import create_app  # Sanic is only needed to serve

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    app.run(
        host=settings.host,
        port=settings.port,
        single_process=True,
        access_log=True,
        motd=False,
    )
    return 0


async def _check(settings: Settings) -> int:
    print(f"settings: ok (engine socket {settings.docker_sock})")
    async with docker_api.DockerClient(
        settings.docker_sock, timeout=settings.docker_timeout
    ) as docker:
        try:
            version = await docker.version()
        except docker_api.DockerError as exc:
            print(f"engine: unavailable: {exc.message}")
            return 1
    print(f"engine: Docker {version.get('Version')} (API {docker.api_version} negotiated)")
    return 0
