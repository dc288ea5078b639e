"""``host`` as a list: the setting, the rule on public addresses, and binding every address."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import dockerlink.listen
from dockerlink.listen import ListenError, bind_listeners, close_listeners, url_of
from dockerlink.settings import SettingsError, load_settings

from ..conftest import free_port

TOKEN = "unit-test-token-0123456789"


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback(), reason="this machine has no IPv6 loopback: ::1 cannot be bound"
)


@pytest.fixture
def bound() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def test_host_defaults_to_both_loopback_addresses() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.host == "127.0.0.1,::1"
    assert settings.hosts == ("127.0.0.1", "::1")


def test_host_lists_are_normalised() -> None:
    settings = load_settings({"host": " 127.0.0.1 , [::1],localhost"}, env_file=None)
    assert settings.host == "127.0.0.1,::1,localhost"
    assert settings.hosts == ("127.0.0.1", "::1", "localhost")


@pytest.mark.parametrize("raw", ["", " , ", "127.0.0.1,,::1", "127.0.0.1 ::1", "http://x"])
def test_a_malformed_host_list_names_the_setting(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"host": raw}, env_file=None)
    assert caught.value.name == "host"


@pytest.mark.parametrize(
    "raw", ["127.0.0.1,0.0.0.0", "::1,::", "[::1],10.1.2.3", "::1,example.com"]
)
def test_every_address_in_the_list_needs_a_token_unless_loopback(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"host": raw}, env_file=None)
    assert caught.value.name == "api_token"
    assert f"refusing to listen on {raw.split(',')[1].strip('[]')} without a token" in str(
        caught.value
    )
    assert load_settings({"host": raw, "api_token": TOKEN}, env_file=None).hosts
    assert load_settings({"host": raw, "allow_unauthenticated": "true"}, env_file=None).hosts


def connects(family: int, address: tuple[str, int]) -> bool:
    with socket.socket(family) as client:
        client.settimeout(5)
        return client.connect_ex(address) == 0


@needs_ipv6
def test_both_loopback_addresses_are_bound_on_one_port(bound: list[socket.socket]) -> None:
    port = free_port()
    bound += bind_listeners(("127.0.0.1", "::1"), port)
    assert [sock.getsockname()[:2] for sock in bound] == [("127.0.0.1", port), ("::1", port)]
    assert connects(socket.AF_INET, ("127.0.0.1", port))
    assert connects(socket.AF_INET6, ("::1", port))


def test_without_ipv6_the_other_addresses_are_served(
    bound: list[socket.socket], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What a host without IPv6 answers when ::1 is bound (simulated: this one may have it)."""
    real_bind = dockerlink.listen._bind

    def no_ipv6(family: int, address: tuple[object, ...], *, v6only: bool) -> socket.socket:
        if family == socket.AF_INET6:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        return real_bind(family, address, v6only=v6only)

    monkeypatch.setattr(dockerlink.listen, "_bind", no_ipv6)
    port = free_port()
    with caplog.at_level(logging.WARNING, logger="dockerlink"):
        bound += bind_listeners(("127.0.0.1", "::1"), port)
    assert [sock.getsockname()[:2] for sock in bound] == [("127.0.0.1", port)]
    assert f"not listening on http://[::1]:{port}: this host has no IPv6 loopback" in caplog.text
    with pytest.raises(ListenError, match=r"no address of ::1 can be bound"):
        bind_listeners(("::1",), free_port())


def test_an_address_that_cannot_be_bound_stops_start_up(bound: list[socket.socket]) -> None:
    port = free_port()
    # 192.0.2.1 (TEST-NET-1) is no address of this host.
    with pytest.raises(ListenError, match=rf"cannot listen on http://192\.0\.2\.1:{port}: "):
        bind_listeners(("127.0.0.1", "192.0.2.1"), port)
    bound += bind_listeners(("127.0.0.1",), port)  # the first socket was closed again
    with pytest.raises(ListenError, match=rf"cannot listen on http://127\.0\.0\.1:{port}: "):
        bind_listeners(("127.0.0.1",), port)  # in use


# -- unix sockets ---------------------------------------------------------------------------------


def test_a_unix_socket_entry_is_kept_with_one_slash() -> None:
    settings = load_settings(
        {"host": "unix:///run/dockerlink/api.sock, 127.0.0.1,unix:/tmp/./c/../b.sock"},
        env_file=None,
    )
    assert settings.hosts == ("unix:/run/dockerlink/api.sock", "127.0.0.1", "unix:/tmp/b.sock")


def test_a_unix_socket_alone_needs_no_token_and_holds_no_port() -> None:
    # Only this machine can connect, and only the file's owner and group (mode 0660).
    alone = load_settings({"host": "unix:/run/dockerlink.sock"}, env_file=None)
    assert alone.api_token is None
    assert alone.listen_port is None  # a container's port block may then hold `port`
    beside = load_settings({"host": "unix:/run/dockerlink.sock,127.0.0.1"}, env_file=None)
    assert beside.listen_port == beside.port == 7200


@pytest.mark.parametrize(
    "raw",
    ["unix:", "unix:/", "unix:run/x.sock", "unix://run/x.sock", "unix:/a b.sock", "unix:/dir/"],
)
def test_a_unix_socket_entry_needs_an_absolute_path(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"host": raw}, env_file=None)
    assert caught.value.name == "host"
    assert "absolute path" in str(caught.value)


