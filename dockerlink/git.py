"""Git inside hosting containers: the domain of the ``/v1/git`` routes.

Each operation runs git with ``docker exec`` as ``exec_user`` in a directory of a running
dockerlink container, within ``git_timeout`` for the whole operation. Operations that may write
(pull, init, fetch, checkout) take the container's git lock, one at a time (git in one repository
is not safe to run twice at once), waiting for it at most ``git_timeout`` too (then 409); it is
not the lock of the container's power actions, which never wait behind git. Such an
operation runs to its end when its client goes away (a cancelled handler would otherwise free the
lock while git runs on). A non-zero exit answers 412 with git's output, or 409 when the container
stopped meanwhile; a timeout lets :class:`docker_api.ExecTimeout` through to the error table (504,
with what git printed) after killing what the timed-out git left running. Every exec keeps at most
``git_output_limit`` bytes of output (the tenant controls hooks, aliases and commit messages, so
the size is theirs to choose); what is dropped past it is reported at the end of the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import docker_api
from docker_api import ExecResult

from .domain_errors import GitBusy, GitFailed, NotRunningForExec, dropped_note
from .hosting import Hosting, KeyedLocks, ManagedContainer

__all__ = [
    "GIT_ENV",
    "GitService",
    "branch_names",
    "default_workdir",
    "git_command",
    "output_text",
]

log = logging.getLogger("dockerlink.git")

#: Never wait for input: no credential prompt, no editor for a merge commit.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_MERGE_AUTOEDIT": "no"}
#: Environment variable that tags every process of one git run, so a timed-out run can be killed.
RUN_MARKER = "DOCKERLINK_GIT_RUN"
#: How long a git killed by a signal waits to see whether its container is stopping.
STOPPING_S = 2.0
#: The least time a git command is given, even when an earlier one used up most of the budget.
MIN_COMMAND_S = 0.5
#: Kills, as ``exec_user``, every process whose environment holds ``$1`` (the run's marker).
#: (Entries are NUL-separated; busybox grep stops at a NUL, hence the ``tr``.)
_KILL_RUN = (
    "for d in /proc/[0-9]*; do"
    ' tr "\\0" "\\n" 2>/dev/null < "$d/environ" | grep -qxF "$1"'
    ' && kill -KILL "${d#/proc/}" 2>/dev/null; done; true'
)
#: ``git branch -a`` output, one ref a line: its full name, a tab, and its target when a symref.
BRANCH_FORMAT = "--format=%(refname)%09%(symref)"


def git_command(workdir: str, args: Sequence[str]) -> list[str]:
    """The argv of one git command run in ``workdir`` (absolute, so never taken for an option)."""
    return [
        "git",
        "--no-pager",
        "-c",
        "core.quotepath=off",
        "-c",
        "color.ui=never",
        "-C",
        workdir,
        *args,
    ]


def default_workdir(info: dict[str, Any]) -> str:
    """Where git runs when the request names no path: the container's working directory."""
    workdir = (info.get("Config") or {}).get("WorkingDir") or ""
    return workdir if isinstance(workdir, str) and workdir.startswith("/") else "/"


def branch_names(listing: str) -> list[str]:
    """Branch names from ``git branch -a`` in :data:`BRANCH_FORMAT`.

    Local branches by short name, remote-tracking ones as ``remotes/<remote>/<branch>``; symrefs
    (``origin/HEAD -> origin/main``), a detached HEAD and anything else are left out; the first
    of two equal names is kept.
    """
    names: dict[str, None] = {}
    for line in listing.splitlines():
        refname, _, symref = line.partition("\t")
        if symref.strip():
            continue
        if refname.startswith("refs/heads/"):
            name = refname[len("refs/heads/") :]
        elif refname.startswith("refs/remotes/"):
            name = refname[len("refs/") :]
            if name.count("/") < 2:
                continue
        else:
            continue
        if name:
            names.setdefault(name)
    return list(names)


def output_text(result: ExecResult) -> str:
    """What git printed, as text, ending with a line saying how much was dropped, if any."""
    text = result.text()
    if not result.dropped:
        return text
    separator = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{separator}{dropped_note(result.dropped)}\n"


