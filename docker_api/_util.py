"""Small helpers shared by the resource modules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from .errors import DockerError


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then its causes (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or current.__context__


def path_segment(ref: str) -> str:
    """An id or name made safe for one URL path segment (``?``, ``/``, ``%`` are escaped)."""
    if not ref or ref in {".", ".."}:
        raise ValueError(f"invalid engine object reference {ref!r}")
    return quote(ref, safe="")


def as_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DockerError(f"engine sent {type(value).__name__} where an object was expected")
    return value


def as_list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise DockerError(f"engine sent {type(value).__name__} where a list was expected")
    return value
