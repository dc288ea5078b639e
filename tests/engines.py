"""A second, private dockerd for tests that must stop, restart or reconfigure an engine.

The shared test engine (scripts/engine) is never touched: this one lives in a temp dir with its
own data root, exec root, pidfile and containerd namespace, has no bridge and no iptables rules
(so it cannot disturb the shared engine's networking), gets the test image from the shared engine
with ``docker save | docker load``, and is stopped by the pid in its own pidfile, never by name.
Stopping keeps its data, so :meth:`SecondEngine.start` brings the same containers back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from docker_api import DockerClient, DockerError

READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def docker_cli() -> str:
    if Path("/usr/bin/docker").exists():  # the CLI shipped with the engine, as scripts/engine
        return "/usr/bin/docker"
    found = shutil.which("docker")
    assert found, "no docker CLI (apt-get install docker.io)"
    return found


def engine_answers(sock: str) -> bool:
    async def ping() -> bool:
        try:
            async with DockerClient(sock, timeout=2) as docker:
                await docker.ping()
        except DockerError:
            return False
        return True

    return asyncio.run(ping())


def poll(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s} s")
        time.sleep(0.2)


def process_alive(pid: int) -> bool:
    """True for a live process (a zombie counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # gone: no such file, or ESRCH while reading it
        return False
    return state != "Z"


def require_second_engine() -> None:
    """Skip (laptop) or fail (CI) when a second dockerd cannot be started here."""
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        message = "a second dockerd needs the dockerd binary and root"
        if os.environ.get("DOCKERLINK_REQUIRE_ENGINE", "") not in {"", "0", "false"}:
            pytest.fail(message)
        pytest.skip(message)


class SecondEngine:
    """A private dockerd: ``start()``, ``stop()``, ``start()`` again, ``destroy()`` at the end."""

    def __init__(self, name: str, extra_args: Sequence[str] = ()) -> None:
        # A short path: dockerd puts unix sockets under the exec root (107-byte limit).
        self.folder = Path(tempfile.mkdtemp(prefix=f"dl{name}-", dir="/tmp"))
        self.sock = str(self.folder / "d.sock")
        self.pidfile = self.folder / "docker.pid"
        # containerd namespaces allow [._-] only between letters and digits; mkdtemp uses "_" too.
        self.namespace = f"dockerlink-{name}-{self.folder.name[-6:].replace('_', 'x')}"
        self.extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        (self.folder / "daemon.json").write_text("{}\n")  # ignore /etc/docker/daemon.json

    def command(self) -> list[str]:
        dockerd = shutil.which("dockerd")
        assert dockerd, "no dockerd (apt-get install docker.io)"
        return [
            dockerd,
            "--data-root", str(self.folder / "data"),
            "--exec-root", str(self.folder / "x"),
            "--pidfile", str(self.pidfile),
            "--config-file", str(self.folder / "daemon.json"),
            "--host", f"unix://{self.sock}",
            # no networking of its own: the shared engine's bridge and rules stay untouched
            "--bridge", "none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
            "--containerd-namespace", self.namespace,
            "--containerd-plugins-namespace", f"{self.namespace}-plugins",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        log = (self.folder / "dockerd.log").open("ab")
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        process = self._process
        try:
            poll(
                lambda: process.poll() is None and engine_answers(self.sock),
                READY_TIMEOUT_S,
                "the second dockerd did not answer",
            )
        except AssertionError:
            tail = (self.folder / "dockerd.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"second dockerd failed to start; log:\n{tail}") from None

    def load_image(self, image: str, from_sock: str) -> None:
        """Copy ``image`` from another engine (no registry needed)."""
        docker = docker_cli()
        save = subprocess.Popen(
            [docker, "-H", f"unix://{from_sock}", "save", image], stdout=subprocess.PIPE
        )
        loaded = subprocess.run(
            [docker, "-H", f"unix://{self.sock}", "load"],
            stdin=save.stdout,
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert save.stdout is not None
        save.stdout.close()
        assert save.wait(timeout=60) == 0, "docker save from the shared engine failed"
        assert loaded.returncode == 0, loaded.stderr.decode(errors="replace")

    def stop(self) -> None:
        """SIGTERM the pid in our pidfile (else the one we launched), SIGKILL if it lingers."""
        process = self._process
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            if process is None:
                return
            pid = process.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            poll(lambda: not process_alive(pid), STOP_TIMEOUT_S, "dockerd did not stop")
        except AssertionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self._process = None

    def destroy(self) -> None:
        """Stop it and delete everything it had."""
        self.stop()
        mounts = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(f"{self.folder}/")
        ]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)
