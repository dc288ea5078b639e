"""The real ``dockerlink serve`` as a subprocess, for tests that kill it, load it or read its logs.

Settings are given as environment variables (``DOCKERLINK_<NAME>``); the process gets a free
loopback port, runs in ``workdir`` (so no ``.env`` of the checkout applies) and appends its
stderr and stdout to ``workdir/dockerlink.log``. It is stopped by its own pid, never by name.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from .conftest import free_port, wait_for

STOP_TIMEOUT_S = 15


def dockerlink_command() -> list[str]:
    """``dockerlink serve`` from the virtualenv running the tests."""
    return [str(Path(sys.executable).with_name("dockerlink")), "serve"]


class DockerlinkProcess:
    """``start()``, ``await until_healthy()``, ``kill()`` or ``stop()``, and ``start()`` again."""

    def __init__(self, workdir: Path, settings: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "dockerlink.log"
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("DOCKERLINK_")
        }
        self.env.update({f"DOCKERLINK_{name.upper()}": value for name, value in settings.items()})
        self.env.setdefault("DOCKERLINK_HOST", "127.0.0.1")  # unless settings name a host list
        self.env["DOCKERLINK_PORT"] = str(self.port)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                dockerlink_command(),
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def until_healthy(self, timeout: float = 30) -> None:
        """Wait until ``/health`` answers 200; fail at once if the process exits."""
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:

            async def healthy() -> bool:
                assert self.running(), f"dockerlink exited during start-up:\n{self.log_tail()}"
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(healthy, timeout=timeout, interval=0.05)

    def wait_healthy(self, timeout: float = 30) -> None:
        """:meth:`until_healthy` for tests that are not async."""
        asyncio.run(self.until_healthy(timeout))

    def kill(self) -> None:
        """SIGKILL (``kill -9``), then reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int | None:
        """SIGTERM, SIGKILL if it lingers; its exit status (None if it was never started)."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def peak_rss_kib(self) -> int:
        """Its peak resident set (``VmHWM``) since it started or :meth:`reset_peak_rss`."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmHWM for pid {self.pid}")

    def reset_peak_rss(self) -> None:
        """Start its peak over from its present size, so that a growth measured from here is
        not hidden under an earlier peak (start-up, warm-up)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]
