"""The nginx-vhost hook with a real nginx (Debian's), on loopback, with a test-only config.

After ``PUT /v1/container`` and a start, a request to nginx for ``<name>.<domain>`` reaches the
web server inside the container (busybox httpd on port 80, published on host_port_root + 80);
after delete the site is gone. nginx is started by tests/engine/_nginx.py. HTTPS and the SSH
site are in test_ssh_sites.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import (
    REPO,
    create_body,
    serve,
    wait_for,
)
from ._nginx import Nginx, nginx

__all__ = ["nginx"]  # the fixture

HOOK = REPO / "scripts" / "hooks" / "nginx-vhost"
DOMAIN = "sites.dockerlink.test"


@pytest.fixture
async def hooked_api(
    engine_settings: Settings, nginx: Nginx, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    command = " ".join(nginx.command)
    for name, value in {
        "DOCKERLINK_NGINX_DOMAIN": DOMAIN,
        "DOCKERLINK_NGINX_SITES_DIR": str(nginx.sites),
        "DOCKERLINK_NGINX_LISTEN": f"127.0.0.1:{nginx.port}",
        "DOCKERLINK_NGINX_TEST": f"{command} -t -q",
        "DOCKERLINK_NGINX_RELOAD": f"{command} -s reload",
    }.items():
        monkeypatch.setenv(name, value)
    settings = replace(engine_settings, hook_on_create=HOOK, hook_on_delete=HOOK, hook_timeout=20)
    async with serve(settings) as api:
        yield api


async def test_a_site_per_container_reaches_its_web_server_and_goes_with_it(
    hooked_api: httpx.AsyncClient,
    nginx: Nginx,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("site")
    host = f"{name}.{DOMAIN}"
    assert nginx.get(host).text == "no such site\n"  # nginx's default server, before

    cleanup.append(name)
    commands = [
        f"echo hello from {name} > /var/www/html/index.html",
        "httpd -p 80 -h /var/www/html",
    ]
    created = await hooked_api.put(
        "/v1/container", json=await create_body(docker, name, commands=commands)
    )
    assert created.status_code == 200, created.text
    assert (nginx.sites / f"dockerlink-{name}.conf").is_file()
    started = await hooked_api.post("/v1/container/start", params={"id": name})
    assert started.status_code == 204

    def served() -> httpx.Response | None:
        with contextlib.suppress(httpx.TransportError):
            response = nginx.get(host)
            if response.status_code == 200:
                return response
        return None

    response = await wait_for(served, timeout=20)
    assert response.text == f"hello from {name}\n"
    assert nginx.get(f"other.{DOMAIN}").status_code == 404  # only that host name

    assert (await hooked_api.post("/v1/container/stop", params={"id": name})).status_code == 204
    deleted = await hooked_api.delete("/v1/container", params={"id": name})
    assert deleted.status_code == 204
    assert "x-dockerlink-hook-error" not in deleted.headers
    assert list(nginx.sites.glob("*.conf")) == []
    await wait_for(lambda: nginx.get(host).text == "no such site\n", timeout=10)


async def test_a_name_nginx_cannot_serve_is_refused_and_rolled_back(
    hooked_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    nginx: Nginx,
) -> None:
    name = unique_name("bad").replace("-", "_")  # underscores: not a DNS label
    cleanup.append(name)
    created = await hooked_api.put(
        "/v1/container",
        json=await create_body(docker, name),
    )
    assert created.status_code == 500
    assert created.text.startswith("hook_on_create failed (exit 2), the container was removed; ")
    assert f"container name '{name}' is not a DNS label" in created.text
    assert (await docker.containers.list(all=True, filters={"name": [name]})) == []
    assert list(nginx.sites.iterdir()) in ([], [nginx.sites / ".dockerlink-nginx.lock"])
