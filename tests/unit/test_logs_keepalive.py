"""A followed log's connection gets TCP keepalive, so a client that vanished is noticed."""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

from dockerlink.routes.logs import _probe_the_peer


def test_a_followed_logs_tcp_connection_is_probed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        request: Any = SimpleNamespace(
            transport=SimpleNamespace(
                get_extra_info=lambda name: sock if name == "socket" else None
            )
        )
        _probe_the_peer(request)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 6
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        unix_request: Any = SimpleNamespace(
            transport=SimpleNamespace(get_extra_info=lambda name: unix)
        )
        _probe_the_peer(unix_request)  # a unix socket has no such options: left alone
        assert unix.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
