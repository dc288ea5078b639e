"""Requests a browser makes for another site, refused when no token is set.

Without ``api_token`` dockerlink trusts whoever can reach its port, which is meant to be the
panel's server (and the operator's ``curl``) on the same host. A browser on that host, or behind
an SSH tunnel to it, can reach the port too, on behalf of any web page it opens: a page can send
``POST /v1/container/stop`` (a "simple" request, no preflight), and through DNS rebinding (a name
of the page's site that resolves to 127.0.0.1) read and drive the whole API. Browsers say who
they act for, and server-side callers send none of it:

- ``Host``: a rebound name is the page's own site, not ``localhost`` or a loopback address;
- ``Origin``: the page's origin, sent on every cross-origin request and on same-origin writes;
- ``Sec-Fetch-Site``: ``cross-site`` or ``same-site`` when the page is another site's.

:func:`browser_refusal` says why a request is refused, or ``None``. With a token set the token
decides and this rule does not apply.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .settings import Settings

__all__ = ["browser_refusal", "host_name"]

_FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})
_REMEDY = "list the host in allowed_hosts or the page's origin in cors_origins, or set api_token"
#: The most of a header's value shown in a refusal.
_SHOWN = 80


def browser_refusal(
    host: str, origin: str | None, fetch_site: str | None, settings: Settings
) -> str | None:
    """Why a request with these headers is refused when no token is set, or ``None``."""
    name = host_name(host)
    if host and not (_is_loopback_name(name) or name in settings.allowed_hosts):
        return (
            f"refused without a token: Host {_shown(host)} is neither a loopback address nor "
            f"in allowed_hosts (a browser acting for another site, DNS rebinding); {_REMEDY}"
        )
    # "*" is not a listing here: without a token it would let every web page drive the API
    # (a terminal included) through a browser that can reach it.
    listed = origin is not None and origin.rstrip("/") in settings.cors_origins
    if origin is not None and not listed and not _same_origin(origin, host):
        return (
            f"refused without a token: Origin {_shown(origin)} is neither this service's "
            f"origin nor in cors_origins (a browser acting for another site); {_remedy(settings)}"
        )
    if fetch_site is not None and fetch_site.strip().lower() in _FOREIGN_FETCH_SITES and not listed:
        return (
            f"refused without a token: a browser sent this request for another site "
            f"(Sec-Fetch-Site: {_shown(fetch_site)}); {_remedy(settings)}"
        )
    return None


def _remedy(settings: Settings) -> str:
    if "*" in settings.cors_origins:
        return f"{_REMEDY} (cors_origins=* lists no origin without a token)"
    return _REMEDY


def host_name(host: str) -> str:
    """The name or address in a ``Host`` value, lower case, without port or IPv6 brackets."""
    value = host.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, colon, port = value.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        value = name
    return value.removesuffix(".")


def _is_loopback_name(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` names the host (and port) the request was sent to."""
    try:
        netloc = urlsplit(origin.strip()).netloc
    except ValueError:
        return False
    return bool(host) and netloc.lower() == host.strip().lower()


def _shown(value: str) -> str:
    """A header's value quoted for a one-line answer: escaped, at most ``_SHOWN`` characters."""
    text = value if len(value) <= _SHOWN else value[:_SHOWN] + "..."
    return ascii(text)
