"""The panels' shell tab end to end: the nginx hook's HTTPS sites in front of the SSH bridge.

A real nginx (tests/engine/_nginx.py) with a self-signed wildcard certificate made here with
openssl serves ``https://ssh.<name>.<domain>/wetty``; Debian's Chromium (Playwright) resolves
every ``*.<domain>`` to 127.0.0.1, opens it, logs in as ``admin`` through the terminal, types
``whoami`` and sees ``admin``. The screenshot goes to a temporary folder, or to
``docs/ssh-terminal.png`` with ``DOCKERLINK_SAVE_SCREENSHOT=1``.

With certbot instead, a stand-in certbot (tests/fake_certbot.py: no ACME server is reachable)
fetches its HTTP-01 challenge through this nginx, as Let's Encrypt would, and writes a
self-signed certificate where certbot puts them.
"""

from __future__ import annotations

import contextlib
import grp
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, ViewportSize, async_playwright
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from docker_api import DockerClient
from dockerlink.settings import Settings

from .. import fake_certbot
from ..conftest import (
    REPO,
    TEST_IMAGE,
    TEST_TOKEN,
    create_container,
    engine_required,
    serve,
    wait_for,
)
from ..dockerlink_process import DockerlinkProcess
from ._api import create_and_start
from ._nginx import Nginx, nginx
from .test_dashboard import CHROMIUM, CHROMIUM_ARGS, png_size
from .test_ssh_bridge import PASSWORD, ssh_answers, ssh_container
from .test_ssh_bridge import Screen as SshScreen

__all__ = ["nginx"]  # the fixture

HOOK = REPO / "scripts" / "hooks" / "nginx-vhost"
DOMAIN = "sites.dockerlink.test"
SCREEN = ".xterm-rows"
VIEWPORT: ViewportSize = {"width": 900, "height": 480}


