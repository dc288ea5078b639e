"""``/v1/env`` (the original's settings echo), ``/health`` and ``/openapi.json``."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

import docker_api

from ..context import context_of
from ..openapi import openapi_document
from ..responses import json_response

bp = Blueprint("system", strict_slashes=False)


@bp.get("/v1/env")
async def env(request: Request) -> HTTPResponse:
    settings = context_of(request).settings
    return json_response(
        {
            "docker_sock": settings.docker_sock,
            "port_area_size": str(settings.port_area_size),
            "base_image": settings.base_image or "",
        }
    )


@bp.get("/health")
async def health(request: Request) -> HTTPResponse:
    probe = context_of(request).probe
    try:
        version = await probe.version()
    except docker_api.DockerError as exc:
        return json_response(
            {"status": "degraded", "engine": None, "reason": exc.message}, status=503
        )
    return json_response({"status": "ok", "engine": version.get("Version")})


@bp.get("/openapi.json")
async def openapi(request: Request) -> HTTPResponse:
    return json_response(openapi_document())
