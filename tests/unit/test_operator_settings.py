"""Settings for operators: remote engines (tcp://, TLS), hooks, log format."""

from __future__ import annotations

import stat
from dataclasses import fields
from pathlib import Path

import httpx
import pytest
from sanic_testing.testing import SanicASGITestClient

from docker_api import DockerClient
from dockerlink.app import create_app
from dockerlink.engine import ENGINE_CONNECTIONS, engine_client
from dockerlink.settings import Settings, SettingsError, load_settings
from dockerlink.stats.sampler import concurrency_for

from ..certs import PKI, make_pki
from ..conftest import REPO
from .fakes import fake_engine_client


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_new_settings_have_safe_defaults() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.log_format == "text"
    assert settings.docker_cert_path is None
    assert settings.docker_allow_plaintext_tcp is False
    assert settings.hook_on_create is None
    assert settings.hook_on_delete is None
    assert settings.hook_on_start is None
    assert settings.hook_on_stop is None
    assert settings.hook_timeout == 30


async def test_tcp_with_certificates_gives_a_tls_client(pki: PKI) -> None:
    settings = load_settings(
        {"docker_sock": "tcp://127.0.0.1:2376", "docker_cert_path": str(pki.client_dir)},
        env_file=None,
    )
    assert settings.docker_sock == "tcp://127.0.0.1:2376"
    assert settings.docker_cert_path == pki.client_dir
    async with engine_client(settings) as docker:
        assert docker.address == "tcp://127.0.0.1:2376"
        assert str(docker._http.base_url).startswith("https://127.0.0.1:2376")


async def test_the_service_sizes_the_engine_pool_and_the_sampler_from_it(tmp_path: Path) -> None:
    async with engine_client(Settings(docker_sock="/fake.sock")) as docker:
        assert docker.max_connections == ENGINE_CONNECTIONS
    assert concurrency_for(ENGINE_CONNECTIONS) == 48
    with pytest.raises(ValueError, match="max_connections"):
        DockerClient("/fake.sock", max_connections=0)

    small = fake_engine_client(
        lambda request: httpx.Response(404, json={"message": "not here"}), max_connections=8
    )
    app = create_app(Settings(docker_sock="/fake.sock", data_dir=tmp_path), docker=small)
    _, answer = await SanicASGITestClient(app).get("/health")
    assert answer.status_code == 200
    assert app.ctx.sampler.concurrency == 6


async def test_plain_tcp_only_when_explicitly_allowed() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"docker_sock": "tcp://10.1.2.3:2375"}, env_file=None)
    assert caught.value.name == "docker_sock"
    assert "docker_cert_path" in str(caught.value)
    assert "docker_allow_plaintext_tcp" in str(caught.value)
    settings = load_settings(
        {"DOCKERLINK_DOCKER_SOCK": "tcp://10.1.2.3:2375", "docker_allow_plaintext_tcp": "true"},
        env_file=None,
    )
    async with engine_client(settings) as docker:
        assert str(docker._http.base_url).startswith("http://10.1.2.3:2375")


@pytest.mark.parametrize(
    "address", ["tcp://", "tcp://host", "tcp://host:port", "tcp://host:99999", "tcp://h:1/x"]
)
def test_malformed_tcp_addresses_name_docker_sock(address: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"docker_sock": address, "docker_allow_plaintext_tcp": "1"}, env_file=None)
    assert caught.value.name == "docker_sock"


def test_cert_path_needs_the_three_files(pki: PKI, tmp_path: Path) -> None:
    partial = tmp_path / "certs"
    partial.mkdir()
    (partial / "ca.pem").write_bytes(pki.ca_cert.read_bytes())
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {"docker_sock": "tcp://127.0.0.1:2376", "docker_cert_path": str(partial)},
            env_file=None,
        )
    assert caught.value.name == "docker_cert_path"
    assert "cert.pem, key.pem" in str(caught.value)


def test_cert_path_with_unusable_certificates_is_refused(pki: PKI, tmp_path: Path) -> None:
    broken = tmp_path / "certs"
    broken.mkdir()
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (broken / name).write_text("not a certificate\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {"docker_sock": "tcp://127.0.0.1:2376", "docker_cert_path": str(broken)},
            env_file=None,
        )
    assert caught.value.name == "docker_cert_path"


def test_cert_path_with_a_unix_socket_is_a_mistake(pki: PKI) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {"docker_sock": "/var/run/docker.sock", "docker_cert_path": str(pki.client_dir)},
            env_file=None,
        )
    assert caught.value.name == "docker_cert_path"


def test_hooks_must_be_executable_files(tmp_path: Path) -> None:
    hook = executable(tmp_path / "hook")
    settings = load_settings(
        {
            "hook_on_create": str(hook),
            "DOCKERLINK_HOOK_ON_DELETE": str(hook),
            "hook_on_start": "",
            "hook_timeout": "2.5",
        },
        env_file=None,
    )
    assert settings.hook_on_create == hook
    assert settings.hook_on_delete == hook
    assert settings.hook_on_start is None  # empty: no hook
    assert settings.hook_timeout == 2.5

    not_executable = tmp_path / "plain"
    not_executable.write_text("#!/bin/sh\n")
    for value in (str(not_executable), str(tmp_path / "missing"), str(tmp_path), "relative/x"):
        with pytest.raises(SettingsError) as caught:
            load_settings({"hook_on_stop": value}, env_file=None)
        assert caught.value.name == "hook_on_stop"


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"hook_timeout": "0"}, "hook_timeout"),
        ({"hook_timeout": "many"}, "hook_timeout"),
        ({"log_format": "xml"}, "log_format"),
        ({"docker_allow_plaintext_tcp": "perhaps"}, "docker_allow_plaintext_tcp"),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ, env_file=None)
    assert caught.value.name == name


def test_log_format_is_case_insensitive() -> None:
    assert load_settings({"log_format": "JSON"}, env_file=None).log_format == "json"


def test_env_example_documents_every_setting_and_loads() -> None:
    example = REPO / ".env.example"
    text = example.read_text()
    for field in fields(Settings):
        assert f"\n{field.name}=" in text or f"\n#{field.name}=" in text, field.name
    load_settings({}, env_file=example)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1MiB", 1 << 20), ("512k", 512 << 10), ("2m", 2 << 20), ("65536", 65536), ("1 GiB", 1 << 30)],
)
def test_git_output_limit_takes_sizes(raw: str, expected: int) -> None:
    assert load_settings({}, env_file=None).git_output_limit == 1 << 20
    assert load_settings({"git_output_limit": raw}, env_file=None).git_output_limit == expected


@pytest.mark.parametrize("raw", ["0", "1k", "2g", "-1", "1.5m", "lots", ""])
def test_git_output_limit_refuses_what_is_not_a_sane_size(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"git_output_limit": raw}, env_file=None)
    assert caught.value.name == "git_output_limit"


def test_cap_drop_is_a_list_of_capability_names() -> None:
    assert load_settings({}, env_file=None).cap_drop == ("NET_RAW",)
    assert load_settings({"cap_drop": ""}, env_file=None).cap_drop == ()
    both = load_settings({"cap_drop": "cap_net_raw, SYS_CHROOT,NET_RAW"}, env_file=None)
    assert both.cap_drop == ("NET_RAW", "SYS_CHROOT")
    for raw in ("NET RAW", "NET_RAWR", "net_raw;ls"):
        with pytest.raises(SettingsError) as caught:
            load_settings({"cap_drop": raw}, env_file=None)
        assert caught.value.name == "cap_drop"
