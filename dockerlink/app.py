"""create_app(settings): the Sanic application, its listeners, middleware and error handler."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hmac
import inspect
import itertools
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from multidict import istr
from sanic import HTTPResponse, Request, Sanic
from sanic.compat import Header
from sanic.config import Config
from sanic.exceptions import BadURL, SanicException
from sanic.handlers import ErrorHandler
from sanic.response import BaseHTTPResponse

import docker_api
from docker_api import DockerClient

from .answered import AnsweredRequests
from .browsers import browser_refusal
from .context import AppContext
from .domain_errors import DomainError
from .engine import EngineProbe, engine_client
from .errors import Forbidden, HTTPError, Unauthorized, domain_error_answer, engine_error_answer
from .events import LifecycleEvents, open_event_log
from .git import GitService
from .hooks import HOOK_ERROR_HEADER
from .hosting import Hosting
from .logs import cause_note
from .mirror import ContainerMirror
from .prometheus import ServiceMetrics, method_label
from .responses import Answer, text_response
from .routes import containers, git, observability, ssh, system
from .routes import events as event_routes
from .routes import logs as logs_routes
from .routes import stats as stats_routes
from .routes import terminal as terminal_routes
from .settings import Settings
from .ssh_bridge import SSHBridge
from .stats import Sampler, call_timeout_for, open_history
from .stats.sampler import concurrency_for
from .stats.sources import cgroup_source_choice
from .tasks import supervise
from .terminal import TerminalSessions
from .webhooks import open_outbox

__all__ = ["create_app"]

log = logging.getLogger("dockerlink")

#: Request bodies are small JSON objects; anything larger is refused with 413.
REQUEST_MAX_SIZE = 64 * 1024
#: The path a request whose target is not a URL is made for (no route has it).
_BAD_URL_PATH = b"/.bad-url"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
#: Routes that answer without a token: liveness, the API description (no secrets in it), and
#: the dashboard page (it holds no data: its own API calls carry the token).
_PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/"})
#: The terminal page and the files it loads hold no data either (its socket needs the token).
_PUBLIC_TERMINAL_PATHS = frozenset({"/terminal"})
_PUBLIC_PREFIXES = ("/static/",)
#: Largest WebSocket message accepted (a paste into the terminal is one message).
WEBSOCKET_MAX_SIZE = 1024 * 1024
#: Public pages that browsers load from other sites' links, exempt from the rule on requests
#: a browser makes for another site (besides the public paths): the terminal page and its
#: files, and the SSH bridge that customers' browsers reach through nginx from the panel's pages.
_BROWSER_RULE_EXEMPT = frozenset({"/terminal", "/terminal/"})
_BROWSER_RULE_EXEMPT_PREFIXES = ("/v1/ssh/", *_PUBLIC_PREFIXES)
_CORS_METHODS = "GET, PUT, POST, PATCH, DELETE"
_CORS_HEADERS = "Authorization, Content-Type, X-Request-Id"
#: Headers read on every request (the rule on browsers, the request's id), named as the header
#: map keeps its keys (looked up so, a name is not lower-cased first).
_HOST, _ORIGIN, _FETCH_SITE = istr("host"), istr("origin"), istr("sec-fetch-site")
_REQUEST_ID = istr("X-Request-Id")  # (as answers name it)
_AUTHORIZATION = istr("authorization")

DockerlinkApp = Sanic[Config, AppContext]


class _App(DockerlinkApp):
    """Sanic, with the app's request middleware run by the handler of each route that has no
    middleware of its own.

    That middleware is the check of every request (``authenticate`` in :func:`create_app`), and
    Sanic's way of running middleware (a coroutine, a loop, a call through a ``Middleware``,
    an ``isawaitable``) cost more than the check itself. The handler runs it where Sanic would
    have: after routing and reading the body, before the handler; an answer it returns is the
    request's answer, an exception it raises is answered as the handler's would be. Sanic
    still runs it itself where no route's handler runs (an unmatched path or method, a body
    too large...): it then takes the app's middleware. Routes with middleware of their own
    (the WebSocket routes) keep Sanic's way.
    """

    def finalize_middleware(self) -> None:
        super().finalize_middleware()
        app_wide = tuple(self.request_middleware)
        if len(app_wide) != 1 or inspect.iscoroutinefunction(app_wide[0].func):
            return  # (only the one check's case is needed: the others keep Sanic's way)
        check = app_wide[0].func
        for route in self.router.routes:
            if tuple(route.extra.request_middleware) != app_wide:
                continue
            route.extra.request_middleware = deque()
            if not getattr(route.handler, "runs_app_middleware", False):  # (finalized again)
                route.handler = _checked_first(check, route.handler, bool(route.params))


def _checked_first(
    check: Callable[..., Any], handler: Callable[..., Any], params: bool
) -> Callable[..., Any]:
    """``handler`` after ``check``, as Sanic runs request middleware: when the check returns
    an answer, it is the request's, and the handler does not run. ``params``: whether the
    route's path has parameters (Sanic passes them by name; without any, there is nothing to
    pass on)."""

    def with_params(request: Request, **kwargs: Any) -> Any:
        answer = check(request)
        if answer:
            return answer
        return handler(request, **kwargs)

    def without(request: Request) -> Any:
        answer = check(request)
        if answer:
            return answer
        return handler(request)

    checked = functools.wraps(handler)(with_params if params else without)  # (is_websocket...)
    checked.runs_app_middleware = True  # type: ignore[attr-defined]
    return checked


def create_app(settings: Settings, *, docker: DockerClient | None = None) -> DockerlinkApp:
    """Build the app. ``docker`` lets tests share one client; by default one is opened at start."""
    # app.ctx becomes the AppContext in open_services, once every object in it exists.
    app: DockerlinkApp = _App(
        "dockerlink",
        error_handler=_ErrorHandler(settings),
        request_class=_ObservedRequest,
    )
    #: Kept from one start to the next (an ASGI server may start the app more than once).
    metrics = ServiceMetrics()
    answered = AnsweredRequests(metrics)
    app.config.REQUEST_MAX_SIZE = REQUEST_MAX_SIZE
    # The longest a route may legitimately take: a stop waits its whole grace period (up to
    # 300 s) and may run a hook; a create may run two hooks (create, then delete to roll back);
    # git runs up to git_timeout.
    longest_s = max(
        300 + settings.docker_timeout + 2 * settings.hook_timeout,
        settings.git_timeout + 2 * settings.docker_timeout,
    )
    app.config.RESPONSE_TIMEOUT = int(longest_s) + 30
    app.config.KEEP_ALIVE_TIMEOUT = 75
    app.config.MOTD = False
    app.config.NOISY_EXCEPTIONS = False
    app.config.WEBSOCKET_MAX_SIZE = WEBSOCKET_MAX_SIZE

    app.blueprint(containers.bp)
    app.blueprint(stats_routes.bp)
    app.blueprint(git.bp)
    app.blueprint(system.bp)
    app.blueprint(observability.bp)
    app.blueprint(event_routes.bp)
    app.blueprint(terminal_routes.socket_bp)
    app.blueprint(terminal_routes.page_bp)
    app.blueprint(logs_routes.bp)
    if settings.ssh_bridge:
        app.blueprint(ssh.socket_bp)
        app.blueprint(ssh.page_bp)

    @app.before_server_start
    async def open_services(app: DockerlinkApp) -> None:
        app.ctx = await _open_context(settings, docker, metrics, answered)

    _background_task(app, "mirror", lambda ctx: ctx.mirror.run())
    _background_task(app, "mirror-reconcile", lambda ctx: ctx.mirror.reconcile_forever())
    # One sampler per service: `dockerlink serve` runs a single process.
    _background_task(app, "sampler", lambda ctx: ctx.sampler.run())
    _background_task(app, "events", lambda ctx: ctx.lifecycle.run())
    if settings.webhook_url is not None:
        _background_task(app, "webhooks", lambda ctx: ctx.lifecycle.deliver())

    @app.after_server_stop
    async def close_services(app: DockerlinkApp) -> None:
        answered.flush()  # (the last turn's requests, if the loop stopped before its end)
        if isinstance(app.ctx, AppContext):
            # A create whose client left (its handler cancelled) is still running: it gets its
            # hooks' time to end, with the engine client still open, or to be undone.
            await app.ctx.hosting.wait_unfinished(
                2 * settings.hook_timeout + settings.docker_timeout
            )
            # The writer finishes what is queued: that waits on the disk, so not on the loop.
            await asyncio.to_thread(app.ctx.history.close)
            await asyncio.to_thread(app.ctx.lifecycle.close)
            if docker is None:
                await app.ctx.docker.close()

    @app.before_server_stop
    async def end_terminals(app: DockerlinkApp) -> None:
        # Here, while the engine client is still open (it closes after the server stops): the
        # sessions' own endings race with that close once their connections are dropped.
        if isinstance(app.ctx, AppContext):
            await app.ctx.terminals.end_all()

    public_paths = _PUBLIC_PATHS | ({"/metrics"} if settings.metrics_public else set())
    public_paths |= _PUBLIC_TERMINAL_PATHS
    public_paths |= {path + "/" for path in public_paths if path != "/"}  # routes take both

    @functools.lru_cache(maxsize=256)
    def refusal_for(host: str, origin: str | None, fetch_site: str | None) -> str | None:
        """:func:`browser_refusal` for these settings (a pure function of the headers; a
        client sends the same ones again and again)."""
        return browser_refusal(host, origin, fetch_site, settings)

    token = settings.api_token
    token_bytes = (token or "").strip().encode()
    # (compare_digest compares text only when it is ASCII)
    bearer = f"Bearer {token.strip()}" if token is not None and token.isascii() else None
    preflights = bool(settings.cors_origins)
    browser_rule_exempt = frozenset(public_paths | _BROWSER_RULE_EXEMPT)

    def authenticate(request: Request) -> HTTPResponse | None:
        if preflights and request.method == "OPTIONS":
            return _preflight()
        path = request.path
        if token is not None:
            if (
                path not in public_paths
                and not path.startswith(_PUBLIC_PREFIXES)
                and not path.startswith(ssh.PREFIX)  # the SSH bridge: see routes/ssh.py
                and not _token_ok(request, token_bytes, bearer)
            ):
                raise Unauthorized()
        elif path not in browser_rule_exempt and not path.startswith(_BROWSER_RULE_EXEMPT_PREFIXES):
            headers = request.headers
            refusal = refusal_for(
                headers.get(_HOST, ""), headers.get(_ORIGIN), headers.get(_FETCH_SITE)
            )
            if refusal is not None:
                raise Forbidden(refusal)
        return None

    app.register_middleware(authenticate, "request", priority=100)

    @app.signal("websocket.handler.before")
    async def websocket_opened(request: Request, websocket: Any) -> None:
        # A WebSocket upgrade's answer is written by the handshake, not through respond().
        if isinstance(request, _ObservedRequest):
            request.observe(101)

    return app


async def _open_context(
    settings: Settings,
    docker: DockerClient | None,
    metrics: ServiceMetrics,
    answered: AnsweredRequests,
) -> AppContext:
    """Every long-lived object, built in dependency order."""
    client = docker or engine_client(settings)
    mirror = ContainerMirror(client)
    # Reads every stored history once.
    history = await asyncio.to_thread(open_history, settings.data_dir / "stats")
    cgroups, no_cgroups_reason = cgroup_source_choice(settings.stats_source, settings.docker_sock)
    sampler = Sampler(
        client,
        history,
        interval_s=settings.sample_interval,
        call_timeout_s=call_timeout_for(settings.sample_interval, settings.docker_timeout),
        concurrency=concurrency_for(client.max_connections),
        mirror=mirror,
        cgroups=cgroups,
        api_fallback=settings.stats_source != "cgroup",
        no_cgroups_reason=no_cgroups_reason,
        tick_hooks=[metrics.observe_tick],
    )
    hosting = Hosting(client, settings, mirror, delete_hooks=[sampler.forget])
    return AppContext(
        settings=settings,
        docker=client,
        probe=EngineProbe(client),
        mirror=mirror,
        hosting=hosting,
        git=GitService(hosting),
        history=history,
        sampler=sampler,
        metrics=metrics,
        answered=answered,
        lifecycle=await _open_lifecycle(settings, client, mirror),
        terminals=TerminalSessions(client, settings),
        ssh=SSHBridge(max_sessions=settings.ssh_max_sessions),
    )


class _ObservedRequest(Request):
    """A request that is logged and counted once its answer is ready.

    It notes its start and its id as it is made. Every answer goes through :meth:`respond`
    (a route's, an error's, an unmatched path's): there it gets the headers every answer
    carries (:func:`_finish`), and the request is observed (one log line, the request metrics,
    made at the end of the loop's turn: see :mod:`.answered`); a streamed answer is observed
    when it starts, a WebSocket upgrade (101) once its handshake is done
    (``websocket.handler.before``). This is what Sanic's ``http.lifecycle``
    signals and a response middleware did, for a fraction of their cost per request.
    """

    __slots__ = ("bad_url", "observed", "request_id", "started_s")

    def __init__(
        self,
        url_bytes: bytes,
        headers: Header,
        version: str,
        method: str,
        transport: Any,
        app: Any,
        head: bytes = b"",
        stream_id: int = 0,
    ) -> None:
        # (Sanic's parameters, named: passed on as ``*args, **kwargs``, they cost a third as
        # much again as Sanic's own __init__.)
        #: The request line's target when it is not a URL (control characters...), shown
        #: escaped; the request is then made for a path no route has, and answered 400.
        self.bad_url: str | None = None
        try:
            super().__init__(url_bytes, headers, version, method, transport, app, head, stream_id)
        except BadURL:
            # Sanic makes the request again with the same URL to answer an error, and fails
            # again: the client got no answer and the log a traceback with the raw bytes.
            super().__init__(
                _BAD_URL_PATH, headers, version, method, transport, app, head, stream_id
            )
            self.bad_url = repr(url_bytes)[2:-1]
        self.started_s = time.monotonic()
        self.observed = False
        #: Lines logged on its behalf carry it: see logs.current_request_id.
        self.request_id = _new_request_id(self.headers.get(_REQUEST_ID))

    async def respond(
        self,
        response: BaseHTTPResponse | None = None,
        *,
        status: int = 200,
        headers: Any = None,
        content_type: str | None = None,
    ) -> Any:
        final = await super().respond(
            response, status=status, headers=headers, content_type=content_type
        )
        if isinstance(final, BaseHTTPResponse):
            _finish(self.request_id, self, final, self.app.ctx.settings)
            self.observe(final.status)
        return final

    def observe(self, status: int) -> None:
        """Log and count this request once, with the status its answer started with: one line,
        id, method, path, status, duration (never a header's value), and the request metrics."""
        if not self.observed:
            self.observed = True
            self.app.ctx.answered.add(self, status)


def _background_task(
    app: DockerlinkApp, name: str, make: Callable[[AppContext], Coroutine[Any, Any, None]]
) -> None:
    """Run ``make(ctx)`` as a supervised task (see :mod:`.tasks`) from server start to server
    stop (cancelled, then awaited).

    Managed here rather than with ``app.add_task`` so that it works the same under
    ``app.run``, ``create_server`` and ASGI.
    """

    @app.after_server_start
    async def start(app: DockerlinkApp) -> None:
        ctx = app.ctx
        supervised = supervise(name, lambda: make(ctx), on_failure=ctx.metrics.task_failures.inc)
        app.ctx.tasks[name] = asyncio.create_task(supervised, name=f"dockerlink.{name}")

    @app.before_server_stop
    async def stop(app: DockerlinkApp) -> None:
        task = app.ctx.tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _open_lifecycle(
    settings: Settings, client: DockerClient, mirror: ContainerMirror
) -> LifecycleEvents:
    """The event log (fed by the mirror) and, with ``webhook_url``, the webhook queue."""
    event_log = await asyncio.to_thread(open_event_log, settings.data_dir / "events")
    outbox = None
    if settings.webhook_url is not None and settings.webhook_secret is not None:
        outbox = await asyncio.to_thread(
            open_outbox,
            settings.data_dir / "webhooks",
            settings.webhook_url,
            settings.webhook_secret,
            timeout_s=settings.webhook_timeout,
            first_delay_s=settings.webhook_retry_delay,
        )
    lifecycle = LifecycleEvents(
        client, event_log, mirror=mirror, outbox=outbox, call_timeout_s=settings.docker_timeout
    )
    mirror.listeners.append(lifecycle)
    return lifecycle


def _token_ok(request: Request, token: bytes, bearer: str | None) -> bool:
    """Whether the request carries ``token`` (the setting, stripped and encoded). ``bearer``:
    ``Bearer <token>``, the header as clients send it, when it is ASCII text: compared at once
    (in constant time, as the token is below), it spares parsing the header."""
    header = request.headers.get(_AUTHORIZATION, "")
    if bearer is not None and header.isascii() and hmac.compare_digest(header, bearer):
        return True
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer":
        try:
            given_bytes = given.strip().encode()
        except UnicodeEncodeError:  # the header's bytes were not UTF-8
            return False
        return hmac.compare_digest(given_bytes, token)
    offered = _subprotocol_token(request)
    return offered is not None and hmac.compare_digest(offered, token)


def _subprotocol_token(request: Request) -> bytes | None:
    """A WebSocket upgrade's ``bearer.<token as base64url, no padding>`` subprotocol.

    Browsers cannot set headers on a WebSocket, so they offer the token this way (as
    Kubernetes' API server accepts it). dockerlink never selects this subprotocol, so the
    token is not echoed back.
    """
    if request.headers.get("upgrade", "").lower() != "websocket":
        return None
    for offered in request.headers.get("sec-websocket-protocol", "").split(","):
        name = offered.strip()
        if name.startswith("bearer."):
            encoded = name[len("bearer.") :]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).strip()
            except (ValueError, binascii.Error):
                return None
    return None


#: Request ids made here: 32 hex digits, a random prefix for this process and a counter (as
#: unique as ``uuid4`` within a process and across restarts, for a fraction of its cost).
_ID_PREFIX = uuid.uuid4().hex[:16]
_id_counter = itertools.count()
#: An id's last three hex digits, by the counter's last twelve bits; the text before them is
#: made once for each block of 4,096 ids (formatting the whole counter was most of an id's cost).
_ID_ENDS = tuple(f"{low:03x}" for low in range(4096))
_id_block = [(-1, "")]  # the current block's number and its text


def _request_id(request: Request) -> str:
    """The request's id: made when it was (see :class:`_ObservedRequest`)."""
    if isinstance(request, _ObservedRequest):
        return request.request_id
    existing = getattr(request.ctx, "request_id", None)  # a request of another class
    if isinstance(existing, str):
        return existing
    request_id = _new_request_id(request.headers.get("x-request-id"))
    request.ctx.request_id = request_id
    return request_id


def _new_request_id(given: str | None) -> str:
    """The client's ``X-Request-Id`` when it is sane, else a new id."""
    if given and _SANE_REQUEST_ID.fullmatch(given):
        return given
    number = next(_id_counter)
    block, start = _id_block[0]
    if number >> 12 != block:
        block, start = _id_block[0] = number >> 12, f"{_ID_PREFIX}{number >> 12:013x}"
    return start + _ID_ENDS[number & 0xFFF]


def _preflight() -> HTTPResponse:
    response = Answer(status=204)
    response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def _finish(
    request_id: str, request: Request, response: BaseHTTPResponse, settings: Settings
) -> None:
    """Headers every answer carries, success or error; ``request_id``: the request's."""
    response.headers[_REQUEST_ID] = request_id
    if not settings.cors_origins:
        return
    origin = request.headers.get("origin")
    if origin:
        if "*" in settings.cors_origins:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin.rstrip("/") in settings.cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Expose-Headers"] = f"X-Request-Id, {HOOK_ERROR_HEADER}"


class _ErrorHandler(ErrorHandler):
    """The one place where exceptions become HTTP answers."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        response = self._answer(request, exception)
        _finish(_request_id(request), request, response, self.settings)
        return response

    def _answer(self, request: Request, exception: Exception) -> HTTPResponse:
        if getattr(request, "bad_url", None) is not None:
            return text_response(400, "the request target is not a valid URL")
        if isinstance(exception, HTTPError):
            return text_response(exception.status_code, exception.message, exception.headers)
        if isinstance(exception, DomainError):
            return text_response(*domain_error_answer(exception))
        if isinstance(exception, docker_api.DockerError):
            status, message = engine_error_answer(exception)
            log.warning(
                "[%s] %s %s: engine error %s: %s%s",
                _request_id(request),
                method_label(request.method),
                request.path,
                type(exception).__name__,
                exception.message,
                cause_note(exception),
            )
            return text_response(status, message)
        if isinstance(exception, SanicException):
            headers = {str(k): str(v) for k, v in (exception.headers or {}).items()}
            return text_response(exception.status_code, _sanic_message(exception), headers)
        log.exception(
            "[%s] %s %s: unexpected error",
            _request_id(request),
            method_label(request.method),
            request.path,
        )
        return text_response(500, "internal error")


def _sanic_message(exception: SanicException) -> str:
    text = str(exception.args[0]) if exception.args else ""
    if exception.status_code == 404:
        return "not found"
    if exception.status_code == 405:
        return "method not allowed"
    if exception.status_code == 413:
        return f"request body is larger than {REQUEST_MAX_SIZE} bytes"
    return text.lower() if text else "bad request"
