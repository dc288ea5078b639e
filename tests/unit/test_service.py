"""The service without an engine: settings, validation, the error table, auth, CORS, request ids.

HTTP tests use sanic-testing's ASGI client with a DockerClient whose transport is a fake engine
that answers only what these tests need (and records every call, so "changes nothing" is shown).
"""

from __future__ import annotations

import ast
import inspect
import logging
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sanic_testing.testing import SanicASGITestClient

import docker_api
import dockerlink
from docker_api import errors as engine_errors
from dockerlink import domain_errors
from dockerlink.app import create_app
from dockerlink.errors import (
    DOMAIN_ERROR_STATUS,
    ENGINE_ERROR_STATUS,
    domain_error_answer,
    engine_error_answer,
)
from dockerlink.hosting import start_command
from dockerlink.requests import parse_create
from dockerlink.settings import Settings, SettingsError, load_settings

from ..conftest import serve
from .fakes import fake_engine_client

TOKEN = "unit-test-token-0123456789"


# -- settings --------------------------------------------------------------------------------------


def test_settings_defaults_match_the_spec() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.docker_sock == "/var/run/docker.sock"
    assert settings.port_area_size == 5000
    assert settings.base_image is None
    assert (settings.host, settings.port) == ("127.0.0.1,::1", 7200)
    assert settings.api_token is None
    assert settings.data_dir == Path("./data")
    assert settings.sample_interval == 15
    assert settings.exec_user == "admin"
    assert settings.stop_timeout == 10
    assert settings.start_command == "sh /var/www/starter.sh && {commands} && /usr/sbin/sshd -D"
    assert settings.docker_timeout == 30


def test_settings_from_both_spellings_and_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "docker_sock=unix:///from/file.sock\nport_area_size=1000\nbase_image=img:1\n"
    )
    settings = load_settings(
        {"port_area_size": "2000", "DOCKERLINK_PORT_AREA_SIZE": "3000", "cors_origins": "*"},
        env_file=env_file,
    )
    assert settings.docker_sock == "/from/file.sock"  # unix:// prefix accepted
    assert settings.port_area_size == 3000  # environment over file, prefixed over bare
    assert settings.base_image == "img:1"
    assert settings.cors_origins == ("*",)


def test_the_environment_wins_over_the_file_under_either_spelling(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DOCKERLINK_PORT=7001\nstop_timeout=20\nDOCKERLINK_STOP_TIMEOUT=30\n")
    settings = load_settings({"port": "7002"}, env_file=env_file)
    assert settings.port == 7002
    assert settings.stop_timeout == 30  # within one source, the prefixed spelling


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"port_area_size": "abc"}, "port_area_size"),
        ({"port_area_size": "100"}, "port_area_size"),
        ({"DOCKERLINK_PORT": "70000"}, "port"),
        ({"docker_timeout": "nan"}, "docker_timeout"),
        ({"sample_interval": "-1"}, "sample_interval"),
        ({"stop_timeout": "301"}, "stop_timeout"),
        ({"allow_unauthenticated": "maybe"}, "allow_unauthenticated"),
        ({"docker_sock": "relative.sock"}, "docker_sock"),
        ({"cors_origins": "example.com"}, "cors_origins"),
        ({"host": "127.0.0.1:8080"}, "host"),
        ({"host": "localhost:8080,::1"}, "host"),
        ({"min_host_port": "65535"}, "min_host_port"),
        ({"cors_origins": "https://panel.example.com/app"}, "cors_origins"),
        ({"cors_origins": "https://*.example.com"}, "cors_origins"),
        ({"ssh_frame_ancestors": "https://panel.example.com; script-src *"}, "ssh_frame_ancestors"),
        ({"ssh_frame_ancestors": "https://panel.example.com 'self'"}, "ssh_frame_ancestors"),
        ({"host": "0.0.0.0"}, "api_token"),
        ({"api_token": "short"}, "api_token"),
        ({"start_command": "{commands} && {commands}"}, "start_command"),
    ],
)
def test_bad_settings_name_the_setting(environ: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ, env_file=None)
    assert caught.value.name == name
    assert str(caught.value).startswith(f"invalid setting {name}: ")
    assert "\n" not in str(caught.value)


def test_origins_are_kept_as_browsers_send_them() -> None:
    settings = load_settings(
        {
            "cors_origins": "https://Panel.example.com/, http://[::1]:8080",
            "ssh_frame_ancestors": "https://*.example.com,https://panel.example.net:8443",
        },
        env_file=None,
    )
    assert settings.cors_origins == ("https://panel.example.com", "http://[::1]:8080")
    assert settings.ssh_frame_ancestors == (
        "https://*.example.com",
        "https://panel.example.net:8443",
    )


