"""Hostile input: every bad request answers 400 (413 when too large, 405 for a wrong method) with
a one-line message, and changes nothing.

The table mixes wrong types, NaN and infinities, huge and negative numbers, unicode and
over-long names, malformed ports, relative and traversing paths, NUL bytes, option-like branch
names, invalid UTF-8, duplicate keys and oversized bodies. Before and after the whole table the
engine's containers (state, limits, labels, volumes) and the target's git repository are compared.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from docker_api import DockerClient
from dockerlink.app import REQUEST_MAX_SIZE
from dockerlink.settings import Settings

from ..conftest import TEST_TOKEN, create_container, serve

GOOD_CREATE = {
    "name": "dltest-hostile-ok",
    "host_port_root": 30000,
    "memory": 0.25,
    "cpulimit": 0.5,
}
NAME_PLACEHOLDER = "{target}"


def create_body(**change: Any) -> bytes:
    body = {**GOOD_CREATE, **change}
    return json.dumps({k: v for k, v in body.items() if v is not _DROP}).encode()


_DROP = object()


def bad_create_bodies() -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = []
    for field in ("name", "host_port_root", "memory", "cpulimit"):
        wrong_values: list[object] = (
            [None, True, [], {}, 7] if field == "name" else [None, True, "1", [], {}, -1, 0]
        )
        for value in wrong_values:
            cases.append((f"{field}={value!r}", create_body(**{field: value})))
        cases.append((f"{field} missing", create_body(**{field: _DROP})))
    for field in ("host_port_root", "memory", "cpulimit"):
        for token in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999"):
            raw = json.dumps({**GOOD_CREATE, field: 1}).replace(": 1", f": {token}", 1)
            raw = raw.replace(f'"{field}": 1', f'"{field}": {token}')
            cases.append((f"{field}={token}", raw.encode()))
        cases.append((f"{field} huge", create_body(**{field: 10**400})))
        # More digits than Python converts to an int (4300).
        long_number = json.dumps({**GOOD_CREATE, field: 123456789}).replace("123456789", "7" * 5000)
        cases.append((f"{field} 5000 digits", long_number.encode()))
    cases += [
        ("host_port_root fraction", create_body(host_port_root=30000.5)),
        ("host_port_root past 65535", create_body(host_port_root=65000)),
        ("memory below 6 MiB", create_body(memory=0.001)),
        ("memory 1e300 GiB", create_body(memory=1e300)),
        ("cpulimit 1e6", create_body(cpulimit=1e6)),
        ("cpulimit tiny", create_body(cpulimit=0.0001)),
    ]
    for name in (
        "",
        "a",
        "wéb",
        "名前",
        "web\u202eexe",
        "x" * 200,
        "web/1",
        "web 1",
        "web\x00",
        "-web",
        ".web",
        "../web",
        "web\n",
    ):
        cases.append((f"name {name[:20]!r}", create_body(name=name)))
    for ports in (
        "80/tcp",
        ["80"],
        ["80/"],
        ["/tcp"],
        ["80/icmp"],
        ["-1/tcp"],
        ["99999/tcp"],
        ["0/tcp"],
        ["5000/tcp"],
        ["80/TCP"],
        [" 80/tcp"],
        ["80/tcp\n"],
        [80],
        [None],
        [["80/tcp"]],
        ["\uff18\uff10/tcp"],
    ):
        cases.append((f"ports {ports!r}", create_body(ports=ports)))
    for image in ("", " ", "a b", "x\x00y", "-image", 7, ["img"]):
        cases.append((f"image {image!r}", create_body(image=image)))
    for commands in ("echo hi", [1], [None], ["a\x00b"], {"a": 1}, ["x" * 70_000]):
        cases.append((f"commands {str(commands)[:20]!r}", create_body(commands=commands)))
    cases += [
        ("unknown field", create_body(privileged=True)),
        ("empty body", b""),
        ("whitespace body", b"   \n"),
        ("not JSON", b"name=web1&memory=1"),
        ("JSON list", b"[1, 2, 3]"),
        ("JSON string", b'"web1"'),
        ("JSON null", b"null"),
        ("truncated JSON", create_body()[:-5]),
        (
            "duplicate keys",
            b'{"name": "a1", "name": "b2", "host_port_root": 30000, "memory": 1, "cpulimit": 1}',
        ),
        (
            "invalid UTF-8",
            b'{"name": "\xff\xfe", "host_port_root": 30000, "memory": 1, "cpulimit": 1}',
        ),
        ("UTF-16 body", create_body().decode().encode("utf-16")),
        ("deeply nested", b"[" * 100_000 + b"]" * 100_000),
        ("over the size limit", b'{"name": "' + b"a" * 70_000 + b'"}'),
    ]
    return cases


def bad_requests() -> list[
    tuple[str, str, str, dict[str, str] | list[tuple[str, str]], bytes | None]
]:
    """(label, method, path, query, body); NAME_PLACEHOLDER stands for the target container."""
    requests: list[tuple[str, str, str, Any, bytes | None]] = [
        (f"create: {label}", "PUT", "/v1/container", {}, body)
        for label, body in bad_create_bodies()
    ]
    target = {"id": NAME_PLACEHOLDER}
    for label, body in (
        ("empty", b"{}"),
        ("memory string", b'{"memory": "1"}'),
        ("memory NaN", b'{"memory": NaN}'),
        ("memory negative", b'{"memory": -2}'),
        ("cpulimit zero", b'{"cpulimit": 0}'),
        ("cpulimit Infinity", b'{"cpulimit": Infinity}'),
        ("cpulimit above the CPU count", b'{"cpulimit": 4096}'),
        ("unknown field", b'{"memory": 1, "swap": 2}'),
        ("nulls only", b'{"memory": null, "cpulimit": null}'),
        ("list", b"[]"),
        ("invalid UTF-8", b'{"memory": 1, "\xc3\x28": 1}'),
        ("duplicate keys", b'{"memory": 1, "memory": 2}'),
        ("memory 5000 digits", b'{"memory": ' + b"1" * 5000 + b"}"),
        ("cpulimit 5000 digits", b'{"cpulimit": -' + b"1" * 5000 + b"}"),
    ):
        requests.append((f"patch: {label}", "PATCH", "/v1/container", target, body))
    for ref in ("", "../etc", "a/b", "x" * 200, "\x00", "ü", "-rf", "a b", "web1?x=1", "%2e%2e"):
        for method, path in (("POST", "/v1/container/start"), ("DELETE", "/v1/container")):
            requests.append((f"id {ref[:10]!r} {path}", method, path, {"id": ref}, None))
    requests.append(("no id", "POST", "/v1/container/stop", {}, None))
    for grace in ("-1", "301", "1.5", "ten", "", "\uff11"):
        requests.append(
            (f"t={grace!r}", "POST", "/v1/container/stop", {**target, "t": grace}, None)
        )
    for flag in ("yes", "2", "", "TRUE!"):
        requests.append(
            (
                f"deletevolume={flag!r}",
                "DELETE",
                "/v1/container",
                {**target, "deletevolume": flag},
                None,
            )
        )
    requests.append(("running=maybe", "GET", "/v1/container", {"running": "maybe"}, None))
    # (An empty path= means the default directory, as with the original service.)
    for path in ("relative/dir", "../../etc", "/var/www/\x00", "/var/www/../../etc", "~", " /x"):
        requests.append(
            (f"git path {path!r}", "GET", "/v1/git/head", {**target, "path": path}, None)
        )
    for branch in (
        "-f",
        "--orphan",
        "a..b",
        "a b",
        "x.lock",
        "a@{1}",
        "@",
        "trailing/",
        "trailing.",
        "a//b",
        ".hidden",
        "a\x00b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "",
    ):
        requests.append(
            (f"branch {branch!r}", "POST", "/v1/git/branch", {**target, "branch": branch}, None)
        )
    requests.append(("wrong method", "GET", "/v1/container/start", target, None))
    return requests


def host_rule_requests(own_port: int) -> list[tuple[str, str, str, Any, bytes | None]]:
    """Creates that would reach past the container onto the host (min_host_port, dockerlink's
    own listen port ``own_port``...): well-formed, and still 400."""
    own_block_root = min(own_port - 100, 65536 - 5000)
    bodies = [
        ("host_port_root below min_host_port", create_body(host_port_root=1000)),
        ("block holding dockerlink's port", create_body(host_port_root=own_block_root)),
        ("65 ports", create_body(ports=[f"{port}/tcp" for port in range(1000, 1065)])),
        # Well below what the parser refuses as too large, far above any host's memory.
        ("memory above the engine's", create_body(memory=1_000_000)),
    ]
    requests: list[tuple[str, str, str, Any, bytes | None]] = [
        (f"create: {label}", "PUT", "/v1/container", {}, body) for label, body in bodies
    ]
    requests.append(
        (
            "patch: memory above the engine's",
            "PATCH",
            "/v1/container",
            {"id": NAME_PLACEHOLDER},
            b'{"memory": 1000000}',
        )
    )
    return requests


async def engine_state(docker: DockerClient, target: str) -> Any:
    """Every container but other tests' (``dltest-*``, which may come and go meanwhile)."""
    containers = []
    for summary in await docker.containers.list(all=True):
        info = await docker.containers.inspect(summary["Id"])
        if info["Name"].startswith("/dltest-") and info["Name"] != f"/{target}":
            continue
        host_config = info["HostConfig"]
        containers.append(
            (
                info["Id"],
                info["Name"],
                info["State"]["Status"],
                info["State"]["StartedAt"],
                host_config["Memory"],
                host_config["CpuQuota"],
                host_config["CpuPeriod"],
                sorted((info["Config"]["Labels"] or {}).items()),
                sorted(m.get("Name", "") for m in info["Mounts"] or []),
            )
        )
    return sorted(containers)


