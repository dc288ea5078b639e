"""A real nginx (Debian's) on loopback with a test-only config, for the nginx hook's tests.

It is started with its own prefix, config, pid and logs in a temp dir, includes the sites the
hook writes in ``run_dir/sites``, and is stopped by its own pid. ``port`` is its plain HTTP
default server (404 ``no such site``); ``tls_port`` is a free port the tests give the hook for
HTTPS sites.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ..conftest import engine_required, free_port

NGINX_CONF = """\
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {run}/access.log;
    server_names_hash_bucket_size 128;  # long host names (see the hook's header)
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen 127.0.0.1:{port} default_server;
        return 404 "no such site\\n";
    }}
    include {run}/sites/*.conf;
}}
"""


@dataclass(frozen=True)
class Nginx:
    port: int
    tls_port: int
    run_dir: Path
    sites: Path
    command: list[str]  # nginx with our prefix, error log and config

    def get(self, host: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}/", headers={"Host": host}, timeout=5)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        message = "nginx is not installed (scripts/engine up installs Debian's nginx)"
        if engine_required():
            pytest.fail(message)
        pytest.skip(message)
    run_dir = tmp_path / "nginx"
    (run_dir / "sites").mkdir(parents=True)
    port = free_port()
    (run_dir / "nginx.conf").write_text(NGINX_CONF.format(run=run_dir, port=port))
    command = [
        binary,
        "-e",
        str(run_dir / "error.log"),
        "-p",
        str(run_dir),
        "-c",
        str(run_dir / "nginx.conf"),
    ]
    checked = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(run_dir / "stderr.log").open("wb"),
        start_new_session=True,
    )
    try:
        started = Nginx(port, free_port(), run_dir, run_dir / "sites", command)
        _wait_until_serving(started, process)
        yield started
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(nginx: Nginx, process: subprocess.Popen[bytes]) -> None:
    """Its pid file is written and its default server answers (the hook's first
    ``nginx -s reload`` needs the pid file); 15 s at most."""
    deadline = time.monotonic() + 15
    while True:
        assert process.poll() is None, (nginx.run_dir / "stderr.log").read_text()
        if (nginx.run_dir / "nginx.pid").exists():
            with contextlib.suppress(httpx.TransportError):
                if nginx.get("nothing.invalid").status_code == 404:
                    return
        assert time.monotonic() < deadline, "nginx did not start within 15 s"
        time.sleep(0.05)