def test_public_listen_needs_a_token_or_an_explicit_opt_out() -> None:
    assert load_settings({"host": "0.0.0.0", "api_token": TOKEN}, env_file=None).api_token
    opted_out = load_settings({"host": "0.0.0.0", "allow_unauthenticated": "true"}, env_file=None)
    assert opted_out.api_token is None
    assert load_settings({"host": "::1"}, env_file=None).host == "::1"


# -- validation ------------------------------------------------------------------------------------

GOOD = {"name": "web1", "host_port_root": 10000, "memory": 1.5, "cpulimit": 0.5}


def test_create_request_is_normalised() -> None:
    request = parse_create(
        {**GOOD, "host_port_root": 10000.0, "ports": ["80/tcp", "8080/udp", "8080/udp"]},
        port_area_size=10000,
    )
    assert request.host_port_root == 10000
    assert request.memory_bytes == 3 * (1 << 29)
    assert [p.key for p in request.ports] == ["22/tcp", "80/tcp", "443/tcp", "8080/udp"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"),
        ({"name": "-bad"}, "name"),
        ({"name": "a"}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": 5}, "name"),
        ({"host_port_root": 0}, "host_port_root"),
        ({"host_port_root": 10.5}, "host_port_root"),
        ({"host_port_root": "10000"}, "host_port_root"),
        ({"host_port_root": True}, "host_port_root"),
        ({"host_port_root": 61000}, "host_port_root"),
        ({"memory": 0}, "memory"),
        ({"memory": -1}, "memory"),
        ({"memory": 0.005}, "memory"),
        ({"memory": 1e300}, "memory"),
        ({"memory": "1"}, "memory"),
        ({"cpulimit": 0}, "cpulimit"),
        ({"cpulimit": None}, "cpulimit"),
        ({"ports": "80/tcp"}, "ports"),
        ({"ports": ["80"]}, "ports"),
        ({"ports": ["5000/tcp"]}, "ports"),
        ({"ports": ["0/tcp"]}, "ports"),
        ({"ports": ["80/sctp"]}, "ports"),
        ({"ports": [80]}, "ports"),
        ({"image": ""}, "image"),
        ({"image": "img; rm -rf /"}, "image"),
        ({"commands": "echo"}, "commands"),
        ({"commands": ["a\0b"]}, "commands"),
        ({"memroy": 1}, "memroy"),
    ],
)
def test_create_request_refusals_name_the_field(change: dict[str, Any], field: str) -> None:
    from dockerlink.errors import BadRequest

    with pytest.raises(BadRequest) as caught:
        parse_create({**GOOD, **change}, port_area_size=5000)
    assert field in caught.value.message


def test_create_host_port_root_respects_min_host_port_and_dockerlink_port() -> None:
    from dockerlink.errors import BadRequest

    def refusal(root: int, **rules: int) -> str:
        with pytest.raises(BadRequest) as caught:
            parse_create({**GOOD, "host_port_root": root}, port_area_size=5000, **rules)
        return caught.value.message

    assert refusal(1023, min_host_port=1024) == (
        "host_port_root must be at least 1024 (min_host_port)"
    )
    assert parse_create({**GOOD, "host_port_root": 1024}, port_area_size=5000, min_host_port=1024)
    # The block is host_port_root .. host_port_root + port_area_size - 1.
    for root in (7200, 2201, 5000):
        block = f"{root}-{root + 4999}"
        assert refusal(root, own_port=7200) == (
            f"host_port_root {root}: its block {block} holds dockerlink's own port 7200"
        )
    for root in (2200, 7201):
        assert parse_create({**GOOD, "host_port_root": root}, port_area_size=5000, own_port=7200)


def test_start_command_template() -> None:
    template = "sh /var/www/starter.sh && {commands} && /usr/sbin/sshd -D"
    assert (
        start_command(template, ["a", "b c"])
        == "sh /var/www/starter.sh && { :; a\n\n} && { :; b c\n\n} && /usr/sbin/sshd -D"
    )
    assert start_command(template, []) == "sh /var/www/starter.sh && /usr/sbin/sshd -D"
    assert start_command("{commands} && run", []) == "run"
    assert start_command("run && {commands}", []) == "run"
    assert start_command("run", ["ignored"]) == "run"


