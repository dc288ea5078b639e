"""The listening sockets for the ``host`` list, bound before the server starts.

``host`` is a comma-separated list (default ``127.0.0.1,::1``: ``localhost`` resolves to ``::1``
first for many clients). Each address gets its own socket; an IPv6 socket is IPv6-only when the
list also holds IPv4 addresses, so ``0.0.0.0,::`` binds both. On a host without IPv6, ``::1``
cannot be bound: that is logged and the other addresses are served. Any other address that
cannot be bound stops start-up with :class:`ListenError`.

An entry ``unix:/path`` is a unix socket at that path (for a proxy on the same machine: nginx's
``proxy_pass http://unix:/path:/``), made with mode 0660: the file's owner and group may connect,
no one else. A socket file left by a process that ended is replaced; one that a live process
listens on, or a file that is not a socket, stops start-up. While it listens, the process holds
``<path>.lock`` (flock), so that two starting at once cannot both take the path. Paths cannot
hold commas (they separate the entries). :func:`close_listeners` removes the socket files again
(the lock files stay: removing one could let two processes hold different locks on the path).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import ipaddress
import logging
import os
import pwd
import socket
import stat
import weakref
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

from sanic import Sanic
from sanic.server.runners import _build_protocol_kwargs

from .settings import unix_path

__all__ = ["ListenError", "bind_listeners", "close_listeners", "serve_also", "url_of"]

log = logging.getLogger("dockerlink")

BACKLOG = 1024
#: What binding an IPv6 address fails with when the host has no IPv6 (or no ``::1``).
_NO_IPV6 = frozenset({errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})
#: A unix socket's file mode: its owner and group may connect.
UNIX_SOCKET_MODE = 0o660
#: The socket files made here, by their listening socket.
_socket_files: weakref.WeakKeyDictionary[socket.socket, _SocketFile] = weakref.WeakKeyDictionary()


class ListenError(OSError):
    """An address of ``host`` cannot be listened on; the message names it."""


def bind_listeners(hosts: Sequence[str], port: int) -> list[socket.socket]:
    """One listening socket per address of ``hosts`` (names resolved), all on ``port``."""
    has_ipv4 = any(
        family == socket.AF_INET
        for host in hosts
        if unix_path(host) is None
        for family, _ in _addresses(host, port)
    )
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for host in hosts:
            path = unix_path(host)
            if path is not None:
                if (socket.AF_UNIX, path) not in seen:
                    seen.add((socket.AF_UNIX, path))
                    sockets.append(_bind_unix(path))
                continue
            for family, address in _addresses(host, port):
                if (family, address[0]) in seen:
                    continue
                seen.add((family, address[0]))
                try:
                    sockets.append(_bind(family, address, v6only=has_ipv4))
                except OSError as exc:
                    if _ipv6_loopback(family, address[0]) and exc.errno in _NO_IPV6:
                        log.warning(
                            "not listening on %s: this host has no IPv6 loopback (%s)",
                            url_of(address),
                            exc.strerror or exc,
                        )
                        continue
                    raise ListenError(
                        exc.errno, f"cannot listen on {url_of(address)}: {exc.strerror or exc}"
                    ) from None
        if not sockets:
            raise ListenError(errno.EADDRNOTAVAIL, f"no address of {','.join(hosts)} can be bound")
    except BaseException:
        close_listeners(sockets)
        raise
    return sockets


def close_listeners(sockets: Sequence[socket.socket]) -> None:
    """Close ``sockets`` (again: closing twice is harmless), and remove the unix socket files
    :func:`bind_listeners` made, each while it is still the file made (not a later one); then
    let go of the socket's lock."""
    for sock in sockets:
        made = _socket_files.pop(sock, None)
        sock.close()
        if made is None:
            continue
        try:
            found = os.lstat(made.path)
            if (found.st_dev, found.st_ino) == (made.device, made.inode):
                os.unlink(made.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove the socket file %s: %s", made.path, exc.strerror or exc)
        finally:
            os.close(made.lock_fd)  # releases the flock


def _bind_unix(path: str) -> socket.socket:
    """A listening unix socket at ``path``, mode 0660, replacing a stale socket file.

    The process holds ``<path>.lock`` (flock) for as long as it listens: two processes starting
    at once (a restart and a ``dockerlink check``) cannot both take the path for theirs, nor
    remove the other's socket as a stale one."""
    lock_fd = _lock_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _clear_stale_socket(path)
        # The mode is the umask's at bind() (a chmod after it would leave a moment open).
        umask = os.umask(0o777 & ~UNIX_SOCKET_MODE)
        try:
            sock.bind(path)
        finally:
            os.umask(umask)
        found = os.lstat(path)
        _socket_files[sock] = _SocketFile(path, found.st_dev, found.st_ino, lock_fd)
        sock.listen(BACKLOG)
        sock.set_inheritable(True)
    except BaseException as exc:
        if sock in _socket_files:
            close_listeners([sock])
        else:
            sock.close()
            os.close(lock_fd)
        if isinstance(exc, OSError) and not isinstance(exc, ListenError):
            reason = exc.strerror or exc
            raise ListenError(exc.errno, f"cannot listen on unix:{path}: {reason}") from None
        raise
    return sock


def _lock_socket_path(path: str) -> int:
    """An open descriptor holding ``<path>.lock``; ListenError when another process holds it."""
    lock_path = path + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        reason = f"{lock_path}: {exc.strerror}"
        raise ListenError(exc.errno, f"cannot listen on unix:{path}: {reason}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ListenError(
            errno.EADDRINUSE, f"cannot listen on unix:{path}: another dockerlink listens there"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise ListenError(exc.errno, f"cannot listen on unix:{path}: {exc.strerror}") from None
    return fd


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file at ``path`` that no process listens on any more; refuse a live one,
    and any other kind of file."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(found.st_mode):
        raise ListenError(
            errno.EEXIST, f"cannot listen on unix:{path}: a file that is not a socket is there"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(path)
    except ConnectionRefusedError:
        pass  # no one listens: the file of a process that ended
    except (BlockingIOError, TimeoutError):  # a listener whose queue is full: in use
        raise _in_use(path) from None
    except PermissionError:
        raise ListenError(
            errno.EACCES,
            f"cannot listen on unix:{path}: the socket file there is {_owner(found.st_uid)}'s and "
            "this user may not connect to it; if no process listens on it, remove it",
        ) from None
    else:
        raise _in_use(path)
    finally:
        probe.close()
    os.unlink(path)


def _in_use(path: str) -> ListenError:
    return ListenError(
        errno.EADDRINUSE, f"cannot listen on unix:{path}: another process listens there"
    )


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


class _SocketFile(NamedTuple):
    """A socket file made here, and the lock held on its path."""

    path: str
    device: int
    inode: int
    lock_fd: int


def url_of(address: tuple[object, ...] | str) -> str:
    """``http://127.0.0.1:7200`` or ``http://[::1]:7200`` for a socket address, ``unix:/path``
    for a unix socket's."""
    if isinstance(address, str):
        return f"unix:{address}"
    host, port = str(address[0]), address[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _addresses(host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except socket.gaierror as exc:
        raise ListenError(errno.EADDRNOTAVAIL, f"cannot listen on {host}: {exc.strerror}") from None
    addresses: list[tuple[int, tuple[object, ...]]] = []
    for family, _, _, _, address in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and (family, address) not in addresses:
            addresses.append((family, address))
    return addresses


def _bind(family: int, address: tuple[object, ...], *, v6only: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def _ipv6_loopback(family: int, host: object) -> bool:
    if family != socket.AF_INET6:
        return False
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def serve_also(app: Sanic[Any, Any], sockets: Sequence[socket.socket]) -> None:
    """Serve ``sockets`` beside the one socket Sanic serves, with its protocol and signal.

    Sanic can serve several sockets only as several prepared servers of one app, and then runs
    the app's stop listeners once per server, the second time while the loop is stopping: a
    listener that awaits anything leaves the process spinning in Sanic's shutdown for ever.
    Here the extra sockets are plain listeners of the one server: opened after it starts,
    closed before it stops, their open connections given the same time to finish and then
    closed, like Sanic closes its own.
    """
    if not sockets:
        return
    servers: list[asyncio.AbstractServer] = []
    connections: set[Any] = set()

    @app.after_server_start
    async def open_extra(app: Sanic[Any, Any]) -> None:
        settings = app.state.server_info[0].settings
        protocol = settings["protocol"]
        loop = asyncio.get_running_loop()
        factory = partial(
            protocol,
            loop=loop,
            connections=connections,
            signal=settings["signal"],
            app=app,
            state=None,
            unix=None,
            **_build_protocol_kwargs(protocol, app.config),
        )
        for sock in sockets:
            servers.append(await loop.create_server(factory, sock=sock, backlog=BACKLOG))

    @app.before_server_stop
    async def close_extra(app: Sanic[Any, Any]) -> None:
        for server in servers:
            server.close()
        for connection in list(connections):
            connection.close_if_idle()

    @app.after_server_stop
    async def abort_extra(app: Sanic[Any, Any]) -> None:
        # Sanic gave its own connections GRACEFUL_SHUTDOWN_TIMEOUT to finish; these get it too.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(app.config.GRACEFUL_SHUTDOWN_TIMEOUT)
        # (Sanic's protocol drops a closed connection from the set and signals nothing: Sanic
        # polls its own the same way.)
        while connections and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        for connection in list(connections):
            if getattr(connection, "websocket", None) is not None:
                connection.websocket.fail_connection(code=1001)
            else:
                connection.abort()
        servers.clear()
