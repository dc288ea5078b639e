"""Parsing and validation of request bodies and query strings into small frozen values.

Everything a client sends is checked here, once; the domain layer trusts what it receives. Each
failure raises :class:`BadRequest` with a message that names the parameter.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest
from .units import GIB

__all__ = [
    "MIN_MEMORY_BYTES",
    "RESTART_POLICIES",
    "CreateRequest",
    "LimitsRequest",
    "LogsRequest",
    "PortSpec",
    "parse_bool",
    "parse_container_ref",
    "parse_create",
    "parse_json_object",
    "parse_limits",
    "parse_logs",
    "parse_stop_grace",
]

MIN_MEMORY_BYTES = 6 << 20
MAX_MEMORY_BYTES = (1 << 63) - 1
MAX_COMMANDS_BYTES = 64 * 1024
#: Most entries in a create's ``ports`` (each is a port binding the engine sets up).
MAX_PORTS = 64
ALWAYS_PUBLISHED = ("22/tcp", "80/tcp", "443/tcp")

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_CONTAINER_REF = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_PORT = re.compile(r"([0-9]{1,5})/(tcp|udp)")
# A docker image reference: [registry[:port]/]path[:tag][@digest], conservatively.
_IMAGE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._/:@+-]*")
MAX_NAME_LENGTH = 128
MAX_IMAGE_LENGTH = 512
#: ``restart`` values, applied as the engine's own restart policy of the same name.
RESTART_POLICIES = ("no", "on-failure", "unless-stopped")
MAX_LOG_TAIL = 10_000
DEFAULT_LOG_TAIL = 100


@dataclass(frozen=True, slots=True, order=True)
class PortSpec:
    port: int
    proto: str

    @property
    def key(self) -> str:
        """The engine's spelling, ``"80/tcp"``."""
        return f"{self.port}/{self.proto}"


@dataclass(frozen=True, slots=True)
class CreateRequest:
    name: str
    host_port_root: int
    memory_bytes: int
    cpus: float
    ports: tuple[PortSpec, ...]
    image: str | None
    commands: tuple[str, ...]
    restart: str = "no"


@dataclass(frozen=True, slots=True)
class LimitsRequest:
    """A PATCH: the new limits and restart policy; None leaves one as it is."""

    memory_bytes: int | None
    cpus: float | None
    restart: str | None = None


@dataclass(frozen=True, slots=True)
class LogsRequest:
    """``GET /v1/container/logs``: which part of the output, and whether to keep following."""

    tail: int
    since: float
    follow: bool
    timestamps: bool


# -- bodies ---------------------------------------------------------------------------------------


def _reject_constant(token: str) -> Any:
    raise BadRequest(f"invalid JSON body: {token} is not a JSON number")


def _whole_json_number(token: str) -> int:
    try:
        return int(token)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits())
        digits = len(token.lstrip("-"))
        raise BadRequest(f"invalid JSON body: a number with {digits} digits is too long") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise BadRequest(f"invalid JSON body: duplicate key {key!r}")
        obj[key] = value
    return obj


