"""DockerClient: the connection to one engine, version negotiation and the one request pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypedDict, TypeVar, Unpack

import httpx
import orjson

from ._util import as_dict, exception_chain
from .address import is_tcp, split_tcp, unix_socket_path
from .containers import Containers
from .errors import (
    BadParameter,
    DockerError,
    EngineTimeout,
    EngineUnreachable,
    NotModified,
    UnsupportedEngineVersion,
    error_for_status,
)
from .events import Events
from .execs import Execs
from .hijack import HijackedStream, open_hijacked
from .images import Images
from .tls import TLSConfig

__all__ = ["MAX_API_VERSION", "MIN_API_VERSION", "DockerClient", "TLSConfig", "parse_version"]

#: Oldest API this client speaks: one-shot stats and ``CgroupVersion`` in /info need 1.41.
MIN_API_VERSION = "1.41"
#: Newest API this client speaks. Every field it sends or reads has the same meaning up to here;
#: 1.52 removes top-level network fields and event aliases that are not used, but is not tested.
MAX_API_VERSION = "1.49"

Params = Mapping[str, str | int | float | bool | None]
_T = TypeVar("_T")
#: The engine's 400 for a version it does not accept (its version middleware's message).
_VERSION_REFUSED = re.compile(r"client version \S+ is too (old|new)")


class CallOptions(TypedDict, total=False):
    """The options of one call: query ``params``, a ``json`` body, its own ``timeout``, and
    ``not_modified_ok`` (a 304 returns :class:`NotModified` rather than raising it)."""

    params: Params | None
    json: Any
    timeout: float | None
    not_modified_ok: bool


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.41"`` -> ``(1, 41)``; raises ValueError on anything else."""
    parts = tuple(int(p) for p in text.strip().split("."))
    if not parts:
        raise ValueError(text)
    return parts