def wildcard_certificate(folder: Path, names: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for ``names``, made with openssl."""
    cert, key = folder / "wildcard.pem", folder / "wildcard.key"
    command = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "2", "-subj", f"/CN={names[0]}",
        "-addext", "subjectAltName=" + ",".join(f"DNS:{name}" for name in names),
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return cert, key


@contextlib.asynccontextmanager
async def hooked(
    settings: Settings,
    nginx: Nginx,
    monkeypatch: pytest.MonkeyPatch,
    api_token: str | None = TEST_TOKEN,
    **hook_env: str,
) -> AsyncIterator[httpx.AsyncClient]:
    """dockerlink running the nginx hook on create and delete."""
    settings = replace(
        settings, api_token=api_token, hook_on_create=HOOK, hook_on_delete=HOOK, hook_timeout=30
    )
    async with serve(settings) as api:
        command = " ".join(nginx.command)
        env = {
            "DOCKERLINK_NGINX_DOMAIN": DOMAIN,
            "DOCKERLINK_NGINX_SITES_DIR": str(nginx.sites),
            "DOCKERLINK_NGINX_LISTEN": f"127.0.0.1:{nginx.port}",
            "DOCKERLINK_NGINX_TLS_LISTEN": f"127.0.0.1:{nginx.tls_port} ssl",
            "DOCKERLINK_NGINX_TEST": f"{command} -t -q",
            "DOCKERLINK_NGINX_RELOAD": f"{command} -s reload",
            "DOCKERLINK_NGINX_DOCKERLINK": str(api.base_url).rstrip("/"),
            **hook_env,
        }
        for name, value in env.items():  # hooks get dockerlink's environment when they run
            monkeypatch.setenv(name, value)
        yield api


async def https_get(nginx: Nginx, host: str, path: str) -> httpx.Response:
    """Through nginx's HTTPS sites (async: dockerlink answers in this event loop)."""
    async with httpx.AsyncClient(verify=False, timeout=10) as client:  # self-signed
        return await client.get(f"https://127.0.0.1:{nginx.tls_port}{path}", headers={"Host": host})


@contextlib.contextmanager
def serving_page(html: str, cert: Path, key: str | Path) -> Iterator[int]:
    """``html`` served over HTTPS at / on a free loopback port (a panel's page), for the
    block's length."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def web_root() -> Iterator[Path]:
    """A folder nginx's unprivileged workers can read (pytest's tmp_path is private)."""
    folder = Path(tempfile.mkdtemp(prefix="dockerlink-acme-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def resolving_browser() -> AsyncIterator[Browser]:
    """Chromium that resolves every ``*.<DOMAIN>`` to 127.0.0.1."""
    if not os.access(CHROMIUM, os.X_OK):
        message = f"no {CHROMIUM} (Debian's chromium; scripts/test installs it)"
        if engine_required():
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1"],
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_shell_tab_over_https_logs_in_as_admin(
    engine_settings: Settings,
    nginx: Nginx,
    monkeypatch: pytest.MonkeyPatch,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    resolving_browser: Browser,
    tmp_path: Path,
) -> None:
    name = unique_name("tab")
    cert, key = wildcard_certificate(tmp_path, [f"*.{DOMAIN}", f"*.{name}.{DOMAIN}"])
    async with hooked(
        engine_settings,
        nginx,
        monkeypatch,
        DOCKERLINK_NGINX_TLS="wildcard",
        DOCKERLINK_NGINX_CERT=str(cert),
        DOCKERLINK_NGINX_CERT_KEY=str(key),
    ) as api:
        container_id = await create_and_start(api, docker, cleanup, name)
        info = await docker.containers.inspect(container_id)
        await wait_for(lambda: ssh_answers(int(info["Config"]["Labels"]["ports"]) + 22), timeout=45)
        ssh_host = f"ssh.{name}.{DOMAIN}"
        # plain HTTP sends browsers to HTTPS
        plain = httpx.get(
            f"http://127.0.0.1:{nginx.port}/wetty", headers={"Host": ssh_host}, timeout=10
        )
        assert plain.status_code == 301
        assert plain.headers["location"] == f"https://{ssh_host}/wetty"

        page = await resolving_browser.new_page(viewport=VIEWPORT, ignore_https_errors=True)
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                problems.append(f"console: {message.text}")

        page.on("console", console)
        await page.goto(f"https://{ssh_host}:{nginx.tls_port}/wetty")
        screen = page.locator(SCREEN)
        await screen.get_by_text("login as:", exact=False).wait_for()
        await page.click("#terminal")
        await page.keyboard.type("admin\n")
        await screen.get_by_text("password:", exact=False).wait_for()
        await page.keyboard.type(PASSWORD + "\n")
        await screen.get_by_text("$", exact=False).first.wait_for()
        await page.keyboard.type("whoami\n")

        async def answered() -> bool:
            rows = [row.strip() for row in (await screen.inner_text()).splitlines()]
            return "admin" in rows  # a line of its own: whoami's answer, not the login

        await wait_for(answered, timeout=15, interval=0.1)
        assert PASSWORD not in await screen.inner_text()

        save = os.environ.get("DOCKERLINK_SAVE_SCREENSHOT", "") not in {"", "0"}
        shot = REPO / "docs" / "ssh-terminal.png" if save else tmp_path / "ssh-terminal.png"
        shot.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(shot))
        assert png_size(shot) == (VIEWPORT["width"], VIEWPORT["height"])
        assert problems == []

        # In the panel's iframe (another site, no allow="clipboard-read"), Ctrl+Shift+V is left
        # to the browser's own paste: the page must not cancel it for a clipboard read the
        # browser refuses there (the key did nothing at all).
        tab = await resolving_browser.new_page(viewport=VIEWPORT, ignore_https_errors=True)
        frame_html = (
            f'<iframe id="tab" src="https://{ssh_host}:{nginx.tls_port}/wetty" '
            'width="900" height="560"></iframe>'
        )
        # (over HTTPS, as panels are: the frame is a secure context, with navigator.clipboard;
        # on loopback, which Chromium lets frame loopback)
        with serving_page(frame_html, cert, key) as port:
            await tab.goto(f"https://panel.{DOMAIN}:{port}/")
            framed = tab.frame_locator("#tab")
            await framed.locator(SCREEN).get_by_text("login as:", exact=False).wait_for()
            shell = next(frame for frame in tab.frames if frame.url.endswith("/wetty"))
            policy = "document.featurePolicy.allowsFeature('clipboard-read')"
            assert await shell.evaluate(policy) is False
            assert await shell.evaluate("typeof navigator.clipboard.readText") == "function"
            await shell.evaluate(
                "window.addEventListener('keydown', (e) => {"
                " if (e.code === 'KeyV') window.pasteKeyCancelled = e.defaultPrevented; })"
            )
            await framed.locator("#terminal").click()
            await tab.keyboard.press("Control+Shift+V")
            assert await shell.evaluate("window.pasteKeyCancelled") is False
        await tab.close()

        # The container's own site is served over HTTPS too, and both go with the container.
        assert (await https_get(nginx, f"{name}.{DOMAIN}", "/")).status_code == 502  # no web server
        assert (await api.post("/v1/container/stop", params={"id": name})).status_code == 204
        assert (await api.delete("/v1/container", params={"id": name})).status_code == 204
        assert list(nginx.sites.glob("*.conf")) == []


async def test_certbot_sites_answer_the_challenge_then_serve_the_shell_tab(
    engine_settings: Settings,
    nginx: Nginx,
    monkeypatch: pytest.MonkeyPatch,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    web_root: Path,
) -> None:
    fake_certbot.install(tmp_path / "bin")
    log = tmp_path / "certbot.log"
    acme = web_root  # nginx's workers (nobody) read the challenges from it
    letsencrypt = tmp_path / "letsencrypt"
    async with hooked(
        engine_settings,
        nginx,
        monkeypatch,
        # no token: the browser rule (Host ssh.<name>.<domain> is not loopback) exempts /v1/ssh/
        api_token=None,
        PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        FAKE_CERTBOT_LOG=str(log),
        FAKE_CERTBOT_HTTP=f"127.0.0.1:{nginx.port}",  # it fetches its challenge from nginx
        DOCKERLINK_NGINX_TLS="certbot",
        DOCKERLINK_NGINX_CERTBOT_DIR=str(letsencrypt),
        DOCKERLINK_NGINX_ACME_ROOT=str(acme),
    ) as api:
        name = unique_name("bot")
        await create_container(api, docker, cleanup, name)  # not started
        hosts = [f"{name}.{DOMAIN}", f"ssh.{name}.{DOMAIN}"]
        assert [call[call.index("-d") + 1] for call in fake_certbot.calls(log)] == hosts
        for host in hosts:
            assert (letsencrypt / "live" / host / "fullchain.pem").is_file()

        async def served() -> httpx.Response | None:
            # (nginx -s reload returns before the new workers listen)
            with contextlib.suppress(httpx.TransportError):
                return await https_get(nginx, hosts[1], "/wetty")
            return None

        page = await wait_for(served, timeout=10)  # the page, for a stopped container too
        assert page.status_code == 200
        assert 'data-socket="socket"' in page.text
        script = await https_get(nginx, hosts[1], "/static/vendor/xterm.js")
        assert script.status_code == 200

        assert (await api.delete("/v1/container", params={"id": name})).status_code == 204
        assert [call[0] for call in fake_certbot.calls(log)] == [
            "certonly",
            "certonly",
            "delete",
            "delete",
        ]
        assert list(nginx.sites.glob("*.conf")) == []
        assert list((letsencrypt / "live").iterdir()) == []


async def test_the_ssh_site_reaches_dockerlink_through_its_unix_socket(
    engine_sock: str,
    nginx: Nginx,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """nginx in front of ``dockerlink serve`` listening on a unix socket: the socket's folder is
    setgid to nginx's workers' group, so the socket (mode 0660) is theirs to connect to, and no
    one else's; the hook writes nginx's ``http://unix:/path:`` form; a login goes through."""
    workers = grp.getgrnam("nogroup").gr_gid  # nginx's workers: nobody:nogroup
    with tempfile.TemporaryDirectory(prefix="dl-") as short:  # a socket's path is short
        folder = Path(short)
        os.chown(folder, -1, workers)
        folder.chmod(0o2750)
        path = folder / "api.sock"
        command = " ".join(nginx.command)
        server = DockerlinkProcess(
            tmp_path,
            {
                "docker_sock": engine_sock,
                "data_dir": str(tmp_path / "data"),
                "host": f"127.0.0.1,unix:{path}",
                "base_image": TEST_IMAGE,
                "hook_on_create": str(HOOK),
                "hook_on_delete": str(HOOK),
                "hook_timeout": "30",
                # the hook's settings, from dockerlink's environment
                "nginx_domain": DOMAIN,
                "nginx_sites_dir": str(nginx.sites),
                "nginx_listen": f"127.0.0.1:{nginx.port}",
                "nginx_test": f"{command} -t -q",
                "nginx_reload": f"{command} -s reload",
                "nginx_dockerlink": f"unix:{path}",
            },
        )
        server.start()
        try:
            await server.until_healthy()
            assert path.lstat().st_gid == workers
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as api:
                name = unique_name("sock")
                await ssh_container(api, docker, cleanup, name)
            site = (nginx.sites / f"dockerlink-{name}.conf").read_text()
            assert f"proxy_pass http://unix:{path}:/v1/ssh/{name}/;" in site
            ssh_host = f"ssh.{name}.{DOMAIN}"
            page = httpx.get(
                f"http://127.0.0.1:{nginx.port}/wetty", headers={"Host": ssh_host}, timeout=10
            )
            assert page.status_code == 200, page.text
            assert "xterm" in page.text
            with socket.create_connection(("127.0.0.1", nginx.port), timeout=10) as sock:
                async with connect(
                    f"ws://{ssh_host}/socket",
                    sock=sock,
                    subprotocols=[Subprotocol("dockerlink.terminal")],
                    open_timeout=20,
                ) as ws:
                    screen = SshScreen(ws)
                    await screen.expect("login as: ")
                    await screen.type("admin\r")
                    await screen.expect("password: ")
                    await screen.type(PASSWORD + "\r")
                    await screen.expect("$ ")
                    await screen.type("whoami\r")
                    await screen.expect("whoami\r\nadmin\r\n")
            assert f"GET /v1/ssh/{name}/socket 101" in server.log_text()
        finally:
            assert server.stop() == 0, server.log_tail()
        assert not path.exists()