@pytest.mark.parametrize(
    ("commands", "printed"),
    [
        (["echo one # a note", "echo two"], "one\ntwo\nkept alive\n"),
        (["cd /tmp", "pwd"], "/tmp\nkept alive\n"),  # a cd holds for the next ones
        (["export A=1", "echo $A"], "1\nkept alive\n"),
        (["echo a\necho b"], "a\nb\nkept alive\n"),  # a line break in a command
        (["sleep 0 &", "echo bg"], "bg\nkept alive\n"),  # (was a syntax error: & &&)
        (["false", "echo never"], ""),  # the chain stops at a failure, as before
        (["echo a \\"], "a\nkept alive\n"),  # a trailing backslash continues no further
        (["# only a note"], "kept alive\n"),
    ],
)
def test_each_command_is_one_link_of_the_chain(commands: list[str], printed: str) -> None:
    script = start_command("{commands} && echo kept alive", commands)
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10)
    assert result.stdout == printed


# -- the error table -------------------------------------------------------------------------------


def test_every_engine_error_class_has_its_own_entry() -> None:
    classes = [
        obj
        for obj in vars(engine_errors).values()
        if inspect.isclass(obj) and issubclass(obj, docker_api.DockerError)
    ]
    assert len(classes) >= 12
    for cls in classes:
        assert cls in ENGINE_ERROR_STATUS, f"{cls.__name__} has no HTTP answer"


def test_every_domain_error_class_has_its_own_entry() -> None:
    classes = [
        obj
        for obj in vars(domain_errors).values()
        if inspect.isclass(obj) and issubclass(obj, domain_errors.DomainError)
    ]
    assert len(classes) >= 14
    for cls in classes:
        assert cls in DOMAIN_ERROR_STATUS, f"{cls.__name__} has no HTTP answer"
    assert domain_error_answer(domain_errors.NotManaged(too_old=True)) == (
        412,
        "this docker has not been created with dockerlink or is too old",
    )
    assert domain_error_answer(domain_errors.AlreadyStopped()) == (406, "Already stopped")


@pytest.mark.parametrize("module", ["hosting", "git"])
def test_the_domain_does_not_speak_http(module: str) -> None:
    source = (Path(dockerlink.__file__).parent / f"{module}.py").read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert "errors" not in imported and "sanic" not in imported, imported


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (
            docker_api.EngineUnreachable("socket gone"),
            503,
            "docker engine unavailable: socket gone",
        ),
        (docker_api.EngineTimeout("no answer"), 503, "docker engine unavailable: no answer"),
        (docker_api.NotFound("No such image: x", 404), 404, "no such image: x"),
        (docker_api.Conflict("Conflict. It is in use", 409), 409, "conflict. It is in use"),
        (docker_api.ServerError("runc failed", 500), 500, "docker engine error: runc failed"),
        (docker_api.APIError("Forbidden", 403), 502, "docker engine error: forbidden"),
    ],
)
def test_engine_error_answers(error: docker_api.DockerError, status: int, text: str) -> None:
    assert engine_error_answer(error) == (status, text)


# -- HTTP behaviour with a fake engine ------------------------------------------------------------


class WriteRecordingEngine:
    """Answers ping/version/info and reads; records every call that could change something.

    (Reads are not recorded: the app's background tasks read the engine on their own.)
    """

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method != "GET":
            self.calls.append(f"{request.method} {path}")
        if path.endswith("/containers/json"):
            return httpx.Response(200, json=[])
        return httpx.Response(404, json={"message": "No such container: x"})


def make_client(settings: Settings) -> tuple[SanicASGITestClient, WriteRecordingEngine]:
    engine = WriteRecordingEngine()
    docker = fake_engine_client(engine)
    app = create_app(settings, docker=docker)
    return SanicASGITestClient(app), engine


BASE = Settings(docker_sock="/fake.sock", base_image="img:1")


async def test_bad_bodies_answer_400_and_never_reach_the_engine() -> None:
    client, engine = make_client(BASE)
    bodies = [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"name": "web1", "name": "web2"}',
        b'{"memory": NaN}',
        b'{"memory": Infinity}',
        b"\xff\xfe{}",
        b'{"name": "web1"',
    ]
    for body in bodies:
        _, response = await client.put("/v1/container", content=body)
        assert response.status_code == 400, body
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.text.endswith("\n")
        assert response.text.count("\n") == 1
    assert engine.calls == []


async def test_oversized_bodies_are_refused_by_the_http_server(tmp_path: Path) -> None:
    settings = replace(BASE, docker_sock=str(tmp_path / "none.sock"))
    async with serve(settings) as client:
        big = await client.put("/v1/container", content=b"{" + b" " * 70_000 + b"}")
    assert big.status_code == 413
    assert big.text == "request body is larger than 65536 bytes\n"


