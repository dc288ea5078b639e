"""Property-based fuzzing of every operation in the OpenAPI document (schemathesis).

Each operation gets up to ``MAX_EXAMPLES`` generated requests (plus schemathesis's own coverage
cases: missing and wrong parameters, wrong methods, no token), sent over HTTP to a real
``dockerlink serve`` with a token set, which drives a second, private engine: fuzzed creates,
starts and deletes never touch the shared test engine. Every answer must conform to the
document (a documented status code, a documented content type, a body matching its schema), and
no answer may be a 5xx the operation does not document (503, engine unavailable, is documented
everywhere; the engine's 500 only on start, git's 504 only on git routes).

So that generated requests reach past "no such container", half of the generated ``id`` values
are replaced by the name of a container that exists (one running, with a git repository, one
stopped, one that creates may make), and half of the generated create bodies use that name.
Before each operation is fuzzed, the seeded containers are put back in their states.

Derandomized: every run sends the same requests. The number of cases sent is printed in the
terminal summary (``fuzz: N cases ...``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dockerlink.openapi import openapi_document

from ..conftest import FIXED_BLOCKS, TEST_IMAGE, TEST_TOKEN
from ..dockerlink_process import DockerlinkProcess
from ..engines import SecondEngine, require_second_engine
from ..summary import report

#: Generated cases per operation; DOCKERLINK_FUZZ_EXAMPLES=500 for a longer hunt.
MAX_EXAMPLES = int(os.environ.get("DOCKERLINK_FUZZ_EXAMPLES", "40"))
RUNNING, STOPPED, NEW = "fz-running", "fz-stopped", "fz-new"
PORT_AREA_SIZE = 500
MAX_GRACE_S = 2
SEED_ROOTS = {RUNNING: FIXED_BLOCKS.start, STOPPED: FIXED_BLOCKS.start + PORT_AREA_SIZE}
assert FIXED_BLOCKS.start + 2 * PORT_AREA_SIZE <= FIXED_BLOCKS.stop


@dataclass
class FuzzTarget:
    url: str
    session: requests.Session
    api: httpx.Client
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)


def fuzzed_document() -> dict[str, Any]:
    """The served document, as it applies to the fuzzed service's settings (port_area_size)."""
    document = openapi_document()
    create = document["paths"]["/v1/container"]["put"]
    properties = create["requestBody"]["content"]["application/json"]["schema"]["properties"]
    properties["host_port_root"]["maximum"] = 65536 - PORT_AREA_SIZE
    return document


schema = schemathesis.openapi.from_dict(fuzzed_document())


