"""The OpenAPI document names exactly the registered routes, and is served."""

from __future__ import annotations

import re

import orjson
from sanic_testing.testing import SanicASGITestClient

from dockerlink.app import create_app
from dockerlink.openapi import openapi_document
from dockerlink.settings import Settings

METHODS = {"get", "put", "post", "patch", "delete"}


def registered_routes() -> set[tuple[str, str]]:
    """Sanic's ``<name>`` and ``<name:type>`` path parameters as OpenAPI's ``{name}``."""
    app = create_app(Settings(docker_sock="/fake.sock"))
    return {
        ("/" + re.sub(r"<(\w+)(?::[^>]*)?>", r"{\1}", route.path.rstrip("/")), method.lower())
        for route in app.router.routes
        for method in route.methods
        if method.lower() in METHODS
    }


def documented_routes() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, operations in openapi_document()["paths"].items()
        for method in operations
        if method in METHODS
    }


def test_every_route_is_documented_and_nothing_else() -> None:
    registered = registered_routes()
    documented = documented_routes()
    assert registered - documented == set(), "routes missing from the OpenAPI document"
    assert documented - registered == set(), "stale routes in the OpenAPI document"


def test_every_operation_documents_its_answers() -> None:
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            # a success, or the switch to a WebSocket
            assert any(code.startswith("2") or code == "101" for code in responses), (path, method)
            if operation.get("security") != []:
                assert "401" in responses, (path, method)


async def test_the_document_is_served_without_a_token() -> None:
    settings = Settings(docker_sock="/fake.sock", api_token="unit-test-token-0123456789")
    client = SanicASGITestClient(create_app(settings))
    _, response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert orjson.loads(response.content) == orjson.loads(orjson.dumps(openapi_document()))
