"""The domain objects a handler reaches through its request."""

from __future__ import annotations

from sanic import HTTPResponse, Request
from sanic.request import RequestParameters

from ..context import context_of
from ..hooks import HOOK_ERROR_HEADER, HookFailure
from ..hosting import Hosting

__all__ = ["hosting_of", "query", "with_hook_report"]


def query(request: Request) -> RequestParameters:
    """The query string with blank values kept, so that ``?t=`` is refused, not ignored."""
    text = request.query_string
    if "%" in text or "+" in text:
        return request.get_args(keep_blank_values=True)
    # Nothing to decode (``?id=web1``, what panels send): what ``parse_qsl`` gives, split
    # directly, for a fraction of its cost on every request.
    args = RequestParameters()
    for field in text.split("&"):
        if field:
            name, _, value = field.partition("=")
            args.setdefault(name, []).append(value)
    return args


def hosting_of(request: Request) -> Hosting:
    return context_of(request).hosting


def with_hook_report(response: HTTPResponse, failure: HookFailure | None) -> HTTPResponse:
    """The action's answer, plus ``X-Dockerlink-Hook-Error`` when a hook failed after it."""
    if failure is not None:
        response.headers[HOOK_ERROR_HEADER] = failure.header_value()
    return response