async def repo_state(docker: DockerClient, container_id: str) -> str:
    result = await docker.execs.run(
        container_id,
        ["sh", "-c", "cd /var/www/html && git rev-parse HEAD && git branch && ls -la"],
        user="admin",
        timeout=20,
    )
    assert result.exit_code == 0, result.text()
    return result.text()


@pytest.fixture
async def target(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> str:
    name = unique_name("hostile")
    await create_container(api, docker, cleanup, name)
    assert (await api.post("/v1/container/start", params={"id": name})).status_code == 204
    setup = await docker.execs.run(
        name,
        [
            "sh",
            "-c",
            "cd /var/www/html && git init -q && echo hi > f && git add f && git commit -qm first",
        ],
        user="admin",
        timeout=20,
    )
    assert setup.exit_code == 0, setup.text()
    return name


async def test_bad_requests_answer_4xx_and_change_nothing(
    api: httpx.AsyncClient, docker: DockerClient, target: str
) -> None:
    assert api.base_url.port is not None
    table = bad_requests() + host_rule_requests(api.base_url.port)
    assert len(table) >= 100
    before = await engine_state(docker, target)
    repo_before = await repo_state(docker, target)
    failures = []
    for label, method, path, query, body in table:
        if isinstance(query, dict):
            query = {k: (target if v == NAME_PLACEHOLDER else v) for k, v in query.items()}
        params = query if isinstance(query, dict) else tuple(query)  # pairs, in order
        response = await api.request(method, path, params=params, content=body)
        text = response.text
        ok = (
            response.status_code == expected_status(label, body)
            and response.headers.get("content-type") == "text/plain; charset=utf-8"
            and len(text) > 1
            and text.endswith("\n")
            and text.count("\n") == 1
        )
        if not ok:
            failures.append(f"{label}: {response.status_code} {text!r}")
    assert failures == []
    assert await engine_state(docker, target) == before
    # The one well-formed name in the table was never used.
    assert await docker.containers.list(all=True, filters={"name": ["^/dltest-hostile-ok$"]}) == []
    assert await repo_state(docker, target) == repo_before


def expected_status(label: str, body: bytes | None) -> int:
    """413 for a body over the size limit, 405 for the route asked with the wrong method, and
    400 for everything else: each bad value is named in a 400, none passes for a missing
    container (404) or another failure."""
    if body is not None and len(body) > REQUEST_MAX_SIZE:
        return 413
    return 405 if label == "wrong method" else 400


# -- on the wire: invented methods, header bytes, browsers acting for another site ---------------

#: Headers a browser sends when a page of another site makes it call dockerlink (no token set).
FOREIGN_BROWSERS = {
    "foreign Host (DNS rebinding)": {"Host": "rebound.example:7200"},
    "foreign Origin": {"Origin": "https://evil.example"},
    "Origin null": {"Origin": "null"},
    "Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site"},
    "Sec-Fetch-Site same-site": {"Sec-Fetch-Site": "same-site"},
}
INVENTED_METHODS = [
    b"STOP",
    b"PUT2",
    b"D\x01LETE",
    b"POST\rINFO dockerlink.request: [forged] POST /v1/forged 204",
    b"M" * 4000,
]
BAD_HEADER_BYTES = [
    b"Authorization: Bearer \xff\xfe",
    b"Origin: http://\xff\xfe",
    b"Host: \xff\xfe:7200",
    b"X-Request-Id: \xc3\x28",
    b"Sec-Fetch-Site: cross-\xff",
    b"Content-Type: application/json; charset=\xff",
]


