"""The ``dockerlink`` command: ``serve``, ``check`` and ``version``."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import docker_api

from . import __version__
from .settings import Settings, SettingsError, load_settings
from .stats.cgroups import CGROUP_ROOT, PROC_ROOT

__all__ = ["main"]

#: Exit statuses, as ``--help`` lists them.
EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_BAD_SETTINGS = 2
#: How long a thread holding the GIL keeps the event loop waiting for it (Python: 5 ms).
GIL_SWITCH_INTERVAL_S = 0.001

_DESCRIPTION = """\
dockerlink runs a hosting panel's customer containers on one Docker host.
Settings come from the environment and from a .env file in the working directory
(see .env.example); a bad value stops start-up with a line naming the setting."""

_EPILOG = """\
exit status: 0 when all is well, 1 when `check` found a problem, 2 when a setting is invalid
(or the command line is wrong). Without a command, dockerlink serves."""

_SERVE_HELP = """\
Run the HTTP API on host:port from the settings, in one process, until SIGINT or SIGTERM.
Logs go to stderr: one line per request, in the format log_format names (text or json)."""

_CHECK_HELP = """\
Check that dockerlink can run here, then exit: validate the settings (and print them, the
token hidden), check that data_dir exists or can be created and is writable, that the
addresses of host can be listened on with port (one in use is only said), and reach the
engine named by docker_sock to report its version and the negotiated API version, and say where
the stats sampler's figures really come from (each running container's cgroup files, or the
engine's stats API, and why); with webhook_url set, POST a signed test event there. Prints one
line per check; exits 0 only when every check passed, 1 otherwise (2: invalid settings)."""

_VERSION_HELP = "Print dockerlink's version and the Docker Engine API versions it speaks."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dockerlink",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary, text in (
        ("serve", "run the HTTP API (the default)", _SERVE_HELP),
        ("check", "check the settings, data_dir and the engine, then exit", _CHECK_HELP),
        ("version", "print dockerlink's version", _VERSION_HELP),
    ):
        commands.add_parser(
            name,
            help=summary,
            description=text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    args = parser.parse_args(argv)

    if args.command == "version":
        print(
            f"dockerlink {__version__} (Docker Engine API "
            f"{docker_api.MIN_API_VERSION} to {docker_api.MAX_API_VERSION})"
        )
        return EXIT_OK
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"dockerlink: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    if args.command == "check":
        return asyncio.run(check(settings))
    return serve(settings)


def serve(settings: Settings) -> int:
    from .allocator import limit_arenas
    from .app import create_app  # Sanic is only needed to serve
    from .listen import BACKLOG, ListenError, bind_listeners, close_listeners, serve_also, url_of
    from .logs import configure_logging
    from .webhooks import url_secrets

    data_problem, _ = data_dir_status(settings.data_dir)
    if data_problem is not None:  # one line naming the setting, not a traceback later
        print(f"dockerlink: data_dir: {data_problem}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    limit_arenas()  # before any thread starts (see .allocator)
    # The loop waits for the GIL whenever a worker thread holds it (the history writer, the
    # sampler's cgroup reads): at most this long, not the interpreter's 5 ms, before an
    # answer can go on.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    app = create_app(settings)
    # After Sanic set up its own; the token is redacted wherever a client may have put it.
    secrets = [s for s in (settings.api_token, settings.webhook_secret) if s]
    secrets += url_secrets(settings.webhook_url) if settings.webhook_url else []
    configure_logging(settings.log_level, settings.log_format, secrets)
    try:
        sockets = bind_listeners(settings.hosts, settings.port)
    except ListenError as exc:
        print(f"dockerlink: {exc.strerror}", file=sys.stderr)
        return EXIT_PROBLEM
    logging.getLogger("dockerlink").info(
        "listening on %s", ", ".join(url_of(sock.getsockname()) for sock in sockets)
    )
    # Sanic serves the first address; the others share its protocol, in this process and its
    # one event loop (see serve_also).
    app.prepare(
        sock=sockets[0],
        backlog=BACKLOG,  # (Sanic listens on the socket again, with 100 by default)
        single_process=True,
        access_log=False,  # dockerlink logs each request itself (dockerlink.request)
        motd=False,
    )
    serve_also(app, sockets[1:])
    try:
        type(app).serve_single(primary=app)
    finally:
        close_listeners(sockets)  # and the unix socket files
    return EXIT_OK


async def check(
    settings: Settings, *, cgroup_root: Path = CGROUP_ROOT, proc_root: Path = PROC_ROOT
) -> int:
    """Print one line per check (and the settings); the exit status for ``dockerlink check``.

    ``cgroup_root`` and ``proc_root``: where the stats source looks (tests point them elsewhere).
    """
    print("settings: ok")
    for name, value in settings_lines(settings):
        print(f"  {name} = {value}")
    problems = 0
    data_problem, data_note = data_dir_status(settings.data_dir)
    if data_problem is None:
        print(f"data_dir: ok: {data_note}")
    else:
        problems += 1
        print(f"data_dir: PROBLEM: {data_problem}")
    listen_problem, listen_note = listen_status(settings)
    if listen_problem is None:
        print(f"listen: {listen_note}")
    else:
        problems += 1
        print(f"listen: PROBLEM: {listen_problem}")
    engine_problem, engine_note = await engine_status(settings)
    if engine_problem is not None:
        problems += 1
        print(f"engine: PROBLEM: {engine_problem}")
    else:
        print(f"engine: ok: {engine_note}")
        stats_problem, stats_note = await stats_status(settings, cgroup_root, proc_root)
        print(stats_note)
        if stats_problem is not None:
            problems += 1
            print(f"stats: PROBLEM: {stats_problem}")
    if settings.webhook_url is not None and settings.webhook_secret is not None:
        from .webhooks import send_test

        webhook_problem, webhook_note = await send_test(
            settings.webhook_url, settings.webhook_secret, timeout_s=settings.webhook_timeout
        )
        if webhook_problem is None:
            print(f"webhook: ok: {webhook_note}")
        else:
            problems += 1
            print(f"webhook: PROBLEM: {webhook_problem}")
    if problems:
        print(f"dockerlink check: {problems} problem(s) found", file=sys.stderr)
        return EXIT_PROBLEM
    print("all is well")
    return EXIT_OK


def settings_lines(settings: Settings) -> list[tuple[str, str]]:
    """Every setting as text, the token replaced by whether one is set."""
    lines = []
    for field in fields(settings):
        value = getattr(settings, field.name)
        if field.name in {"api_token", "webhook_secret"}:
            text = "(set, hidden)" if value else "(none)"
        elif field.name == "webhook_url" and value is not None:
            from .webhooks import shown_url

            text = shown_url(value)
        elif value is None:
            text = "(none)"
        elif isinstance(value, tuple):
            text = ",".join(value) or "(none)"
        else:
            text = str(value)
        lines.append((field.name, text))
    return lines


def data_dir_status(data_dir: Path) -> tuple[str | None, str]:
    """``(problem, None)`` or ``(None, what is fine)`` for the data directory."""
    path = data_dir.absolute()
    if path.exists():
        if not path.is_dir():
            return f"{path} is not a directory", ""
        try:
            with tempfile.TemporaryFile(dir=path, prefix=".dockerlink-check-"):
                pass
        except OSError as exc:
            return f"{path} is not writable: {exc.strerror or exc}", ""
        return None, f"{path} exists and is writable"
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{path} cannot be created: {parent} is not a directory", ""
    if not os.access(parent, os.W_OK | os.X_OK) or _read_only(parent):
        return f"{path} cannot be created: {parent} is not writable", ""
    return None, f"{path} does not exist yet; dockerlink will create it (in {parent})"


def listen_status(settings: Settings) -> tuple[str | None, str]:
    """``(problem, "")`` or ``(None, what is fine)`` for the addresses serve listens on: each is
    bound and closed again. One in use is not a problem: on a live host it is the running
    dockerlink's (serve would say so at once otherwise)."""
    from .listen import ListenError, bind_listeners, close_listeners, url_of

    try:
        sockets = bind_listeners(settings.hosts, settings.port)
    except ListenError as exc:
        if exc.errno == errno.EADDRINUSE:
            return None, f"in use: {exc.strerror} (by the running dockerlink, or another program)"
        return exc.strerror, ""
    try:
        return None, "ok: can listen on " + ", ".join(url_of(s.getsockname()) for s in sockets)
    finally:
        close_listeners(sockets)


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


