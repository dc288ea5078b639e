"""Logging: text or JSON lines on stderr, the current request's id, and error causes.

Every line of the service goes through the root logger's one handler, Sanic's own loggers
included, so ``log_format=json`` gives one JSON object per line for everything. A request's id
is kept in a context variable while it is handled, so lines logged on its behalf (a hook that
failed...) carry it. Secrets (the API token) are replaced by ``[redacted]`` in every line, raw
or URL-encoded, wherever a client put them: a query string, a path, an ``X-Request-Id``. And
no line carries a control character but its line breaks and tabs: the others (a carriage
return, a terminal's escape sequences) are written as ``\\xNN``, so that nothing a client sends
can forge a line or drive the terminal of an operator reading the log.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

import orjson

from docker_api import exception_chain

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "LoopBatchingHandler",
    "RedactingFormatter",
    "TextFormatter",
    "cause_note",
    "configure_logging",
    "current_request_id",
    "describe_causes",
    "log_request",
    "request_id_var",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Sanic's loggers: their own handlers are removed so that their lines go through ours.
SANIC_LOGGERS = ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets")

request_id_var: ContextVar[str | None] = ContextVar("dockerlink_request_id", default=None)


def current_request_id() -> str:
    """The id of the request being handled, or ``-`` outside a request."""
    return request_id_var.get() or "-"


class LoopBatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the lines logged during one turn of the event loop at once,
    at the end of that turn: under load a turn answers tens of requests, each with its line,
    and one write each was a system call per request. Lines logged outside a running loop (a
    worker thread, start-up, shutdown) are written at once, after any waiting."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self.emit_line(line)

    def emit_line(self, line: str) -> None:
        """Queue one formatted line (with its terminator) to be written with this turn's."""
        self._pending.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_pending()
            return
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._scheduled = False
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing else to tell it to
            pass


#: ``,000`` to ``,999``: a line's milliseconds, as ``logging`` writes them after the second.
_MILLISECONDS = tuple(f",{ms:03d}" for ms in range(1000))


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines, the time text made once per second (``time.strftime`` for every
    line was a tenth of a request's cost), its milliseconds taken from a table."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._time_text(record.created)

    def _time_text(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return self._second_text + _MILLISECONDS[int((created - second) * 1000)]

    def line(
        self,
        created: float,
        level: str,
        name: str,
        message: str,
        request_id: str | None,
        fields: dict[str, Any],
    ) -> str:
        """What :meth:`format` makes of a record with these attributes and no exception."""
        return f"{self._time_text(created)} {level} {name}: {message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        return self.line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, "request_id", None) or request_id_var.get(),
            fields if isinstance(fields, dict) else {},
            self.formatException(record.exc_info) if record.exc_info else None,
        )

    def line(
        self,
        created: float,
        level: str,
        name: str,
        message: str,
        request_id: str | None,
        fields: dict[str, Any],
        exception: str | None = None,
    ) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "logger": name,
            "message": message,
        }
        if request_id:
            entry["request_id"] = request_id
        entry.update(fields)
        if exception is not None:
            entry["exception"] = exception
        return orjson.dumps(entry, default=str).decode()


REDACTED = "[redacted]"


#: Control characters a line may not carry as they are (C0 but tab and line feed, DEL, C1).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