_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object: strict UTF-8, no NaN, no duplicate keys."""
    if not body or not body.strip():
        raise BadRequest("a JSON object body is required")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("invalid JSON body: not valid UTF-8") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_reject_constant,
            parse_int=_whole_json_number,
        )
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"invalid JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise BadRequest("invalid JSON body: nested too deeply") from None
    if not isinstance(value, dict):
        raise BadRequest("the JSON body must be an object")
    if _has_lone_surrogate(value):  # "\ud800" alone: half a character, nothing can encode it
        raise BadRequest(
            "invalid JSON body: a \\u escape names half of a character (a lone surrogate)"
        )
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a string anywhere in ``value`` holds one (without recursion: json.loads takes
    deeper nesting than the interpreter's stack)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item) is not None:
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _check_fields(body: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (expected {', '.join(sorted(allowed))})")


def _number(body: Mapping[str, Any], name: str) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{name} must be a number, not {_json_type(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise BadRequest(f"{name} is too large") from None
    if not math.isfinite(number):
        raise BadRequest(f"{name} must be a finite number")
    return number


def _whole_number(body: Mapping[str, Any], name: str) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{name} must be an integer, not {_json_type(value)}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise BadRequest(f"{name} must be an integer")
        value = int(value)
    return value


def _memory_bytes(body: Mapping[str, Any]) -> int:
    gib = _number(body, "memory")
    if gib <= 0:
        raise BadRequest("memory must be greater than 0 (GiB)")
    if gib > MAX_MEMORY_BYTES / GIB:
        raise BadRequest("memory is too large")
    memory_bytes = round(gib * GIB)
    if memory_bytes < MIN_MEMORY_BYTES:
        raise BadRequest("memory must be at least 6 MiB (0.005859375 GiB)")
    return memory_bytes


def _cpus(body: Mapping[str, Any]) -> float:
    cpus = _number(body, "cpulimit")
    if cpus <= 0:
        raise BadRequest("cpulimit must be greater than 0 (CPUs)")
    if cpus > 1_000_000:
        raise BadRequest("cpulimit is too large")
    return cpus


def _ports(body: Mapping[str, Any], port_area_size: int) -> tuple[PortSpec, ...]:
    raw = body.get("ports")
    specs = {PortSpec(int(k.split("/")[0]), k.split("/")[1]) for k in ALWAYS_PUBLISHED}
    if raw is None:
        return tuple(sorted(specs))
    if not isinstance(raw, list):
        raise BadRequest(f'ports must be a list of "<port>/<tcp|udp>", not {_json_type(raw)}')
    if len(raw) > MAX_PORTS:
        raise BadRequest(f"ports has {len(raw)} entries, more than {MAX_PORTS}")
    for item in raw:
        match = _PORT.fullmatch(item) if isinstance(item, str) else None
        if match is None:
            shown = item if isinstance(item, str) else _json_type(item)
            raise BadRequest(f'ports: {str(shown)[:40]!r} is not "<port>/<tcp|udp>"')
        port = int(match.group(1))
        if not 1 <= port < port_area_size:
            raise BadRequest(f"ports: {port} is outside 1..{port_area_size - 1} (port_area_size)")
        specs.add(PortSpec(port, match.group(2)))
    return tuple(sorted(specs))


def _image(body: Mapping[str, Any]) -> str | None:
    image = body.get("image")
    if image is None:
        return None
    if not isinstance(image, str):
        raise BadRequest(f"image must be a string, not {_json_type(image)}")
    if len(image) > MAX_IMAGE_LENGTH or not _IMAGE.fullmatch(image):
        raise BadRequest("image is not a valid image reference")
    return image


def _commands(body: Mapping[str, Any]) -> tuple[str, ...]:
    raw = body.get("commands")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise BadRequest("commands must be a list of strings")
    commands = tuple(c for c in raw if c.strip())
    if any("\0" in c for c in commands):
        raise BadRequest("commands may not contain NUL bytes")
    if sum(len(c.encode()) for c in commands) > MAX_COMMANDS_BYTES:
        raise BadRequest("commands are longer than 64 KiB in all")
    return commands


def _restart(body: Mapping[str, Any]) -> str | None:
    value = body.get("restart")
    if value is None:
        return None
    if not isinstance(value, str) or value not in RESTART_POLICIES:
        shown = repr(value[:40]) if isinstance(value, str) else _json_type(value)
        raise BadRequest(f"restart must be one of {', '.join(RESTART_POLICIES)}, not {shown}")
    return value


def parse_create(
    body: Mapping[str, Any],
    *,
    port_area_size: int,
    min_host_port: int = 1,
    own_port: int | None = None,
) -> CreateRequest:
    """A create request; ``host_port_root`` at least ``min_host_port``, and its block of
    ``port_area_size`` ports clear of ``own_port`` (dockerlink's listen port)."""
    _check_fields(
        body,
        {"name", "host_port_root", "memory", "cpulimit", "ports", "image", "commands", "restart"},
    )
    for required in ("name", "host_port_root", "memory", "cpulimit"):
        if required not in body or body[required] is None:
            raise BadRequest(f"{required} is required")
    name = body["name"]
    if not isinstance(name, str):
        raise BadRequest(f"name must be a string, not {_json_type(name)}")
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise BadRequest("name must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ and be at most 128 characters")
    root = _whole_number(body, "host_port_root")
    if root < 1:
        raise BadRequest("host_port_root must be at least 1")
    if root + port_area_size - 1 > 65535:
        raise BadRequest(
            f"host_port_root must be at most {65536 - port_area_size} "
            f"(its block of {port_area_size} ports must end by 65535)"
        )
    if root < min_host_port:
        raise BadRequest(f"host_port_root must be at least {min_host_port} (min_host_port)")
    if own_port is not None and root <= own_port < root + port_area_size:
        raise BadRequest(
            f"host_port_root {root}: its block {root}-{root + port_area_size - 1} "
            f"holds dockerlink's own port {own_port}"
        )
    return CreateRequest(
        name=name,
        host_port_root=root,
        memory_bytes=_memory_bytes(body),
        cpus=_cpus(body),
        ports=_ports(body, port_area_size),
        image=_image(body),
        commands=_commands(body),
        restart=_restart(body) or "no",
    )


def parse_limits(body: Mapping[str, Any]) -> LimitsRequest:
    _check_fields(body, {"memory", "cpulimit", "restart"})
    memory = _memory_bytes(body) if body.get("memory") is not None else None
    cpus = _cpus(body) if body.get("cpulimit") is not None else None
    restart = _restart(body)
    if memory is None and cpus is None and restart is None:
        raise BadRequest("give cpulimit, memory, restart, or several of them")
    return LimitsRequest(memory_bytes=memory, cpus=cpus, restart=restart)


# -- query strings --------------------------------------------------------------------------------


def parse_container_ref(value: str | None, name: str = "id") -> str:
    """A container id, unique id prefix or name, as the engine accepts them."""
    if value is None or value == "":
        raise BadRequest(f"{name} is required")
    if len(value) > MAX_NAME_LENGTH or not _CONTAINER_REF.fullmatch(value):
        raise BadRequest(f"{name} is not a container id or name")
    return value.lstrip("/")


def parse_bool(value: str | None, name: str, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"true", "1"}:
        return True
    if lowered in {"false", "0"}:
        return False
    raise BadRequest(f"{name} must be true or false")


def parse_stop_grace(value: str | None, default: int) -> int:
    """``t``: seconds a stop waits before the engine kills, 0 to 300."""
    if value is None:
        return default
    seconds = _small_number(value)
    if seconds is None or seconds > 300:
        raise BadRequest("t must be a whole number of seconds from 0 to 300")
    return seconds


def _small_number(value: str) -> int | None:
    """The number ``value``'s digits write when it is below a million (leading zeros allowed),
    else None: a longer one is refused before ``int()``, which refuses over 4,300 digits with
    an error of its own."""
    if not value.isascii() or not value.isdigit():
        return None
    digits = value.lstrip("0") or "0"
    return int(digits) if len(digits) <= 6 else None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


# -- git routes -----------------------------------------------------------------------------------

MAX_GIT_PATH_BYTES = 4096
MAX_BRANCH_BYTES = 255
#: What ``git check-ref-format`` refuses anywhere in a name: ASCII control characters, DEL,
#: space, and ``~ ^ : ? * [ \``.
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def parse_git_path(value: str | None) -> str | None:
    """``path``: an absolute directory in the container, normalized; None means the default.

    ``..`` components are refused rather than resolved: the request names the directory as is.
    """
    if value is None or value == "":
        return None
    if "\0" in value:
        raise BadRequest("path may not contain NUL bytes")
    if not value.startswith("/"):
        raise BadRequest("path must be absolute (start with /)")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_GIT_PATH_BYTES:
        raise BadRequest(f"path is longer than {MAX_GIT_PATH_BYTES} bytes")
    if not _encodable(value):
        raise BadRequest("path is not valid UTF-8")
    parts = value.split("/")
    if ".." in parts:
        raise BadRequest("path may not contain .. components")
    return "/" + "/".join(part for part in parts if part not in {"", "."})


def parse_branch(value: str | None) -> str:
    """``branch``: a name ``git check-ref-format --branch`` accepts, not starting with ``-``.

    The rules are checked here, in Python, so that nothing runs for a refused name.
    """
    if value is None or value == "":
        raise BadRequest("branch is required")
    if value.startswith("-"):
        raise BadRequest("branch may not start with -")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_BRANCH_BYTES:
        raise BadRequest(f"branch is longer than {MAX_BRANCH_BYTES} bytes")
    if not _encodable(value):
        raise BadRequest("branch is not valid UTF-8")
    problem = _branch_problem(value)
    if problem is not None:
        raise BadRequest(f"branch is not a valid branch name: {problem}")
    return value


def _branch_problem(name: str) -> str | None:
    """Why git would refuse ``refs/heads/<name>``, or None when it would accept it."""
    forbidden = _REF_FORBIDDEN.search(name)
    if forbidden is not None:
        char = forbidden.group()
        shown = repr(char) if char.isprintable() and char != " " else f"character {ord(char):#04x}"
        return f"it contains {shown}"
    if name in {"@", "HEAD"}:
        return f"it may not be {name}"
    if ".." in name:
        return "it contains .."
    if "@{" in name:
        return "it contains @{"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it has an empty /-separated component"
    if name.endswith("."):
        return "it ends with ."
    for component in name.split("/"):
        if component.startswith("."):
            return "a /-separated component starts with ."
        if component.endswith(".lock"):
            return "a /-separated component ends with .lock"
    return None


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- stats queries --------------------------------------------------------------------------------

_SINCE = re.compile(r"[0-9]{1,15}(\.[0-9]{1,9})?")


def parse_since(value: str | None) -> float:
    """``since``: unix seconds (a fraction is allowed), 0 when absent or empty."""
    if value is None or value == "":
        return 0.0
    if not _SINCE.fullmatch(value):
        raise BadRequest("since must be a unix time in seconds, a number >= 0")
    return float(value)


def parse_scale(value: str | None) -> str:
    """``scale``: ``day`` or ``week``; any other value, or none, means ``instant``."""
    return value if value is not None and value in {"day", "week"} else "instant"


__all__ += ["parse_scale", "parse_since"]


# -- logs -----------------------------------------------------------------------------------------


def parse_logs(args: Mapping[str, str | None]) -> LogsRequest:
    """``tail`` (0 to 10000, default 100), ``since``, ``follow`` and ``timestamps``."""
    raw_tail = args.get("tail")
    if raw_tail is None:
        tail = DEFAULT_LOG_TAIL
    elif (
        raw_tail.isascii()
        and raw_tail.isdigit()
        and len(raw_tail) <= 6
        and int(raw_tail) <= MAX_LOG_TAIL
    ):
        tail = int(raw_tail)
    else:
        raise BadRequest(f"tail must be a whole number of lines from 0 to {MAX_LOG_TAIL}")
    return LogsRequest(
        tail=tail,
        since=parse_since(args.get("since")),
        follow=parse_bool(args.get("follow"), "follow", False),
        timestamps=parse_bool(args.get("timestamps"), "timestamps", False),
    )


# -- event queries --------------------------------------------------------------------------------

MAX_EVENTS_LIMIT = 1000
DEFAULT_EVENTS_LIMIT = 100


def parse_events_limit(value: str | None) -> int:
    """``limit``: how many of the newest events to answer, 1 to 1000 (default 100)."""
    if value is None or value == "":
        return DEFAULT_EVENTS_LIMIT
    limit = _small_number(value)
    if limit is None or not 1 <= limit <= MAX_EVENTS_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_EVENTS_LIMIT}")
    return limit


__all__ += ["parse_events_limit"]