def writes(target: str) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    """Requests that would change something (or read everything) if they were served."""
    limits = json.dumps({"memory": 0.5, "cpulimit": 1}).encode()
    return [
        ("POST", f"/v1/container/stop?id={target}&t=0", {}, None),
        ("POST", f"/v1/container/restart?id={target}&t=0", {}, None),
        ("DELETE", f"/v1/container?id={target}&deletevolume=true", {}, None),
        ("PATCH", f"/v1/container?id={target}", {"Content-Type": "application/json"}, limits),
        ("PUT", "/v1/container", {"Content-Type": "application/json"}, create_body()),
        ("POST", f"/v1/git/branch?id={target}&branch=evil", {}, None),
        ("GET", "/v1/container", {}, None),
    ]


async def raw_request(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """``request`` (a whole HTTP/1.1 request) on a fresh connection: status, headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines if ": " in line)
    return int(status_line.split()[1]), headers, body


def wire_request(method: bytes, target: str, headers: list[bytes], body: bytes | None) -> bytes:
    lines = [method + b" " + target.encode() + b" HTTP/1.1", *headers, b"Connection: close"]
    if not any(h.lower().startswith(b"host:") for h in headers):
        lines.append(b"Host: 127.0.0.1")
    if body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def one_line_4xx(status: int, content_type: str | None, text: bytes) -> bool:
    return (
        400 <= status < 500
        and content_type == "text/plain; charset=utf-8"
        and len(text) > 1
        and text.endswith(b"\n")
        and text.count(b"\n") == 1
    )


async def test_wire_and_browser_requests_answer_4xx_and_change_nothing(
    api: httpx.AsyncClient, docker: DockerClient, target: str, engine_settings: Settings
) -> None:
    before = await engine_state(docker, target)
    repo_before = await repo_state(docker, target)
    port = api.base_url.port
    assert port is not None
    failures = []
    for label, headers in FOREIGN_BROWSERS.items():
        for method, path, extra, body in writes(target):
            response = await api.request(method, path, headers={**extra, **headers}, content=body)
            ok = one_line_4xx(
                response.status_code, response.headers.get("content-type"), response.content
            )
            if response.status_code != 403 or not ok:
                failures.append(
                    f"{label} {method} {path}: {response.status_code} {response.text!r}"
                )
    for invented in INVENTED_METHODS:
        for _, path, extra, body in writes(target):
            header_lines = [f"{k}: {v}".encode() for k, v in extra.items()]
            status, answer_headers, text = await raw_request(
                port, wire_request(invented, path, header_lines, body)
            )
            if not one_line_4xx(status, answer_headers.get("content-type"), text):
                failures.append(f"method {invented[:20]!r} {path}: {status} {text!r}")
    for header in BAD_HEADER_BYTES:
        # A grace period of -1 is refused: only the header's bytes could make this go wrong.
        request = wire_request(b"POST", f"/v1/container/stop?id={target}&t=-1", [header], None)
        status, answer_headers, text = await raw_request(port, request)
        if not one_line_4xx(status, answer_headers.get("content-type"), text):
            failures.append(f"header {header!r}: {status} {text!r}")
    # With a token, bytes that are not UTF-8 in Authorization are a wrong token.
    guarded_settings = replace(
        engine_settings,
        api_token=TEST_TOKEN,
        data_dir=engine_settings.data_dir.with_name("guarded"),
    )
    async with serve(guarded_settings) as guarded:
        guarded_port = guarded.base_url.port
        assert guarded_port is not None
        wrong_tokens = [
            BAD_HEADER_BYTES[0],
            b"Authorization: Bearer " + TEST_TOKEN.encode() + b"\xff",
        ]
        for header in wrong_tokens:
            request = wire_request(b"POST", f"/v1/container/stop?id={target}&t=0", [header], None)
            status, answer_headers, text = await raw_request(guarded_port, request)
            if status != 401 or not one_line_4xx(status, answer_headers.get("content-type"), text):
                failures.append(f"token header {header!r}: {status} {text!r}")
    assert failures == []
    assert await engine_state(docker, target) == before
    assert await repo_state(docker, target) == repo_before
    metrics = (await api.get("/metrics")).text
    assert set(re.findall(r'method="([^"]*)"', metrics)) <= {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "other",
    }
