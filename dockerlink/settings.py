"""Settings: read once from the environment and ``.env``, validated, then frozen.

Each setting is read under its lowercase name (as the original service used it) or in upper case
with the ``DOCKERLINK_`` prefix; the process environment wins over ``.env``, and the prefixed name
wins over the bare one. A bad value raises :class:`SettingsError` naming the setting.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from docker_api import TLSConfig
from docker_api.address import is_tcp, split_tcp, unix_socket_path

__all__ = [
    "UNIX_PREFIX",
    "Settings",
    "SettingsError",
    "is_local",
    "is_loopback",
    "load_settings",
    "unix_path",
]

DEFAULT_START_COMMAND = "sh /var/www/starter.sh && {commands} && /usr/sbin/sshd -D"
#: The files docker_cert_path must hold, named as the docker CLI names them.
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


class SettingsError(ValueError):
    """A setting has a value dockerlink cannot use; the message names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"invalid setting {name}: {problem}")
        self.name = name


@dataclass(frozen=True, slots=True)
class Settings:
    docker_sock: str = "/var/run/docker.sock"
    port_area_size: int = 5000
    base_image: str | None = None
    # Comma-separated listen addresses, and unix: socket paths (see ``hosts``).
    host: str = "127.0.0.1,::1"
    port: int = 7200
    api_token: str | None = None
    allow_unauthenticated: bool = False
    cors_origins: tuple[str, ...] = ()
    data_dir: Path = Path("./data")
    sample_interval: float = 15.0
    # Where the sampler reads running containers' figures: auto (cgroup files when readable,
    # else the engine's stats API), cgroup (files only), api (the engine only).
    stats_source: str = "auto"
    exec_user: str = "admin"
    stop_timeout: int = 10
    start_command: str = DEFAULT_START_COMMAND
    docker_timeout: float = 30.0
    git_timeout: float = 60.0
    log_level: str = "INFO"
    # Safe defaults given to every container dockerlink creates.
    pids_limit: int = 1024
    no_new_privileges: bool = True
    container_log_max_size: str = "10m"
    container_log_max_files: int = 3
    # Operator tooling: log format, remote engines, lifecycle hooks.
    log_format: str = "text"
    docker_cert_path: Path | None = None
    docker_allow_plaintext_tcp: bool = False
    hook_on_create: Path | None = None
    hook_on_delete: Path | None = None
    hook_on_start: Path | None = None
    hook_on_stop: Path | None = None
    hook_timeout: float = 30.0
    # Observability: GET /metrics without a token (the dashboard at / is always public).
    metrics_public: bool = False
    # Containers and the host: bounds on what a tenant's container can make dockerlink hold.
    git_output_limit: int = 1 << 20
    min_host_port: int = 1024
    # Capabilities removed from every new container (NET_RAW: no raw sockets, no ARP/IP spoofing).
    cap_drop: tuple[str, ...] = ("NET_RAW",)
    # Terminal (GET /v1/container/terminal): open sessions at most, seconds without input.
    terminal_max_sessions: int = 32
    terminal_idle_timeout: float = 900.0
    # The panels' shell tab: /v1/ssh/<name>/wetty and its socket (public; see ssh_bridge.py),
    # and the origins whose pages may show it in a frame ("*": any; empty: none).
    ssh_bridge: bool = True
    ssh_frame_ancestors: tuple[str, ...] = ("*",)
    # Its sockets open at once, in all (each container has at most SSH_SESSIONS_PER_CONTAINER).
    ssh_max_sessions: int = 256
    # Extra Host names accepted without a token (browsers acting for other sites are refused).
    allowed_hosts: tuple[str, ...] = ()
    # Lifecycle events: every event POSTed, signed, to webhook_url (retried, queued on disk).
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_timeout: float = 10.0
    webhook_retry_delay: float = 1.0
    # Restart policy: the most restarts the engine makes of an "on-failure" container.
    restart_max_retries: int = 5

    @property
    def hosts(self) -> tuple[str, ...]:
        """The listen addresses (or names) in ``host``, without IPv6 brackets, and its
        ``unix:/path`` sockets."""
        return tuple(_listen_address(part) for part in self.host.split(",") if part.strip())

    @property
    def listen_port(self) -> int | None:
        """``port``, unless ``host`` lists only unix sockets (then dockerlink holds no port)."""
        tcp = any(unix_path(host) is None for host in self.hosts)
        return self.port if tcp else None


def _text(name: str, raw: str) -> str:
    return raw


def _optional_text(name: str, raw: str) -> str | None:
    return raw or None