@schema.hook
def flatmap_query(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    """Three times in four, an ``id`` that names a container that exists (or that creates make).

    A stop's grace period ``t`` over ``MAX_GRACE_S`` becomes ``MAX_GRACE_S``: the containers'
    shell ignores SIGTERM, so a stop lasts its whole grace period, up to 300 s.
    """
    grace = str(query.get("t")) if isinstance(query, dict) else ""
    seconds = int(grace) if grace.isascii() and grace.isdigit() else 0
    if isinstance(query, dict) and MAX_GRACE_S < seconds <= 300:  # over 300: a 400 at once
        query = {**query, "t": MAX_GRACE_S}
    if not isinstance(query, dict) or not isinstance(query.get("id"), str):
        return st.just(query)
    generated = query["id"]
    return st.sampled_from([RUNNING, STOPPED, NEW, generated]).map(lambda n: {**query, "id": n})


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    """Half the time, a create body names ``fz-new`` (which other operations then find)."""
    if context.operation is None or context.operation.label != "PUT /v1/container":
        return st.just(body)
    if not isinstance(body, dict) or "name" not in body:
        return st.just(body)
    return st.sampled_from([body, {**body, "name": NEW}])


def no_undocumented_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    documented = set(case.operation.definition.raw.get("responses", {}))
    if response.status_code >= 500 and str(response.status_code) not in documented:
        raise AssertionError(
            f"{case.operation.label} answered {response.status_code}: {response.text[:300]}"
        )
    return None


@pytest.fixture(scope="module")
def fuzz_target(
    engine_sock: str, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[FuzzTarget]:
    require_second_engine()
    # No userland proxy and no iptables: fuzzed containers that start publish nothing on the host.
    engine = SecondEngine("fuzz", ["--userland-proxy=false"])
    workdir = tmp_path_factory.mktemp("fuzz")
    server = DockerlinkProcess(
        workdir,
        {
            "docker_sock": engine.sock,
            "base_image": TEST_IMAGE,
            "api_token": TEST_TOKEN,
            "data_dir": str(workdir / "data"),
            "port_area_size": str(PORT_AREA_SIZE),
            "sample_interval": "1",
            "docker_timeout": "10",
            "git_timeout": "10",
            "stop_timeout": "1",
        },
    )
    headers = {"Authorization": f"Bearer {TEST_TOKEN}"}
    session = requests.Session()
    session.headers.update(headers)
    try:
        engine.start()
        engine.load_image(TEST_IMAGE, engine_sock)
        server.start()
        server.wait_healthy()
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
            target = FuzzTarget(server.url, session, api)
            yield target
        if target.cases:
            report_cases(pytestconfig, target)
        assert server.running(), f"dockerlink died while fuzzed:\n{server.log_tail()}"
    finally:
        session.close()
        server.stop()
        engine.destroy()


def report_cases(config: pytest.Config, target: FuzzTarget) -> None:
    """The number of cases sent, and the answers' status codes, in the terminal summary."""
    cases = target.cases
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(target.statuses.items()))
    report(
        config,
        f"fuzz: {cases.total()} cases sent over {len(cases)} operations",
        *(f"  {label}: {count}" for label, count in cases.items()),
        f"  status codes: {statuses}",
    )


@pytest.fixture
def seeded(fuzz_target: FuzzTarget) -> FuzzTarget:
    """``fz-running`` running with a git repository, ``fz-stopped`` stopped, both with their
    first limits; ``fz-new`` absent."""
    api = fuzz_target.api
    listed = api.get("/v1/container", params={"id": [RUNNING, STOPPED, NEW]}).json()
    present = {name: info["state"] for name, info in listed["success"].items()}
    if NEW in present:
        if present[NEW] == "running":
            assert api.post("/v1/container/stop", params={"id": NEW, "t": "0"}).status_code == 204
        assert api.delete("/v1/container", params={"id": NEW}).status_code == 204
    for name, root in SEED_ROOTS.items():
        if name not in present:
            body = {"name": name, "host_port_root": root, "memory": 0.25, "cpulimit": 0.5}
            created = api.put("/v1/container", json=body)
            assert created.status_code == 200, created.text
            present[name] = "created"
    for name in SEED_ROOTS:  # fuzzed limits may be as low as 6 MiB: too little for git
        limits = {"memory": 0.25, "cpulimit": 0.5}
        assert api.patch("/v1/container", params={"id": name}, json=limits).status_code == 200
    if present[RUNNING] != "running":
        assert api.post("/v1/container/start", params={"id": RUNNING}).status_code == 204
    assert api.put("/v1/git", params={"id": RUNNING}).status_code == 204
    if present[STOPPED] == "running":
        assert api.post("/v1/container/stop", params={"id": STOPPED, "t": "0"}).status_code == 204
    return fuzz_target


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_conforms_to_the_document(case: Any, seeded: FuzzTarget) -> None:
    label = case.operation.label
    seeded.cases[label] += 1
    if case.query and str(case.query.get("follow", "")).lower() in {"true", "1"}:
        # A followed log of a running container never ends, and a case reads its whole answer
        # (following has its own tests in test_logs.py). Set here, whichever phase made the case.
        case.query["follow"] = "false"
    response = case.call(base_url=seeded.url, session=seeded.session, timeout=60)
    seeded.statuses[response.status_code] += 1
    case.validate_response(
        response,
        checks=[
            no_undocumented_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


def test_an_ambiguous_id_prefix_is_a_bad_request(fuzz_target: FuzzTarget) -> None:
    """Found by the fuzzer: ``?id=f`` when two container ids start with ``f`` answered 500."""
    api = fuzz_target.api
    made: dict[str, list[str]] = {}
    try:
        # Ids are random hex: among 17 containers two share a first digit.
        for i in range(17):
            body = {"name": f"fz-prefix-{i}", "host_port_root": 20000 + 500 * i}
            created = api.put("/v1/container", json={**body, "memory": 0.25, "cpulimit": 0.5})
            assert created.status_code == 200, created.text
            container_id = created.json()["Id"]
            made.setdefault(container_id[0], []).append(container_id)
            if len(made[container_id[0]]) == 2:
                break
        prefix = next(digit for digit, ids in made.items() if len(ids) == 2)
        for method, path in [
            ("GET", "/v1/container"),
            ("PATCH", "/v1/container"),
            ("DELETE", "/v1/container"),
            ("POST", "/v1/container/start"),
            ("POST", "/v1/container/stop"),
            ("GET", "/v1/container/stats"),
            ("GET", "/v1/git/head"),
        ]:
            limits = {"memory": 0.5} if method == "PATCH" else None
            response = api.request(method, path, params={"id": prefix}, json=limits)
            assert response.status_code == 400, (method, path, response.text)
            assert response.text.lower() == f"multiple ids found with provided prefix: {prefix}\n"
    finally:
        for ids in made.values():
            for container_id in ids:
                api.delete("/v1/container", params={"id": container_id})
