"""The API token never appears in dockerlink's logs, whatever a client does with it.

A real ``dockerlink serve`` runs with a token and ``log_level=DEBUG`` (every logger, httpx's
included), in text and in JSON. Clients send the token the right way, the wrong way (another
scheme, no scheme, other headers, a cookie), in query strings and in container ids, with and
without a valid token beside it; then everything the process wrote is searched for the token,
raw and percent-encoded.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from ..conftest import TEST_IMAGE
from ..dockerlink_process import DockerlinkProcess

#: It has characters URL encoding changes (encoded forms are searched too), and it is a sane
#: request id, so a client that sends it as X-Request-Id would have it echoed.
TOKEN = "tok+en/with=odd.chars-0123456789abcdef"


def requests_with_the_token() -> list[tuple[str, str, dict[str, str], dict[str, str]]]:
    """(method, path, params, headers): the token used well, and in every wrong place."""
    good = {"Authorization": f"Bearer {TOKEN}"}
    wrong_headers = [
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"X-Api-Token": TOKEN},
        {"X-Request-Id": TOKEN},
        {"Cookie": f"token={TOKEN}"},
        {"Proxy-Authorization": f"Bearer {TOKEN}"},
    ]
    in_queries = [
        {"token": TOKEN},
        {"access_token": TOKEN},
        {"api_token": TOKEN},
        {"id": TOKEN},
        {"id": "web1", "t": TOKEN},
    ]
    cases = [
        ("GET", "/v1/container", {}, good),
        ("GET", "/v1/env", {}, good),
        ("GET", "/health", {}, good),
        ("GET", "/v1/container/stats", {"id": "dltest-nothing"}, good),
        ("PUT", "/v1/container", {}, good),
        ("GET", "/v1/container", {}, {}),
        ("GET", "/no/such/route", {}, good),
    ]
    for headers in wrong_headers:
        cases.append(("GET", "/v1/container", {}, headers))
    for params in in_queries:
        cases.append(("GET", "/v1/container", params, {}))
        cases.append(("POST", "/v1/container/stop", params, good))
        cases.append(("GET", f"/v1/git/head/{TOKEN}", params, good))
    return cases


def forms_of(token: str) -> set[str]:
    return {token, quote(token, safe=""), quote_plus(token), quote(token)}


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_the_token_never_appears_in_the_logs(
    engine_sock: str, tmp_path: Path, log_format: str
) -> None:
    server = DockerlinkProcess(
        tmp_path,
        {
            "docker_sock": engine_sock,
            "base_image": TEST_IMAGE,
            "api_token": TOKEN,
            "data_dir": str(tmp_path / "data"),
            "log_level": "DEBUG",
            "log_format": log_format,
        },
    )
    server.start()
    try:
        await server.until_healthy()
        statuses = []
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            for method, path, params, headers in requests_with_the_token():
                response = await client.request(
                    method, path, params=params, headers=headers, content=b"{}"
                )
                statuses.append(response.status_code)
        assert 401 in statuses and 200 in statuses  # both sides of the check were exercised
    finally:
        assert server.stop() == 0
    log = server.log_text()
    assert "GET /v1/container" in log  # requests were logged, at DEBUG
    assert "DEBUG" in log
    for form in forms_of(TOKEN):
        assert form not in log, f"the token ({form}) is in the log"