def _listen_address(part: str) -> str:
    value = part.strip()
    if value.startswith(UNIX_PREFIX):
        path = value[len(UNIX_PREFIX) :]
        if path.startswith("//"):  # unix:///run/x.sock, as Docker writes it
            path = path[2:]
        if path.startswith("/") and not path.endswith("/"):  # one spelling per socket
            path = "/" + os.path.normpath(path).lstrip("/")
        return UNIX_PREFIX + path
    return value[1:-1] if value.startswith("[") and value.endswith("]") else value


#: A ``host`` entry that is a unix socket's path: ``unix:/run/dockerlink/dockerlink.sock``.
UNIX_PREFIX = "unix:"
#: The longest path a unix socket's address holds (``sun_path``, less its final NUL).
UNIX_PATH_MAX = 107


def unix_path(host: str) -> str | None:
    """The socket's path of a ``unix:`` entry of ``hosts``; None for an address or a name."""
    return host[len(UNIX_PREFIX) :] if host.startswith(UNIX_PREFIX) else None


def _hosts(name: str, raw: str) -> str:
    """A comma-separated list of addresses, names or ``unix:`` socket paths, kept as
    ``127.0.0.1,::1``."""
    parts = [_listen_address(part) for part in raw.split(",")]
    if not any(parts):
        raise SettingsError(name, "is empty")
    for part in parts:
        path = unix_path(part)
        if path is not None:
            _check_socket_path(name, part, path)
            continue
        if not part or any(c.isspace() or c in "/[]" for c in part):
            raise SettingsError(name, f"{raw.strip()!r} is not a comma-separated list of addresses")
        address, colon, port = part.rpartition(":")
        if colon and port.isdigit() and ":" not in address:  # not IPv6: a name or IPv4 and a port
            raise SettingsError(name, f"{part!r} has a port: host takes addresses, set port apart")
    return ",".join(parts)


def _check_socket_path(name: str, part: str, path: str) -> None:
    if (
        not path.startswith("/")
        or path.endswith("/")
        or any(c.isspace() or c == "\0" for c in path)
    ):
        raise SettingsError(
            name, f"{part!r} is not unix: and the absolute path of a socket (no spaces)"
        )
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise SettingsError(
            name, f"{part!r}: a unix socket's path has at most {UNIX_PATH_MAX} bytes"
        )


def _token(name: str, raw: str) -> str | None:
    """Surrounding whitespace (a stray space or CR in ``.env``) is not part of the token."""
    return raw.strip() or None