def test_a_unix_socket_path_fits_the_address() -> None:
    fits = "/" + "a" * 106
    assert load_settings({"host": f"unix:{fits}"}, env_file=None).hosts == (f"unix:{fits}",)
    with pytest.raises(SettingsError, match="at most 107 bytes"):
        load_settings({"host": f"unix:{fits}b"}, env_file=None)


def test_a_unix_socket_is_made_for_owner_and_group_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    sockets = bind_listeners([f"unix:{path}", "127.0.0.1"], free_port())
    try:
        assert [s.family for s in sockets] == [socket.AF_UNIX, socket.AF_INET]
        assert stat.S_ISSOCK(path.lstat().st_mode)
        assert stat.S_IMODE(path.lstat().st_mode) == 0o660
        assert url_of(sockets[0].getsockname()) == f"unix:{path}"
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
    finally:
        close_listeners(sockets)
    assert not path.exists()


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    with socket.socket(socket.AF_UNIX) as ended:
        ended.bind(str(path))  # a process that ended without removing its file
    sockets = bind_listeners([f"unix:{path}"], 0)
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
    finally:
        close_listeners(sockets)


def test_a_socket_in_use_or_another_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    first = bind_listeners([f"unix:{path}"], 0)
    try:  # another dockerlink (or a check) while one listens: its lock says so
        with pytest.raises(ListenError) as caught:
            bind_listeners([f"unix:{path}"], 0)
        assert caught.value.errno == errno.EADDRINUSE
        assert caught.value.strerror == (
            f"cannot listen on unix:{path}: another dockerlink listens there"
        )
    finally:
        close_listeners(first)
    assert not path.exists()
    with socket.socket(socket.AF_UNIX) as other:  # another program, without the lock
        other.bind(str(path))
        other.listen()
        with pytest.raises(ListenError) as caught:
            bind_listeners([f"unix:{path}"], 0)
        assert caught.value.errno == errno.EADDRINUSE
        assert caught.value.strerror == (
            f"cannot listen on unix:{path}: another process listens there"
        )
    path.unlink()
    notes = tmp_path / "notes.txt"
    notes.write_text("kept")
    with pytest.raises(ListenError, match="a file that is not a socket is there"):
        bind_listeners([f"unix:{notes}"], 0)
    assert notes.read_text() == "kept"


def test_a_listener_too_busy_to_accept_is_in_use(tmp_path: Path) -> None:
    """A full accept queue makes a connect fail at once (EAGAIN): that is a live listener."""
    path = tmp_path / "busy.sock"
    with socket.socket(socket.AF_UNIX) as busy:
        busy.bind(str(path))
        busy.listen(0)
        waiting = []
        try:
            for _ in range(3):  # fill the queue
                client = socket.socket(socket.AF_UNIX)
                client.setblocking(False)
                waiting.append(client)
                try:
                    client.connect(str(path))
                except BlockingIOError:
                    break
            with pytest.raises(ListenError) as caught:
                bind_listeners([f"unix:{path}"], 0)
            assert caught.value.errno == errno.EADDRINUSE
        finally:
            for client in waiting:
                client.close()
    assert path.exists()


def test_starting_at_once_one_takes_the_path_and_the_other_is_refused(tmp_path: Path) -> None:
    """Two processes finding the same stale file: the lock lets one replace it, never both."""
    path = tmp_path / "api.sock"
    with socket.socket(socket.AF_UNIX) as ended:
        ended.bind(str(path))  # the file of a process that ended
    script = (
        "import sys\n"
        "from dockerlink.listen import ListenError, bind_listeners\n"
        "sys.stdin.readline()\n"  # start together
        "try:\n"
        f"    held = bind_listeners(['unix:{path}'], 0)\n"
        "    print('bound', flush=True)\n"
        "    sys.stdin.readline()\n"  # hold it until told
        "except ListenError as exc:\n"
        "    print(exc.strerror, flush=True)\n"
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    try:
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        said = []
        for racer in racers:
            assert racer.stdout is not None
            said.append(racer.stdout.readline().strip())
        assert sorted(said)[0] == "bound" and said.count("bound") == 1, said
        with socket.socket(socket.AF_UNIX) as client:  # the file is the winner's
            client.settimeout(5)
            client.connect(str(path))
    finally:
        for racer in racers:
            racer.communicate("done\n", timeout=30)


def test_a_socket_file_replaced_by_another_is_not_removed(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    sockets = bind_listeners([f"unix:{path}"], 0)
    path.unlink()  # e.g. a second dockerlink took the path over
    with socket.socket(socket.AF_UNIX) as newer:
        newer.bind(str(path))
        close_listeners(sockets)
        assert stat.S_ISSOCK(path.lstat().st_mode)


def test_a_failed_bind_leaves_no_socket_file(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(ListenError):
            bind_listeners([f"unix:{path}", "127.0.0.1"], taken.getsockname()[1])
    finally:
        taken.close()
    assert not path.exists()


def test_a_path_another_process_is_taking_is_left_to_it(tmp_path: Path) -> None:
    """Between its check of a stale file and its bind, a starting process holds the path's
    lock: another one then neither removes the file nor binds."""
    path = tmp_path / "api.sock"
    with socket.socket(socket.AF_UNIX) as ended:
        ended.bind(str(path))  # stale: the other process is about to replace it
    stale = path.lstat().st_ino
    lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(ListenError, match="another dockerlink listens there"):
            bind_listeners([f"unix:{path}"], 0)
        assert path.lstat().st_ino == stale
    finally:
        os.close(lock)
    close_listeners(bind_listeners([f"unix:{path}"], 0))  # once it let go
