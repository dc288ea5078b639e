"""``/v1/git``: pull, init, head, branches, current branch, checkout, in a container."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from ..context import context_of
from ..git import GitService
from ..requests import parse_bool, parse_branch, parse_container_ref, parse_git_path
from ..responses import json_response, no_content, plain_text
from ._common import query

bp = Blueprint("git", url_prefix="/git", version=1, strict_slashes=False)


def _git(request: Request) -> GitService:
    return context_of(request).git


def _target(request: Request) -> tuple[str, str | None]:
    """The container and the directory (None: the container's working directory)."""
    return parse_container_ref(query(request).get("id")), parse_git_path(query(request).get("path"))


@bp.get("")
async def pull(request: Request) -> HTTPResponse:
    ref, path = _target(request)
    return plain_text(200, await _git(request).pull(ref, path))


@bp.put("")
async def init(request: Request) -> HTTPResponse:
    ref, path = _target(request)
    await _git(request).init(ref, path)
    return no_content()


@bp.get("/head")
async def head(request: Request) -> HTTPResponse:
    ref, path = _target(request)
    return plain_text(200, await _git(request).head(ref, path))


@bp.get("/branches")
async def branches(request: Request) -> HTTPResponse:
    ref, path = _target(request)
    fetch = parse_bool(query(request).get("fetch"), "fetch", False)
    return json_response(await _git(request).branches(ref, path, fetch=fetch))


@bp.get("/branch")
async def current_branch(request: Request) -> HTTPResponse:
    ref, path = _target(request)
    return plain_text(200, await _git(request).current_branch(ref, path))


@bp.post("/branch")
async def checkout(request: Request) -> HTTPResponse:
    ref, path = _target(request)
    branch = parse_branch(query(request).get("branch"))
    return plain_text(200, await _git(request).checkout(ref, path, branch))