class GitService:
    """The six git operations on one container's repository."""

    def __init__(self, hosting: Hosting) -> None:
        self.hosting = hosting
        self.docker = hosting.docker
        self.settings = hosting.settings
        self._locks = KeyedLocks()

    async def pull(self, ref: str, path: str | None) -> str:
        return output_text(await self._run(ref, path, ["pull"]))

    async def init(self, ref: str, path: str | None) -> None:
        await self._run(ref, path, ["init"])

    async def head(self, ref: str, path: str | None) -> str:
        return output_text(await self._run(ref, path, ["log", "-1"], writes=False))

    async def current_branch(self, ref: str, path: str | None) -> str:
        """The branch HEAD names, even before its first commit (where ``rev-parse`` fails);
        ``HEAD`` when detached, as ``git rev-parse --abbrev-ref HEAD`` says it."""
        # symbolic-ref exits 1 (with -q, silently) when HEAD is detached, 128 on real errors.
        result = await self._run(
            ref, path, ["symbolic-ref", "-q", "--short", "HEAD"], writes=False, accept_exit=(0, 1)
        )
        if result.exit_code == 1:
            result = await self._run(ref, path, ["rev-parse", "--abbrev-ref", "HEAD"], writes=False)
        return output_text(result)

    async def branches(self, ref: str, path: str | None, *, fetch: bool) -> list[str]:
        listing = ["branch", "-a", BRANCH_FORMAT]
        commands = [["fetch", "--all", "--prune"], listing] if fetch else [listing]
        result = await self._run(ref, path, *commands, writes=fetch)
        if result.dropped:  # a list cut short would leave names out without saying so
            raise GitFailed(
                f"the branch list is longer than git_output_limit "
                f"({self.settings.git_output_limit} bytes): {dropped_note(result.dropped)}"
            )
        return branch_names(result.stdout.decode("utf-8", "replace"))

    async def checkout(self, ref: str, path: str | None, branch: str) -> str:
        # "<branch> --": whatever the name, git reads it as a branch, never as an option or path.
        return output_text(await self._run(ref, path, ["checkout", branch, "--"]))

    async def _run(
        self,
        ref: str,
        path: str | None,
        *commands: Sequence[str],
        writes: bool = True,
        accept_exit: tuple[int, ...] = (0,),
    ) -> ExecResult:
        """Run git commands one after the other; the first that fails answers 412.

        A command fails when its exit code is not in ``accept_exit``.

        Commands that may write (pull, init, fetch, checkout) hold the container's git lock, and
        run to their end; reads (log, rev-parse, branch listing) don't wait behind them, since git
        reads are safe to run beside anything.
        """
        # The container as the mirror has it (no engine call). If that is a moment behind the
        # engine, the engine has the last word: a "not running" is checked with it, and an exec
        # in a container that stopped meanwhile is refused (409) or not found (404) by it.
        container = await self.hosting.managed(ref, mirrored=True)
        if not writes:
            return await self._run_in(container, path, commands, accept_exit)
        lock = self._locks[container.id]
        try:
            async with asyncio.timeout(self.settings.git_timeout):
                await lock.acquire()
        except TimeoutError:
            raise GitBusy(self.settings.git_timeout) from None

        async def locked() -> ExecResult:
            try:
                return await self._run_in(container, path, commands, accept_exit)
            finally:
                lock.release()

        return await self.hosting.run_to_the_end(f"git {commands[0][0]}", locked())

    async def _run_in(
        self,
        container: ManagedContainer,
        path: str | None,
        commands: Sequence[Sequence[str]],
        accept_exit: tuple[int, ...],
    ) -> ExecResult:
        if not container.running:
            await self._refuse_unless_running(container.id)
        workdir = path or default_workdir(container.info)
        deadline = time.monotonic() + self.settings.git_timeout
        result: ExecResult | None = None
        for args in commands:
            try:
                result = await self._exec(container.id, workdir, args, deadline)
            except docker_api.ExecTimeout:
                raise
            except docker_api.DockerError:
                # Stopped meanwhile (refused, or ended without an exit code): 409. Running,
                # but refused (paused...) or failing: the engine's own reason.
                await self._refuse_unless_running(container.id)
                raise
            if result.exit_code not in accept_exit:
                await self._refuse_if_stopping(container.id, result.exit_code)
                text = output_text(result).strip()
                raise GitFailed(text or f"git {args[0]} failed with exit code {result.exit_code}")
        assert result is not None, "no git command to run"
        return result

    async def _refuse_unless_running(self, container_id: str) -> None:
        """409 ``container is not running`` when the engine says so."""
        if not (await self.hosting.managed(container_id)).running:
            raise NotRunningForExec()

    async def _refuse_if_stopping(self, container_id: str, exit_code: int) -> None:
        """409 when git was killed (exit code over 128) because its container stopped: that
        is not git failing. The engine may tell the exec's end a moment before the container's,
        so it is given ``STOPPING_S`` to say so."""
        if exit_code <= 128:
            return
        try:
            await self.docker.containers.wait(
                container_id, condition="not-running", timeout=STOPPING_S
            )
        except docker_api.EngineTimeout:
            return  # running on: git alone was killed
        except docker_api.NotFound:
            pass
        raise NotRunningForExec()

    async def _exec(
        self, container_id: str, workdir: str, args: Sequence[str], deadline: float
    ) -> ExecResult:
        run_id = uuid.uuid4().hex
        try:
            return await self.docker.execs.run(
                container_id,
                git_command(workdir, args),
                timeout=max(deadline - time.monotonic(), MIN_COMMAND_S),
                user=self.settings.exec_user,
                workdir="/",
                env={**GIT_ENV, RUN_MARKER: run_id},
                max_output_bytes=self.settings.git_output_limit,
            )
        except docker_api.ExecTimeout as exc:
            await self._kill_run(container_id, f"{RUN_MARKER}={run_id}")
            # Named after the whole budget, not the remainder this command was given.
            limit = self.settings.git_timeout
            raise docker_api.ExecTimeout(
                f"git {args[0]} did not finish within {limit:g} s (git_timeout)",
                exc.output,
                dropped=exc.dropped,
            ) from exc

    async def _kill_run(self, container_id: str, marker: str) -> None:
        """Best effort: stop a timed-out git and its children (ssh, hooks...) in the container.

        Left running, it would keep holding the repository's locks. A failure here is logged and
        does not replace the timeout the client is told about.
        """
        try:
            result = await self.docker.execs.run(
                container_id,
                ["sh", "-c", _KILL_RUN, "sh", marker],
                timeout=self.settings.docker_timeout,
                user=self.settings.exec_user,
                workdir="/",
                max_output_bytes=self.settings.git_output_limit,
            )
        except docker_api.DockerError as exc:
            log.warning("could not stop a timed-out git in %s: %s", container_id[:12], exc.message)
            return
        if result.exit_code != 0:
            log.warning(
                "could not stop a timed-out git in %s: %s", container_id[:12], result.text().strip()
            )