class DockerClient:
    """An async client for one Docker engine over its unix socket, TCP, or any httpx transport.

    Usage::

        async with DockerClient("/var/run/docker.sock", timeout=30) as docker:
            info = await docker.containers.inspect("web1")

        tls = TLSConfig.from_cert_path("/etc/docker-client")
        async with DockerClient("tcp://10.0.0.5:2376", tls=tls) as docker:
            ...

    ``address`` is a unix socket path (``unix://`` prefix accepted) or ``tcp://host[:port]``.
    Over TCP, ``tls`` gives the client certificates (HTTPS, port 2376 by default); without it
    the connection is plain, unauthenticated HTTP (port 2375 by default), as ``docker -H``.

    The API version is negotiated on first use: ``/_ping`` gives the engine's newest version,
    the client uses ``min(engine, MAX_API_VERSION)`` and fails with
    :class:`UnsupportedEngineVersion` when that is below ``MIN_API_VERSION`` or below the engine's
    own minimum. ``timeout`` (seconds) bounds every call that does not pass its own;
    ``max_connections`` bounds the connections open at once (callers beyond it wait).
    """

    def __init__(
        self,
        address: str = "/var/run/docker.sock",
        *,
        timeout: float = 30.0,
        api_version: str | None = None,
        tls: TLSConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        base_url: str | None = None,
        max_connections: int = 64,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        tcp = is_tcp(address)
        #: Where a hijacked stream connects: (host, port) over TCP, else the unix socket's path.
        self._tcp: tuple[str, int] | None = None
        if tcp:
            host, port = split_tcp(address)
            self._tcp = (host.strip("[]"), port or (2376 if tls else 2375))
            netloc = f"{host}:{self._tcp[1]}"
            self.address = f"tcp://{netloc}"
            default_base_url = f"{'https' if tls else 'http'}://{netloc}"
        else:
            if tls is not None:
                raise ValueError("tls applies to tcp:// addresses only")
            self.address = unix_socket_path(address)
            default_base_url = "http://docker"
        self._custom_transport = transport is not None
        #: Made once (it reads the certificate files): for the pool and every hijacked stream.
        self._ssl_context = tls.ssl_context() if tls is not None else None
        if transport is None:
            if tcp:
                transport = httpx.AsyncHTTPTransport(verify=self._ssl_context or True)
            else:
                transport = httpx.AsyncHTTPTransport(uds=self.address)
        self._tls = tls is not None
        self.timeout = timeout
        #: Connections open to the engine at most; further calls wait for one to be free.
        self.max_connections = max_connections
        self._pinned_version = api_version
        self._api_version: str | None = api_version
        self._engine_version: dict[str, Any] | None = None
        self._negotiate_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            transport=transport,
            base_url=base_url or default_base_url,
            timeout=httpx.Timeout(timeout),
            # Keep idle connections for a burst of concurrent calls (sampler, listing).
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max(1, max_connections // 2),
            ),
        )
        self.containers = Containers(self)
        self.execs = Execs(self)
        self.images = Images(self)
        self.events = Events(self)

    async def __aenter__(self) -> DockerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # -- version negotiation ------------------------------------------------------------------

    @property
    def api_version(self) -> str | None:
        """The negotiated API version, or None before the first successful call."""
        return self._api_version

    async def negotiate(self, *, timeout: float | None = None) -> str:
        """Negotiate (once) and return the API version used for every call. ``timeout`` (the
        client's by default) bounds it all, the wait for another caller's negotiation too: a
        call's own timeout covers the negotiation it needs first."""
        if self._api_version is not None:
            return self._api_version
        limit = self.timeout if timeout is None else min(timeout, self.timeout)
        try:
            async with asyncio.timeout(limit), self._negotiate_lock:
                if self._api_version is None:
                    self._api_version = await self._negotiate()
        except TimeoutError as exc:
            raise EngineTimeout(f"no answer from the engine within {limit:g} s") from exc
        return self._api_version

    async def _negotiate(self) -> str:
        response = await self._send("GET", "/_ping", timeout=self.timeout)
        if response.status_code >= 400:  # a proxy's 502, an engine that is starting: say so
            raise error_for_status(
                response.status_code,
                response.content,
                response.headers.get("content-type", ""),
                response.reason_phrase,
            )
        # An engine that sends no header predates 1.25; it is below our range either way.
        engine_max = response.headers.get("api-version", "1.24")
        try:
            chosen = min(parse_version(engine_max), parse_version(MAX_API_VERSION))
        except ValueError as exc:
            raise UnsupportedEngineVersion(f"malformed engine API version {engine_max!r}") from exc
        if chosen < parse_version(MIN_API_VERSION):
            raise UnsupportedEngineVersion(
                f"engine API {engine_max} is older than {MIN_API_VERSION}, the oldest supported"
            )
        version_text = ".".join(str(p) for p in chosen)
        version = await self._version_at(version_text)
        engine_min = str(version.get("MinAPIVersion") or "0")
        if parse_version(engine_min) > chosen:
            raise UnsupportedEngineVersion(
                f"engine {version.get('Version', '?')} accepts API {engine_min} and newer, "
                f"but this client speaks {MIN_API_VERSION} to {MAX_API_VERSION}"
            )
        self._engine_version = version
        return version_text

    async def _version_at(self, version_text: str) -> dict[str, Any]:
        try:
            return as_dict(await self._checked("GET", f"/v{version_text}/version"))
        except BadParameter as exc:  # "client version X is too old/new"
            raise UnsupportedEngineVersion(exc.message) from exc

    # -- system --------------------------------------------------------------------------------

    async def ping(self, *, timeout: float | None = None) -> str:
        """``GET /_ping``: returns the engine's newest API version (header ``Api-Version``)."""
        response = await self._checked("GET", "/_ping", timeout=timeout, decode=False)
        return str(response.headers.get("api-version", ""))

    async def version(self, *, timeout: float | None = None) -> dict[str, Any]:
        """``GET /version``: engine version, API range, components."""
        version = as_dict(await self.get_json("/version", timeout=timeout))
        self._engine_version = version
        return version

    async def info(self, *, timeout: float | None = None) -> dict[str, Any]:
        """``GET /info``: host-wide facts (``NCPU``, ``MemTotal``, ``CgroupVersion``...)."""
        return as_dict(await self.get_json("/info", timeout=timeout))

    # -- the request pipeline ------------------------------------------------------------------

    async def get_json(
        self, path: str, *, params: Params | None = None, timeout: float | None = None
    ) -> Any:
        return await self.request("GET", path, params=params, timeout=timeout)

    async def request(self, method: str, path: str, **options: Unpack[CallOptions]) -> Any:
        """Send one versioned call and return its decoded JSON body (None when there is none).

        Error statuses raise the matching :mod:`docker_api.errors` class. A 304 raises
        :class:`NotModified` unless ``not_modified_ok``, in which case it returns ``NotModified``
        (the class itself) so callers can tell "already in that state" from a change.
        """
        return await self._versioned(
            lambda version: self._checked(method, f"/v{version}{path}", **options),
            options.get("timeout"),
        )

    async def _versioned(self, call: Callable[[str], Awaitable[_T]], timeout: float | None) -> _T:
        """``call`` with the negotiated version; once more with a new one when the engine
        refuses it. (An engine replaced by another version between two calls breaks no
        connection when the pool had none open: its 400 is the first sign. It refuses the
        version before acting, so the call is safe to repeat.)"""
        version = await self.negotiate(timeout=timeout)
        try:
            return await call(version)
        except BadParameter as exc:
            if self._pinned_version is not None or not _VERSION_REFUSED.match(exc.message):
                raise
        if self._api_version == version:  # (not already renegotiated by another call)
            self._forget_version()
        return await call(await self.negotiate(timeout=timeout))

    async def _checked(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        json: Any = None,
        timeout: float | None = None,
        not_modified_ok: bool = False,
        decode: bool = True,
    ) -> Any:
        response = await self._send(method, url, params=params, json=json, timeout=timeout)
        if response.status_code == 304 and not_modified_ok:
            return NotModified
        if response.status_code >= 300:
            raise error_for_status(
                response.status_code,
                response.content,
                response.headers.get("content-type", ""),
                response.reason_phrase,
            )
        if not decode:
            return response
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise DockerError(f"engine sent invalid JSON for {method} {url}: {exc}") from exc

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request and read the whole answer within ``timeout`` seconds, all told."""
        limit = self.timeout if timeout is None else timeout
        request = self._build(method, url, params, json, httpx.Timeout(limit))
        return await self._dispatch(request, limit, stream=False)

    def _build(
        self, method: str, url: str, params: Params | None, json: Any, timeout: httpx.Timeout
    ) -> httpx.Request:
        content = None if json is None else orjson.dumps(json)
        headers = {"Content-Type": "application/json"} if content is not None else None
        return self._http.build_request(
            method, url, params=_query(params), content=content, headers=headers, timeout=timeout
        )

    async def _dispatch(
        self, request: httpx.Request, limit: float, *, stream: bool
    ) -> httpx.Response:
        """The one place a request goes out; transport failures become our errors here."""
        try:
            async with asyncio.timeout(limit):
                return await self._http.send(request, stream=stream)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise EngineTimeout(f"no answer from the engine within {limit:g} s") from exc
        except _TRANSPORT_ERRORS as exc:
            self._forget_version()
            raise self._unreachable(exc) from exc

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Open a streamed call (events, stats, exec); yields the response once headers arrive.

        ``connect_timeout`` bounds the time to the headers; ``read_timeout`` bounds each read of
        the body (None: reads may wait forever, for event streams). Errors map as in
        :meth:`request`; transport errors while reading the body are mapped by the caller's
        iteration through :meth:`iter_raw`.
        """
        limit = self.timeout if connect_timeout is None else connect_timeout

        async def open_at(version: str) -> httpx.Response:
            request = self._build(
                method, f"/v{version}{path}", params, json, httpx.Timeout(limit, read=read_timeout)
            )
            response = await self._dispatch(request, limit, stream=True)
            if response.status_code >= 300:
                try:
                    body = await self._read_error_body(response, limit)
                finally:
                    await response.aclose()
                raise error_for_status(
                    response.status_code,
                    body,
                    response.headers.get("content-type", ""),
                    response.reason_phrase,
                )
            return response

        response = await self._versioned(open_at, connect_timeout)
        try:
            yield response
        finally:
            await response.aclose()

    async def _read_error_body(self, response: httpx.Response, limit: float) -> bytes:
        try:
            async with asyncio.timeout(limit):
                return await response.aread()
        except (TimeoutError, httpx.HTTPError, ssl.SSLError):
            return b""

    async def iter_raw(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """The body of a streamed response, with transport errors mapped to ours."""
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.TimeoutException as exc:
            raise EngineTimeout("the engine stopped sending within the read timeout") from exc
        except _TRANSPORT_ERRORS as exc:
            self._forget_version()  # as for any call: the engine may come back as another
            raise self._unreachable(exc) from exc

    async def hijack(self, path: str, *, json: Any, timeout: float | None = None) -> HijackedStream:
        """``POST path`` upgraded to a raw two-way stream (exec start, attach); see
        :mod:`docker_api.hijack`. ``timeout`` bounds the answer, not the stream's life."""
        if self._custom_transport:
            raise DockerError("a hijacked stream needs the engine's own socket, not a transport")
        host, port = self._tcp or (None, None)
        return await self._versioned(
            lambda version: open_hijacked(
                unix_path=None if self._tcp else self.address,
                host=host,
                port=port,
                tls=self._ssl_context,
                address=self.address,
                path=f"/v{version}{path}",
                body=json,
                timeout=self.timeout if timeout is None else timeout,
            ),
            timeout,
        )

    def _unreachable(self, exc: Exception) -> EngineUnreachable:
        return EngineUnreachable(_describe_transport_error(exc, self.address, tls=self._tls))

    def _forget_version(self) -> None:
        """The engine went away: it may come back as another version, so negotiate again."""
        if self._pinned_version is None:
            self._api_version = None


def _query(params: Params | None) -> dict[str, str] | None:
    """Query values as the engine reads them: booleans as true/false, None dropped."""
    if not params:
        return None
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


#: What a broken connection raises. httpx wraps most failures, but not an ssl.SSLError raised by
#: a read: a TLS 1.3 engine that refuses our client certificate says so (an alert) only after
#: the handshake, so it surfaces on the first read, raw (seen in test_remote_engine).
_TRANSPORT_ERRORS = (httpx.TransportError, ssl.SSLError)
#: TLS alerts the engine sends when it refuses the certificate we presented.
_REFUSED_CLIENT_CERT = ("ALERT_BAD_CERTIFICATE", "ALERT_UNKNOWN_CA", "CERTIFICATE_REQUIRED")


def _describe_transport_error(exc: Exception, address: str, *, tls: bool) -> str:
    tls_error = _ssl_cause(exc)
    if tls_error is not None:
        return f"TLS with {address} failed: {_describe_tls_error(tls_error)}"
    detail = _first_message(exc)
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {address}: {detail}"
    if tls:
        # An engine that refuses our certificate may just reset the connection, no alert sent.
        detail += " (over TLS: the engine may have refused our client certificate)"
    return f"connection to {address} failed: {detail}"


def _first_message(exc: BaseException) -> str:
    """The first non-empty message down the chain of causes (httpx's own are often empty)."""
    return next((str(e) for e in exception_chain(exc) if str(e)), type(exc).__name__)


def _describe_tls_error(error: ssl.SSLError) -> str:
    verify_message = getattr(error, "verify_message", None)
    if verify_message:
        return f"the engine's certificate did not verify: {verify_message}"
    # "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)" -> the words
    text = re.sub(r"^\[[^]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(error)) or str(error.reason)
    if any(alert in str(error.reason) for alert in _REFUSED_CLIENT_CERT):
        return f"the engine refused our client certificate ({text})"
    return text


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ssl error somewhere in the chain of causes, if a TLS failure is behind ``exc``."""
    return next((e for e in exception_chain(exc) if isinstance(e, ssl.SSLError)), None)
