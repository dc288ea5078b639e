"""scripts/hooks/nginx-vhost with stand-in check and reload commands (no nginx needed).

The real nginx, driven through dockerlink, is in tests/engine/test_nginx_hook.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .. import fake_certbot
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
    assert result.stdout == (
        "nginx-vhost: http://web1.sites.example -> http://127.0.0.1:10080\n"
        "nginx-vhost: http://ssh.web1.sites.example -> http://127.0.0.1:7200/v1/ssh/Web1/\n"
    )
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
        "nginx-vhost: nginx rejected the configuration with the sites for web1.sites.example "
        'and ssh.web1.sites.example, rolled back: nginx: [emerg] unknown directive "oops"'
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
    assert removed.stdout == (
        "nginx-vhost: removed the sites for web1.sites.example and ssh.web1.sites.example\n"
    )
    assert site_files(sites) == []
    again = run_hook(sites, "delete")
    assert again.returncode == 0
    assert "nothing to remove" in again.stdout


def test_a_delete_removes_the_site_even_when_another_file_fails_the_check(
    sites: Path, tmp_path: Path
) -> None:
    """The container is gone: put back, its site would send the name to a port block that the
    next container may get. nginx is not reloaded with a failing check, and the hook says so."""
    assert run_hook(sites, "create").returncode == 0
    (sites / "operator.conf").write_text("server { oops; }\n")
    check = tmp_path / "check"
    check.write_text(
        "#!/bin/sh\necho 'nginx: [emerg] unknown directive \"oops\" in operator.conf' >&2\nexit 1\n"
    )
    check.chmod(0o755)
    reloads = tmp_path / "reloads"
    result = run_hook(
        sites,
        "delete",
        DOCKERLINK_NGINX_TEST=str(check),
        DOCKERLINK_NGINX_RELOAD=f"touch {reloads}",
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "nginx-vhost: removed the sites for web1.sites.example and ssh.web1.sites.example, but "
        "did not reload nginx, whose check fails for another file: "
        'nginx: [emerg] unknown directive "oops" in operator.conf'
    )
    assert site_files(sites) == ["operator.conf"]
    assert not reloads.exists()


@pytest.mark.parametrize("event", ["start", "stop", "restart"])
def test_other_events_need_nothing(sites: Path, event: str) -> None:
    result = run_hook(sites, event, DOCKERLINK_NGINX_TEST="false", DOCKERLINK_NGINX_RELOAD="false")
    assert result.returncode == 0
    assert site_files(sites) == []


def test_an_unknown_event_is_exit_2(sites: Path) -> None:
    assert run_hook(sites, "explode").returncode == 2


# --- the SSH site and TLS ------------------------------------------------------------------


def server_blocks(text: str) -> list[str]:
    return ["server {" + block for block in text.split("server {")[1:]]


def test_the_ssh_site_proxies_to_the_bridge_with_websocket_headers(sites: Path) -> None:
    result = run_hook(sites, "create", DOCKERLINK_NGINX_DOCKERLINK="http://127.0.0.1:7300")
    assert result.returncode == 0, result.stdout
    web, ssh = server_blocks((sites / "dockerlink-web1.conf").read_text())
    assert "server_name web1.sites.example;" in web
    assert "proxy_read_timeout" not in web
    assert "    server_name ssh.web1.sites.example;\n" in ssh
    for line in (
        "proxy_pass http://127.0.0.1:7300/v1/ssh/web1/;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $http_connection;",
        "proxy_read_timeout 1d;",
        "proxy_buffering off;",
    ):
        assert f"        {line}\n" in ssh, line


def test_the_ssh_site_can_be_left_out(sites: Path) -> None:
    result = run_hook(sites, "create", DOCKERLINK_NGINX_SSH_SITE="off")
    assert result.returncode == 0, result.stdout
    assert result.stdout == "nginx-vhost: http://web1.sites.example -> http://127.0.0.1:10080\n"
    assert "ssh." not in (sites / "dockerlink-web1.conf").read_text()


def test_a_wildcard_certificate_serves_both_sites_over_https(sites: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "wild.pem", tmp_path / "wild.key"
    cert.write_text("cert")
    key.write_text("key")
    result = run_hook(
        sites,
        "create",
        DOCKERLINK_NGINX_TLS="wildcard",
        DOCKERLINK_NGINX_CERT=str(cert),
        DOCKERLINK_NGINX_CERT_KEY=str(key),
        DOCKERLINK_NGINX_TLS_LISTEN="127.0.0.1:8443 ssl",
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == [
        "nginx-vhost: https://web1.sites.example -> http://127.0.0.1:10080",
        "nginx-vhost: https://ssh.web1.sites.example -> http://127.0.0.1:7200/v1/ssh/web1/",
    ]
    blocks = server_blocks((sites / "dockerlink-web1.conf").read_text())
    assert len(blocks) == 4
    for plain, secure in (blocks[0:2], blocks[2:4]):
        assert "listen 80;" in plain and "return 301 https://$host$request_uri;" in plain
        assert "acme-challenge" not in plain  # no certbot
        assert "    listen 127.0.0.1:8443 ssl;\n" in secure
        assert f"    ssl_certificate {cert};\n    ssl_certificate_key {key};\n" in secure
        assert "proxy_pass" in secure


def test_a_wildcard_setting_without_readable_files_is_exit_2(sites: Path, tmp_path: Path) -> None:
    result = run_hook(
        sites,
        "create",
        DOCKERLINK_NGINX_TLS="wildcard",
        DOCKERLINK_NGINX_CERT=str(tmp_path / "absent.pem"),
        DOCKERLINK_NGINX_CERT_KEY=str(tmp_path / "absent.key"),
    )
    assert result.returncode == 2
    assert "DOCKERLINK_NGINX_CERT and DOCKERLINK_NGINX_CERT_KEY must be readable" in result.stdout
    assert site_files(sites) == []
    assert run_hook(sites, "create", DOCKERLINK_NGINX_TLS="yes").returncode == 2


@pytest.fixture
def certbot(tmp_path: Path) -> dict[str, str]:
    """The fake certbot first on PATH; its log, config and webroot folders as settings."""
    fake_certbot.install(tmp_path / "bin")
    return {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "FAKE_CERTBOT_LOG": str(tmp_path / "certbot.log"),
        "DOCKERLINK_NGINX_CERTBOT_DIR": str(tmp_path / "letsencrypt"),
        "DOCKERLINK_NGINX_ACME_ROOT": str(tmp_path / "acme"),
        "DOCKERLINK_NGINX_CHALLENGE_WAIT": "0",  # no nginx here (the engine test waits)
    }


def recording_check(tmp_path: Path, sites: Path) -> str:
    """A configuration check that keeps a copy of the site file at each call."""
    check = tmp_path / "check"
    check.write_text(
        f'#!/bin/sh\nn=$(ls "{tmp_path}" | grep -c "^seen-")\n'
        f'cp "{sites}/dockerlink-web1.conf" "{tmp_path}/seen-$n" 2>/dev/null\nexit 0\n'
    )
    check.chmod(0o755)
    return str(check)


def test_certbot_gets_a_certificate_per_site_after_publishing_the_challenge(
    sites: Path, tmp_path: Path, certbot: dict[str, str]
) -> None:
    result = run_hook(
        sites,
        "create",
        DOCKERLINK_NGINX_TLS="certbot",
        DOCKERLINK_NGINX_CERTBOT_EMAIL="ops@example.org",
        DOCKERLINK_NGINX_TEST=recording_check(tmp_path, sites),
        **certbot,
    )
    assert result.returncode == 0, result.stdout
    live = tmp_path / "letsencrypt" / "live"
    acme = tmp_path / "acme"
    assert [call[:2] for call in fake_certbot.calls(tmp_path / "certbot.log")] == [
        ["certonly", "--webroot"],
        ["certonly", "--webroot"],
    ]
    first, second = fake_certbot.calls(tmp_path / "certbot.log")
    assert (
        first[first.index("-d") + 1]
        == first[first.index("--cert-name") + 1]
        == ("web1.sites.example")
    )
    assert second[second.index("-d") + 1] == "ssh.web1.sites.example"
    assert first[first.index("-w") + 1] == str(acme)
    assert "--non-interactive" in first and "--keep-until-expiring" in first
    assert first[first.index("--email") + 1] == "ops@example.org"

    # nginx first loaded the challenge site alone (plain HTTP), then the HTTPS sites.
    challenge = (tmp_path / "seen-0").read_text()
    assert "ssl_certificate" not in challenge and "proxy_pass" not in challenge
    assert f"location /.well-known/acme-challenge/ {{\n        root {acme};" in challenge
    final = (sites / "dockerlink-web1.conf").read_text()
    assert (tmp_path / "seen-1").read_text() == final
    for host in ("web1.sites.example", "ssh.web1.sites.example"):
        assert f"ssl_certificate {live}/{host}/fullchain.pem;" in final
        assert f"ssl_certificate_key {live}/{host}/privkey.pem;" in final
        assert (live / host / "fullchain.pem").is_file()

    removed = run_hook(sites, "delete", DOCKERLINK_NGINX_TLS="certbot", **certbot)
    assert removed.returncode == 0, removed.stdout
    assert [call[:3] for call in fake_certbot.calls(tmp_path / "certbot.log")[2:]] == [
        ["delete", "--cert-name", "web1.sites.example"],
        ["delete", "--cert-name", "ssh.web1.sites.example"],
    ]
    assert site_files(sites) == []
    assert list(live.iterdir()) == []


def test_wildcard_for_the_site_and_certbot_for_its_ssh_site(
    sites: Path, tmp_path: Path, certbot: dict[str, str]
) -> None:
    cert = tmp_path / "wild.pem"
    cert.write_text("cert")
    result = run_hook(
        sites,
        "create",
        DOCKERLINK_NGINX_TLS="wildcard",
        DOCKERLINK_NGINX_SSH_TLS="certbot",
        DOCKERLINK_NGINX_CERT=str(cert),
        DOCKERLINK_NGINX_CERT_KEY=str(cert),
        **certbot,
    )
    assert result.returncode == 0, result.stdout
    calls = fake_certbot.calls(tmp_path / "certbot.log")
    assert [call[call.index("-d") + 1] for call in calls] == ["ssh.web1.sites.example"]
    web_plain, web, ssh_plain, ssh = server_blocks((sites / "dockerlink-web1.conf").read_text())
    assert f"ssl_certificate {cert};" in web
    assert "acme-challenge" not in web_plain and "acme-challenge" in ssh_plain
    assert "live/ssh.web1.sites.example/fullchain.pem" in ssh


def test_a_certbot_failure_rolls_back_and_fails_the_hook(
    sites: Path, tmp_path: Path, certbot: dict[str, str]
) -> None:
    reloads = tmp_path / "reloads"
    result = run_hook(
        sites,
        "create",
        DOCKERLINK_NGINX_TLS="certbot",
        DOCKERLINK_NGINX_RELOAD=f"sh -c echo>>{reloads}",
        FAKE_CERTBOT_FAIL="Some challenges have failed.",
        **certbot,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "nginx-vhost: certbot could not get a certificate for web1.sites.example, rolled back: "
        "Some challenges have failed."
    )
    assert site_files(sites) == []
    assert reloads.read_text().count("\n") == 2  # the challenge site, then without it


def test_a_name_another_site_serves_is_not_taken(sites: Path) -> None:
    """Docker tells foo and Foo apart, host names do not; an operator's own site may serve
    www: a second site for the same name would leave nginx to pick one, and a certificate of
    that name would be shared, then deleted with either."""
    assert run_hook(sites, "create", name="foo").returncode == 0
    clash = run_hook(sites, "create", name="Foo")
    assert clash.returncode == 1
    assert clash.stdout == (
        f"nginx-vhost: foo.sites.example is served already, by {sites}/dockerlink-foo.conf\n"
    )
    (sites / "panel.conf").write_text(
        "server {\n    listen 80;\n    server_name  panel.sites.example WWW.sites.example ;\n}\n"
    )
    taken = run_hook(sites, "create", name="www")
    assert taken.returncode == 1
    assert "www.sites.example is served already, by" in taken.stdout
    assert site_files(sites) == ["dockerlink-foo.conf", "panel.conf"]
    # its own site, again; and names that only contain another's are not a clash
    assert run_hook(sites, "create", name="foo").returncode == 0
    for name in ("fo", "foo2", "ssh"):
        result = run_hook(sites, "create", name=name)
        assert result.returncode == 0, (name, result.stdout)


@pytest.mark.parametrize(
    "given", ["unix:/run/dockerlink/api.sock", "unix:///run/dockerlink/api.sock"]
)
def test_the_ssh_site_can_reach_dockerlink_through_its_unix_socket(sites: Path, given: str) -> None:
    result = run_hook(sites, "create", DOCKERLINK_NGINX_DOCKERLINK=given)
    assert result.returncode == 0, result.stdout
    _, ssh = server_blocks((sites / "dockerlink-web1.conf").read_text())
    assert "        proxy_pass http://unix:/run/dockerlink/api.sock:/v1/ssh/web1/;\n" in ssh
    assert result.stdout.splitlines()[-1] == (
        "nginx-vhost: http://ssh.web1.sites.example -> "
        "http://unix:/run/dockerlink/api.sock:/v1/ssh/web1/"
    )


@pytest.mark.parametrize(
    "given", ["unix:run/api.sock", "unix:/run/api sock", "unix:/run/a;b", "ftp://127.0.0.1"]
)
def test_a_dockerlink_address_nginx_cannot_use_is_exit_2(sites: Path, given: str) -> None:
    result = run_hook(sites, "create", DOCKERLINK_NGINX_DOCKERLINK=given)
    assert result.returncode == 2, result.stdout
    assert "DOCKERLINK_NGINX_DOCKERLINK" in result.stdout
    assert site_files(sites) == []
