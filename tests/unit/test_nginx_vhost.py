"""scripts/hooks/nginx-vhost with stand-in check and reload commands (no nginx needed).

The real nginx, driven through dockerlink, is in tests/engine/test_nginx_hook.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ..conftest import REPO

HOOK = REPO / "scripts" / "hooks" / "nginx-vhost"


def run_hook(
    sites: Path, event: str, name: str = "web1", **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "DOCKERLINK_EVENT": event,
        "DOCKERLINK_CONTAINER_ID": "c0ffee" * 10,
        "DOCKERLINK_CONTAINER_NAME": name,
        "DOCKERLINK_HOST_PORT_ROOT": "10000",
        "DOCKERLINK_PORTS": "22/tcp 80/tcp 443/tcp",
        "DOCKERLINK_NGINX_DOMAIN": "sites.example",
        "DOCKERLINK_NGINX_SITES_DIR": str(sites),
        "DOCKERLINK_NGINX_TEST": "true",
        "DOCKERLINK_NGINX_RELOAD": "true",
        **settings,
    }
    return subprocess.run(
        [str(HOOK)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.fixture
def sites(tmp_path: Path) -> Path:
    folder = tmp_path / "sites"
    folder.mkdir()
    return folder


def site_files(sites: Path) -> list[str]:
    """Every file but the lock: no temporary or backup file may be left behind."""
    return sorted(p.name for p in sites.iterdir() if p.name != ".dockerlink-nginx.lock")


def test_create_writes_a_site_for_name_dot_domain(sites: Path) -> None:
    result = run_hook(sites, "create", name="Web1")
    assert result.returncode == 0, result.stdout
    assert result.stdout == "nginx-vhost: web1.sites.example -> http://127.0.0.1:10080\n"
    assert site_files(sites) == ["dockerlink-Web1.conf"]
    text = (sites / "dockerlink-Web1.conf").read_text()
    assert "    listen 80;\n" in text
    assert "    server_name web1.sites.example;\n" in text
    assert "        proxy_pass http://127.0.0.1:10080;\n" in text
    assert "        proxy_set_header Host $host;\n" in text
    assert "include" not in text


def test_create_with_every_setting(sites: Path, tmp_path: Path) -> None:
    include = tmp_path / "tls.conf"
    result = run_hook(
        sites,
        "create",
        DOCKERLINK_NGINX_LISTEN="[::]:443 ssl",
        DOCKERLINK_NGINX_UPSTREAM_HOST="10.0.0.7",
        DOCKERLINK_NGINX_INCLUDE=str(include),
    )
    assert result.returncode == 0, result.stdout
    text = (sites / "dockerlink-web1.conf").read_text()
    assert "    listen [::]:443 ssl;\n" in text
    assert f"    include {include};\n" in text
    assert "proxy_pass http://10.0.0.7:10080;" in text


@pytest.mark.parametrize(
    ("name", "settings", "complaint"),
    [
        ("web_1", {}, "container name 'web_1' is not a DNS label"),
        ("web.1", {}, "is not a DNS label"),
        ("-web", {}, "is not a DNS label"),
        ("a" * 64, {}, "is not a DNS label"),
        ("../../etc/x", {}, "is not a DNS label"),
        ("web1\n}", {}, "is not a DNS label"),
        ("web1", {"DOCKERLINK_NGINX_DOMAIN": ""}, "DOCKERLINK_NGINX_DOMAIN '' is not a domain"),
        ("web1", {"DOCKERLINK_NGINX_DOMAIN": "x.com;\n}"}, "is not a domain name"),
        ("web1", {"DOCKERLINK_NGINX_LISTEN": "80; include /etc/passwd"}, "LISTEN"),
        ("web1", {"DOCKERLINK_NGINX_UPSTREAM_HOST": "a b"}, "UPSTREAM_HOST"),
        ("web1", {"DOCKERLINK_NGINX_INCLUDE": "relative.conf"}, "INCLUDE"),
        ("web1", {"DOCKERLINK_HOST_PORT_ROOT": ""}, "is not a port number"),
        ("web1", {"DOCKERLINK_HOST_PORT_ROOT": "65500"}, "above 65535"),
    ],
)
def test_bad_input_fails_with_exit_2_and_writes_nothing(
    sites: Path, name: str, settings: dict[str, str], complaint: str
) -> None:
    result = run_hook(sites, "create", name=name, **settings)
    assert result.returncode == 2
    assert result.stdout.startswith("nginx-vhost: ")
    assert complaint in result.stdout
    assert site_files(sites) == []


def test_missing_sites_dir_is_exit_2(tmp_path: Path) -> None:
    result = run_hook(tmp_path / "absent", "create")
    assert result.returncode == 2
    assert "DOCKERLINK_NGINX_SITES_DIR" in result.stdout


def test_a_rejected_configuration_rolls_the_new_site_back(sites: Path, tmp_path: Path) -> None:
    check = tmp_path / "check"
    check.write_text("#!/bin/sh\necho 'nginx: [emerg] unknown directive \"oops\"' >&2\nexit 1\n")
    check.chmod(0o755)
    result = run_hook(sites, "create", DOCKERLINK_NGINX_TEST=str(check))
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "nginx-vhost: nginx rejected the configuration with the site for web1.sites.example, "
        'rolled back: nginx: [emerg] unknown directive "oops"'
    )
    assert site_files(sites) == []


def test_a_rejected_change_keeps_the_previous_site(sites: Path, tmp_path: Path) -> None:
    assert run_hook(sites, "create").returncode == 0
    before = (sites / "dockerlink-web1.conf").read_text()
    result = run_hook(
        sites, "create", DOCKERLINK_HOST_PORT_ROOT="20000", DOCKERLINK_NGINX_TEST="false"
    )
    assert result.returncode == 1
    assert site_files(sites) == ["dockerlink-web1.conf"]
    assert (sites / "dockerlink-web1.conf").read_text() == before


def test_a_failed_reload_fails_the_hook(sites: Path, tmp_path: Path) -> None:
    reload = tmp_path / "reload"
    reload.write_text("#!/bin/sh\necho 'nginx: [error] invalid PID number' >&2\nexit 1\n")
    reload.chmod(0o755)
    result = run_hook(sites, "create", DOCKERLINK_NGINX_RELOAD=str(reload))
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "nginx-vhost: reloading nginx failed: nginx: [error] invalid PID number"
    )


def test_delete_removes_the_site_and_is_idempotent(sites: Path) -> None:
    assert run_hook(sites, "create").returncode == 0
    removed = run_hook(sites, "delete")
    assert removed.returncode == 0
    assert removed.stdout == "nginx-vhost: removed the site for web1.sites.example\n"
    assert site_files(sites) == []
    again = run_hook(sites, "delete")
    assert again.returncode == 0
    assert "nothing to remove" in again.stdout


def test_a_rejected_delete_puts_the_site_back(sites: Path) -> None:
    assert run_hook(sites, "create").returncode == 0
    result = run_hook(sites, "delete", DOCKERLINK_NGINX_TEST="false")
    assert result.returncode == 1
    assert site_files(sites) == ["dockerlink-web1.conf"]


@pytest.mark.parametrize("event", ["start", "stop", "restart"])
def test_other_events_need_nothing(sites: Path, event: str) -> None:
    result = run_hook(sites, event, DOCKERLINK_NGINX_TEST="false", DOCKERLINK_NGINX_RELOAD="false")
    assert result.returncode == 0
    assert site_files(sites) == []


def test_an_unknown_event_is_exit_2(sites: Path) -> None:
    assert run_hook(sites, "explode").returncode == 2