class RedactingFormatter(logging.Formatter):
    """Another formatter's lines with every secret, raw or URL-encoded, made ``[redacted]``,
    and control characters escaped."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        forms = {
            form
            for secret in secrets
            if secret
            for form in (
                secret,
                quote(secret, safe=""),
                quote(secret),
                quote_plus(secret),
                orjson.dumps(secret).decode()[1:-1],  # as a JSON line writes it
            )
        }
        # Longest first; case-insensitive, so %2b matches %2B (redacting a little more is fine).
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)), re.I)
            if forms
            else None
        )

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(self.inner.format(record))

    def redact(self, line: str, foreign: str | None = None) -> str:
        """``line`` with secrets redacted and control characters escaped. ``foreign``: the only
        part of the line a control character can come from, when the caller knows it (the rest
        is the service's own text); else the whole line is searched."""
        if self._pattern is not None:
            line = self._pattern.sub(REDACTED, line)
        # Every control character is unprintable: a printable text (most) has none to escape,
        # and str.isprintable() says so faster than the regular expression's search.
        if (
            not (line if foreign is None else foreign).isprintable()
            and _CONTROL.search(line) is not None
        ):
            line = _CONTROL.sub(_escaped, line)
        return line


#: The logger of the one line per answered request.
request_log = logging.getLogger("dockerlink.request")
_NO_FIELDS: dict[str, Any] = {}


def log_request(request_id: str, method: str, path: str, status: int, duration_ms: float) -> None:
    """Log the line of one answered request, ``[id] METHOD path status duration ms``, with the
    same values as ``fields`` for JSON lines; the duration to a tenth of a millisecond.

    ``request_id`` and ``method`` are the service's own text (an id that passed its check or
    was made here, a method label): only ``path`` can carry a control character a client sent.

    When nothing but :func:`configure_logging`'s handler would see it (the service as it
    runs), the line is formatted and queued directly, exactly as that handler would write it:
    a log record and the logging module's dispatch were a fifth of a request's cost. Whenever
    another handler or filter is on the way (a test's capture, an embedding application's),
    the line is a log record like any other.
    """
    if not request_log.isEnabledFor(logging.INFO):
        return
    message = f"[{request_id}] {method} {path} {status} {_milliseconds(duration_ms)} ms"
    direct = _direct_handler()
    fields = (
        {"method": method, "path": path, "status": status, "duration_ms": round(duration_ms, 1)}
        if direct is None or type(direct[2]) is JsonFormatter
        else _NO_FIELDS  # (text lines do not show them)
    )
    if direct is None:
        request_log.info(message, extra={"request_id": request_id, "fields": fields})
        return
    handler, redacting, inner = direct
    line = inner.line(time.time(), "INFO", request_log.name, message, request_id, fields)
    handler.emit_line(redacting.redact(line, path) + handler.terminator)


def _milliseconds(duration_ms: float) -> str:
    """``f"{round(duration_ms, 1):g}"``, for half its cost: under 100,000 ms, the digits ``.1f``
    writes (both round correctly), without a ``.0`` (``:g`` writes none)."""
    text = f"{duration_ms:.1f}"
    if len(text) > 7:  # 100000.0 and over: :g keeps six digits, or takes an exponent
        return f"{round(duration_ms, 1):g}"
    return text[:-2] if text.endswith(".0") else text


def _direct_handler() -> (
    tuple[LoopBatchingHandler, RedactingFormatter, TextFormatter | JsonFormatter] | None
):
    """configure_logging's handler and formatters, when a request line would reach nothing else."""
    logger = request_log
    while logger.parent is not None:
        if logger.handlers or logger.filters or not logger.propagate:
            return None
        logger = logger.parent
    if logger.filters or len(logger.handlers) != 1:
        return None
    handler = logger.handlers[0]
    formatter = handler.formatter
    if (
        type(handler) is not LoopBatchingHandler
        or handler.filters
        or handler.level > logging.INFO
        or type(formatter) is not RedactingFormatter
    ):
        return None
    inner = formatter.inner
    if type(inner) is not TextFormatter and type(inner) is not JsonFormatter:
        return None
    return handler, formatter, inner


def configure_logging(level: str, log_format: str, secrets: Iterable[str] = ()) -> None:
    """Send every logger, Sanic's too, to stderr in ``log_format`` (``text`` or ``json``),
    with ``secrets`` redacted from every line.

    Call it after the Sanic app is created: Sanic installs its own handlers when it is.
    """
    # No line shows the caller's file, thread or process: not collecting them makes every
    # record several microseconds cheaper (what the logging documentation advises).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # skip findCaller's stack walk
    handler = LoopBatchingHandler(sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    handler.setFormatter(RedactingFormatter(formatter, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in SANIC_LOGGERS:
        sanic_logger = logging.getLogger(name)
        for old in list(sanic_logger.handlers):
            sanic_logger.removeHandler(old)
        sanic_logger.propagate = True
    # httpx logs every engine call at INFO: only worth reading when debugging.
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)


def describe_causes(exc: BaseException) -> str:
    """The chain of causes below ``exc``: ``ConnectError: ... <- ConnectionRefusedError: ...``."""
    parts: list[str] = []
    for cause in itertools.islice(exception_chain(exc), 1, 6):
        text = " ".join(str(cause).split())
        parts.append(f"{type(cause).__name__}: {text}" if text else type(cause).__name__)
    return " <- ".join(parts)


def cause_note(exc: BaseException) -> str:
    """`` (cause: ...)`` for a log line about ``exc``, or nothing when it has no cause."""
    causes = describe_causes(exc)
    return f" (cause: {causes})" if causes else ""