async def engine_status(settings: Settings) -> tuple[str | None, str]:
    """Reach the engine: ``(problem, "")`` or ``(None, its version and the API in use)``."""
    from .engine import engine_client

    try:
        async with engine_client(settings) as docker:
            version = await docker.version()
            api = docker.api_version
    except docker_api.DockerError as exc:
        return f"docker engine unavailable: {exc.message}", ""
    return None, (
        f"Docker {version.get('Version', '?')} at {docker.address}, API {api} negotiated "
        f"(engine API {version.get('ApiVersion', '?')})"
    )


async def stats_status(
    settings: Settings, cgroup_root: Path = CGROUP_ROOT, proc_root: Path = PROC_ROOT
) -> tuple[str | None, str]:
    """``(problem or None, the "stats source: ..." line)``: read every running container's figures
    as the sampler would, and say which source gives them.

    A container that stopped while it was read is left out. With ``stats_source=cgroup`` a
    container whose files cannot be read is a problem: the sampler never samples it.
    """
    from .engine import engine_client
    from .stats.sources import cgroup_source_choice, source_summary

    cgroups, no_cgroups_reason = cgroup_source_choice(
        settings.stats_source, settings.docker_sock, cgroup_root, proc_root
    )
    if cgroups is None:
        return None, source_summary(None, no_cgroups_reason, [])
    running: list[str] = []
    try:
        async with engine_client(settings) as docker:
            host_memory = int((await docker.info()).get("MemTotal") or 0)
            for summary in await docker.containers.list(all=False):
                try:
                    info = await docker.containers.inspect(str(summary["Id"]))
                    if cgroups.read_one(info, host_memory) is None:
                        info = await docker.containers.inspect(str(info["Id"]))  # still up?
                        if cgroups.read_one(info, host_memory) is None and not (
                            info.get("State") or {}
                        ).get("Running"):
                            continue
                except docker_api.NotFound:
                    continue  # removed since the listing
                running.append(str(info["Id"]))
    except docker_api.DockerError as exc:
        return f"cannot read the running containers: {exc.message}", "stats source: unknown"
    line = source_summary(cgroups, "", running, api_fallback=settings.stats_source != "cgroup")
    unreadable = [container_id for container_id in running if container_id in cgroups.failures]
    if settings.stats_source == "cgroup" and unreadable:
        return f"{len(unreadable)} running container(s) will not be sampled", line
    return None, line