async def test_query_refusals() -> None:
    client, engine = make_client(BASE)
    cases = [
        ("POST", "/v1/container/start", {}),
        ("POST", "/v1/container/start", {"id": ""}),
        ("POST", "/v1/container/start", {"id": "../../etc"}),
        ("POST", "/v1/container/stop", {"id": "web1", "t": "-1"}),
        ("POST", "/v1/container/stop", {"id": "web1", "t": "1.5"}),
        ("DELETE", "/v1/container", {"id": "web1", "deletevolume": "perhaps"}),
        ("GET", "/v1/container", {"running": "yes please"}),
        ("GET", "/v1/container", {"id": ""}),
    ]
    for method, path, params in cases:
        _, response = await client.request(method, path, params=params)
        assert response.status_code == 400, (method, path, params)
    assert engine.calls == []


async def test_wrong_method_is_405_with_allow_and_unknown_path_404() -> None:
    client, _ = make_client(BASE)
    _, response = await client.get("/v1/container/start")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.text == "method not allowed\n"
    _, response = await client.get("/v1/nothing")
    assert (response.status_code, response.text) == (404, "not found\n")


async def test_auth_on_every_route_but_health(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client, engine = make_client(replace(BASE, api_token=TOKEN))
    app = client.sanic_app
    routes = {(route.path, method) for route in app.router.routes for method in route.methods}
    assert len(routes) >= 9
    for path, method in sorted(routes):
        url = "/" + path.rstrip("/")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            _, response = await client.request(method, url, headers=headers)
            # public by design: / is the dashboard, /terminal and /static/ the terminal page;
            # /v1/ssh/ is the SSH bridge, for browsers that have no token (the container's
            # sshd authenticates)
            public = {"/health", "/openapi.json", "/", "/terminal", "/static/<path:path>"}
            if url in public or url.startswith("/v1/ssh/"):
                assert response.status_code != 401
                continue
            assert response.status_code == 401, (method, url, headers)
            assert response.text == "unauthorized\n"
            assert response.headers["www-authenticate"] == "Bearer"
    assert engine.calls == []
    _, ok = await client.get("/v1/env", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert TOKEN not in ok.text
    assert TOKEN not in caplog.text


async def test_request_ids_are_echoed_when_sane() -> None:
    client, _ = make_client(BASE)
    _, response = await client.get("/v1/env", headers={"X-Request-Id": "panel-42.a"})
    assert response.headers["x-request-id"] == "panel-42.a"
    _, response = await client.get("/v1/env", headers={"X-Request-Id": "bad id\x01" + "x" * 200})
    assert len(response.headers["x-request-id"]) == 32
    _, error = await client.get("/v1/nothing", headers={"X-Request-Id": "err-1"})
    assert error.headers["x-request-id"] == "err-1"


async def test_cors_is_off_by_default_and_on_for_listed_origins() -> None:
    client, _ = make_client(BASE)
    _, response = await client.get("/v1/env", headers={"Origin": "https://panel.example"})
    assert "access-control-allow-origin" not in response.headers

    client, _ = make_client(replace(BASE, cors_origins=("https://panel.example",)))
    _, response = await client.get("/v1/env", headers={"Origin": "https://panel.example"})
    assert response.headers["access-control-allow-origin"] == "https://panel.example"
    _, other = await client.get("/v1/env", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    _, preflight = await client.options(
        "/v1/container",
        headers={"Origin": "https://panel.example", "Access-Control-Request-Method": "PUT"},
    )
    assert preflight.status_code == 204
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    assert "Authorization" in preflight.headers["access-control-allow-headers"]


async def test_unknown_ids_listing_goes_under_error() -> None:
    client, _ = make_client(BASE)
    _, response = await client.get("/v1/container", params=[("id", "a1"), ("id", "b2")])
    assert orjson.loads(response.content) == {
        "error": {"a1": "no such container: a1", "b2": "no such container: b2"},
        "success": {},
    }


def test_create_takes_at_most_64_ports() -> None:
    from dockerlink.errors import BadRequest

    ports = [f"{port}/udp" for port in range(1, 66)]
    assert len(parse_create({**GOOD, "ports": ports[:64]}, port_area_size=5000).ports) == 67
    with pytest.raises(BadRequest) as caught:
        parse_create({**GOOD, "ports": ports}, port_area_size=5000)
    assert caught.value.message == "ports has 65 entries, more than 64"
