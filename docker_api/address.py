"""Engine addresses, as ``docker -H`` takes them: ``tcp://host[:port]`` or a unix socket path."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["is_tcp", "split_tcp", "unix_socket_path"]

TCP_PREFIX = "tcp://"
UNIX_PREFIX = "unix://"


def is_tcp(address: str) -> bool:
    return address.startswith(TCP_PREFIX)


def split_tcp(address: str) -> tuple[str, int | None]:
    """``tcp://host[:port]`` -> ``(host, port or None)``, IPv6 hosts in brackets.

    ValueError (naming ``tcp://host[:port]``) for anything else: a path, a query, a user.
    """
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid port in {address!r}") from None
    if (
        parts.scheme != "tcp"
        or not parts.hostname
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise ValueError(f"{address!r} is not tcp://host[:port]")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host, port


def unix_socket_path(address: str) -> str:
    """The socket path of a unix address (``unix://`` prefix accepted)."""
    return address.removeprefix(UNIX_PREFIX)