def _integer(low: int, high: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(name, f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise SettingsError(name, f"{value} is outside {low}..{high}")
        return value

    return parse


def _seconds(low: float, high: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise SettingsError(name, f"{raw!r} is not a number of seconds") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise SettingsError(name, f"{raw.strip()} is outside {low:g}..{high:g} seconds")
        return value

    return parse


def _boolean(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(name, f"{raw!r} is not true or false")


def _socket(name: str, raw: str) -> str:
    address = raw.strip()
    if is_tcp(address):
        return _tcp_address(name, address)
    path = unix_socket_path(address)
    if not path.startswith("/"):
        raise SettingsError(
            name, f"{raw!r} is neither an absolute unix socket path nor tcp://host:port"
        )
    return path


def _tcp_address(name: str, raw: str) -> str:
    """``tcp://host:port`` with a port, kept as written (IPv6 hosts in brackets)."""
    try:
        host, port = split_tcp(raw)
    except ValueError:
        port = None
    if port is None:
        raise SettingsError(name, f"{raw!r} is not tcp://host:port")
    return f"tcp://{host}:{port}"


def _cert_path(name: str, raw: str) -> Path | None:
    """A folder holding the engine's usual client files: ca.pem, cert.pem, key.pem."""
    if not raw.strip():
        return None
    folder = Path(raw.strip())
    missing = [f for f in TLS_FILES if not os.access(folder / f, os.R_OK)]
    if missing:
        raise SettingsError(name, f"{folder} lacks readable {', '.join(missing)}")
    try:
        TLSConfig.from_cert_path(folder).ssl_context()
    except ValueError as exc:
        raise SettingsError(name, str(exc)) from None
    return folder


def _hook(name: str, raw: str) -> Path | None:
    """An executable file run at a container event (empty: no hook)."""
    if not raw.strip():
        return None
    path = Path(raw.strip())
    if not path.is_absolute():
        raise SettingsError(name, f"{raw!r} is not an absolute path")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise SettingsError(name, f"{path} is not an executable file")
    return path


def _log_format(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"text", "json"}:
        raise SettingsError(name, f"{raw!r} is not text or json")
    return value


def _stats_source(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"auto", "cgroup", "api"}:
        raise SettingsError(name, f"{raw!r} is not auto, cgroup or api")
    return value


def _webhook_url(name: str, raw: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError(name, f"{url!r} is not an http:// or https:// URL")
    return url


#: An origin as browsers send it: scheme, host (a name or a bracketed IPv6 address), port.
_ORIGIN = re.compile(
    r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?"
)


def _origins(name: str, raw: str) -> tuple[str, ...]:
    """``*`` or origins (``https://panel.example.com:8443``: no path, no spaces); the frame
    ancestors may also name every subdomain (``https://*.example.com``), as CSP allows."""
    origins = tuple(part.strip().rstrip("/").lower() for part in raw.split(",") if part.strip())
    for origin in origins:
        host_wildcard = name == "ssh_frame_ancestors" and "://*." in origin
        plain = origin.replace("://*.", "://", 1) if host_wildcard else origin
        if origin != "*" and not _ORIGIN.fullmatch(plain):
            raise SettingsError(
                name, f"{origin!r} is not * or an origin (http(s)://host[:port], nothing after)"
            )
    return origins


_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _host_names(name: str, raw: str) -> tuple[str, ...]:
    """Host names or addresses, without port (any port is accepted), lower case."""
    names = []
    for part in raw.split(","):
        value = part.strip().lower().removesuffix(".")
        if not value:
            continue
        bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        try:
            names.append(str(ipaddress.ip_address(bare)))
            continue
        except ValueError:
            pass
        if len(value) > 253 or not _HOST_NAME.fullmatch(value):
            raise SettingsError(name, f"{part.strip()!r} is not a host name or address (no port)")
        names.append(value)
    return tuple(names)


def _path(name: str, raw: str) -> Path:
    if not raw.strip():
        raise SettingsError(name, "is empty")
    return Path(raw.strip())


def _start_command(name: str, raw: str) -> str:
    if not raw.strip():
        raise SettingsError(name, "is empty")
    if raw.count("{commands}") > 1:
        raise SettingsError(name, "may contain {commands} at most once")
    return raw


def _exec_user(name: str, raw: str) -> str:
    user = raw.strip()
    if not user or any(c.isspace() or c == "\0" for c in user):
        raise SettingsError(name, f"{raw!r} is not a user name")
    return user


def _log_size(name: str, raw: str) -> str:
    size = raw.strip().lower()
    if not re.fullmatch(r"[1-9][0-9]{0,5}[kmg]", size):
        raise SettingsError(name, f"{raw!r} is not a size like 10m (k, m or g)")
    return size


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _size_bytes(low: int, high: int) -> Callable[[str, str], int]:
    """A size in bytes: ``1048576``, ``512k``, ``1m``, ``1MiB`` (k, m, g: powers of 1024)."""

    def parse(name: str, raw: str) -> int:
        match = re.fullmatch(r"([0-9]{1,12})\s*(?:([kmg])(?:i?b)?|b?)", raw.strip().lower())
        if match is None:
            raise SettingsError(name, f"{raw!r} is not a size like 1MiB, 512k or 1048576")
        value = int(match.group(1)) * _SIZE_UNITS[match.group(2) or ""]
        if not low <= value <= high:
            raise SettingsError(name, f"{raw.strip()} is outside {low}..{high} bytes")
        return value

    return parse


#: Linux's capabilities (capabilities(7)), as the engine names them without ``CAP_``.
CAPABILITIES = frozenset(
    [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
        "ALL",
    ]
)


def _capabilities(name: str, raw: str) -> tuple[str, ...]:
    """Linux capability names, comma-separated, with or without ``CAP_`` (or ``ALL``)."""
    names: list[str] = []
    for part in raw.split(","):
        cap = part.strip().upper().removeprefix("CAP_")
        if not cap:
            continue
        if cap not in CAPABILITIES:
            raise SettingsError(name, f"{part.strip()!r} is not a capability name like NET_RAW")
        if cap not in names:
            names.append(cap)
    return tuple(names)


def _log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(name, f"{raw!r} is not DEBUG, INFO, WARNING or ERROR")
    return level


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "docker_sock": _socket,
    # Every block holds ports 22, 80 and 443, which are always published.
    "port_area_size": _integer(444, 65535),
    "base_image": _optional_text,
    "host": _hosts,
    "port": _integer(1, 65535),
    "api_token": _token,
    "allow_unauthenticated": _boolean,
    "cors_origins": _origins,
    "data_dir": _path,
    "sample_interval": _seconds(0.2, 3600),
    "stats_source": _stats_source,
    "exec_user": _exec_user,
    "stop_timeout": _integer(0, 300),
    "start_command": _start_command,
    "docker_timeout": _seconds(0.1, 600),
    "git_timeout": _seconds(0.1, 3600),
    "log_level": _log_level,
    "pids_limit": _integer(0, 4_194_304),
    "no_new_privileges": _boolean,
    "container_log_max_size": _log_size,
    "container_log_max_files": _integer(1, 100),
    "log_format": _log_format,
    "docker_cert_path": _cert_path,
    "docker_allow_plaintext_tcp": _boolean,
    "hook_on_create": _hook,
    "hook_on_delete": _hook,
    "hook_on_start": _hook,
    "hook_on_stop": _hook,
    "hook_timeout": _seconds(0.1, 3600),
    "metrics_public": _boolean,
    "git_output_limit": _size_bytes(4 << 10, 1 << 30),
    "min_host_port": _integer(1, 65535),
    "cap_drop": _capabilities,
    "terminal_max_sessions": _integer(1, 10_000),
    "terminal_idle_timeout": _seconds(1, 7 * 86400),
    "ssh_bridge": _boolean,
    "ssh_frame_ancestors": _origins,
    "ssh_max_sessions": _integer(1, 100_000),
    "allowed_hosts": _host_names,
    "webhook_url": _webhook_url,
    "webhook_secret": _optional_text,
    "webhook_timeout": _seconds(0.1, 300),
    "webhook_retry_delay": _seconds(0.01, 300),
    "restart_max_retries": _integer(1, 1000),
}


def is_local(host: str) -> bool:
    """A loopback address or name, or a unix socket: only this machine can connect."""
    return unix_path(host) is not None or is_loopback(host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Read every setting from ``environ`` (default: the process environment) and ``env_file``.

    The environment wins, under either spelling: ``port`` there beats ``DOCKERLINK_PORT`` in
    the file. Within one source, the ``DOCKERLINK_`` spelling wins."""
    sources: list[Mapping[str, str]] = [os.environ if environ is None else environ]
    if env_file is not None and Path(env_file).is_file():
        sources.append({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values: dict[str, Any] = {}
    for field in fields(Settings):
        names = (f"DOCKERLINK_{field.name.upper()}", field.name)
        raw = next((source[n] for source in sources for n in names if n in source), None)
        if raw is not None:
            values[field.name] = _PARSERS[field.name](field.name, raw)
    settings = Settings(**values)
    check(settings)
    return settings


def check(settings: Settings) -> None:
    """Rules that involve more than one setting."""
    if not settings.hosts:
        raise SettingsError("host", "is empty")
    public = [host for host in settings.hosts if not is_local(host)]
    if public and settings.api_token is None and not settings.allow_unauthenticated:
        raise SettingsError(
            "api_token",
            f"refusing to listen on {public[0]} without a token: set api_token, "
            "or allow_unauthenticated=true to accept anyone who can reach the port",
        )
    if settings.api_token is not None and len(settings.api_token) < 16:
        raise SettingsError("api_token", "is shorter than 16 characters")
    _check_engine_transport(settings)
    if settings.webhook_url is not None and not settings.webhook_secret:
        raise SettingsError("webhook_secret", "is required with webhook_url (it signs each POST)")
    if settings.min_host_port + settings.port_area_size > 65536:
        raise SettingsError(
            "min_host_port",
            f"{settings.min_host_port} leaves no room for a block of port_area_size "
            f"({settings.port_area_size}) ports below 65536",
        )
    if settings.webhook_secret is not None and not settings.webhook_secret.strip():
        raise SettingsError("webhook_secret", "is blank (it keys each POST's signature)")


def _check_engine_transport(settings: Settings) -> None:
    """TCP needs client certificates, unless plain text is explicitly allowed."""
    tcp = is_tcp(settings.docker_sock)
    if not tcp and settings.docker_cert_path is not None:
        raise SettingsError(
            "docker_cert_path", "applies to a tcp:// docker_sock only, not to a unix socket"
        )
    if tcp and settings.docker_cert_path is None and not settings.docker_allow_plaintext_tcp:
        raise SettingsError(
            "docker_sock",
            f"{settings.docker_sock} without TLS: set docker_cert_path to a folder with "
            "ca.pem, cert.pem and key.pem, or docker_allow_plaintext_tcp=true to accept an "
            "unencrypted, unauthenticated engine connection",
        )
