"""Logging: text or JSON lines on stderr, the current request's id, and error causes.

Every line of the service goes through the root logger's one handler, Sanic's own loggers
included, so ``log_format=json`` gives one JSON object per line for everything. A request's id
is found through the request Sanic keeps in a context variable while it is handled, so lines
logged on its behalf (a hook that failed...) carry it. Secrets (the API token) are replaced by
``[redacted]`` in every line, raw or URL-encoded, wherever a client put them: a query string, a
path, an ``X-Request-Id``. And no line carries a control character but its line breaks and
tabs: the others (a carriage return, a terminal's escape sequences) are written as ``\\xNN``,
so that nothing a client sends can forge a line or drive the terminal of an operator reading
the log.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import sys
import time
from asyncio import _get_running_loop
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

import orjson
from sanic import Request
from sanic.exceptions import ServerError

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
    "log_requests",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Sanic's loggers: their own handlers are removed so that their lines go through ours.
SANIC_LOGGERS = ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets")


def current_request_id() -> str:
    """The id of the request being handled, or ``-`` outside a request."""
    return _request_id_now() or "-"


def _request_id_now() -> str | None:
    """The id of the request being handled in this context: Sanic keeps the request in a
    context variable of its own (``Request.get_current``, made for this), and dockerlink's
    requests carry their id (``request_id``)."""
    try:
        request = Request.get_current()
    except ServerError:  # outside a request
        return None
    request_id = getattr(request, "request_id", None)
    return request_id if isinstance(request_id, str) else None


#: An answered request's line, as values: its time, id, method, path, status and duration in ms.
RequestLine = tuple[float, str, str, str, int, float]


class LoopBatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the lines logged during one turn of the event loop at once,
    at the end of that turn: under load a turn answers tens of requests, each with its line,
    and one write each was a system call per request. Lines logged outside a running loop (a
    worker thread, start-up, shutdown) are written at once.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        #: The lines of this turn, in order; only the loop's thread adds to it while it runs.
        self._pending: list[str] = []
        #: The loop whose turn's end writes them; None once written. (A loop runs in one
        #: thread: ``_get_running_loop()`` is that loop in its thread alone, and only while it
        #: runs.)
        self._loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self.queue(line)

    def queue(self, line: str) -> bool:
        """Queue a line (with its terminator; or several lines, each with its own) with this
        turn's lines. True when it waits for the end of the turn of the loop running in this
        thread; False when it was written at once (none runs)."""
        loop = self._loop
        if loop is not None and loop is _get_running_loop():
            self._pending.append(line)
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            with self.lock:  # type: ignore[union-attr]
                owner = self._loop
                if owner is not None and owner.is_running():  # (a loop's, in another thread)
                    self._write([line])
                    return False
                self._pending.append(line)  # with any a loop that stopped left
                self._loop = None
                self._write_pending()
            return False
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(line)
            self._loop = loop
        loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._loop = None
            self._write_pending()

    def _write_pending(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._write(pending)

    def _write(self, lines: list[str]) -> None:
        try:
            self.stream.write("".join(lines))
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

    def request_lines(self, rows: Sequence[RequestLine], terminator: str) -> str:
        """What :meth:`format` makes of the record of each :func:`log_requests` line, each
        followed by ``terminator``: one f-string a line (its message is
        :func:`request_message`'s, written out here: a call less per request)."""
        time_text = self._time_text
        return "".join(
            [
                f"{time_text(created)}{_REQUEST_PREFIX}{request_id}] {method} {path} {status} "
                f"{_milliseconds(duration_ms)} ms{terminator}"
                for created, request_id, method, path, status, duration_ms in rows
            ]
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        return self.line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, "request_id", None) or _request_id_now(),
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

    def request_lines(self, rows: Sequence[RequestLine], terminator: str) -> str:
        """What :meth:`format` makes of the record of each :func:`log_requests` line, each
        followed by ``terminator``."""
        return "".join(
            [
                self.line(
                    created,
                    "INFO",
                    REQUEST_LOGGER,
                    request_message(request_id, method, path, status, duration_ms),
                    request_id,
                    request_fields(method, path, status, duration_ms),
                )
                + terminator
                for created, request_id, method, path, status, duration_ms in rows
            ]
        )


REDACTED = "[redacted]"


#: Control characters a line may not carry as they are (C0 but tab and line feed, DEL, C1).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


#: Every ASCII character a line may carry as it is: tab, line feed and the printable ones.
_PLAIN_ASCII = b"\t\n" + bytes(range(0x20, 0x7F))


def _has_control(text: str) -> bool:
    """Whether ``text`` holds a character that :data:`_CONTROL` escapes. (Of ASCII text, most,
    the bytes left once every plain one is deleted say so several times faster than the
    pattern's search or ``str.isprintable()``.)"""
    if text.isascii():
        return bool(text.encode().translate(None, _PLAIN_ASCII))
    return _CONTROL.search(text) is not None


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
        #: The forms in lower case, when every one is ASCII text (else None): the pattern then
        #: matches an ASCII line exactly when the line's lower case holds one of them, which
        #: ``in`` tells several times faster than the pattern's search (with two secrets, a
        #: request line's search took 5.7 us).
        self._ascii_forms = (
            tuple({form.lower() for form in forms})
            if all(form.isascii() for form in forms)
            else None
        )
        #: Whether request lines may be redacted several at once (see :meth:`request_lines`).
        self._batches = not any("\n" in form for form in forms)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(self.inner.format(record))

    def request_lines(self, rows: Sequence[RequestLine], terminator: str) -> str:
        """The lines of answered requests (see :func:`log_requests`), each as this formatter
        formats that request's record, followed by ``terminator``; with a TextFormatter or a
        JsonFormatter inside. Made by that formatter all at once, then redacted at once: the
        same text as line by line while no secret holds a line break and the lines end with one
        (a match cannot then span two lines, and a line break is never escaped)."""
        inner: TextFormatter | JsonFormatter = self.inner  # type: ignore[assignment]
        if terminator != "\n" or not self._batches:
            return "".join(
                [self.redact(inner.request_lines([row], "")) + terminator for row in rows]
            )
        return self.redact(inner.request_lines(rows, terminator))

    def redact(self, text: str) -> str:
        """``text`` (a line, or lines that each end with a line break) with secrets redacted
        and control characters escaped."""
        if self._pattern is not None and self._may_hold_secret(text):
            text = self._pattern.sub(REDACTED, text)
        if _has_control(text):
            text = _CONTROL.sub(_escaped, text)
        return text

    def _may_hold_secret(self, line: str) -> bool:
        """False when the pattern surely finds no secret in ``line``. (Outside ASCII, case
        folds differ from ``str.lower()``'s: the long s, U+017F, is an ``s`` to the pattern;
        the pattern is asked.)"""
        forms = self._ascii_forms
        if forms is None or not line.isascii():
            return True
        lower = line.lower()
        for form in forms:  # noqa: SIM110 (a loop: a third cheaper than any() of a generator)
            if form in lower:
                return True
        return False


REQUEST_LOGGER = "dockerlink.request"
#: A text request line's words between its time and its request id.
_REQUEST_PREFIX = f" INFO {REQUEST_LOGGER}: ["
#: The logger of the one line per answered request.
request_log = logging.getLogger(REQUEST_LOGGER)


def log_requests(lines: Sequence[RequestLine]) -> None:
    """Log the lines of answered requests, each ``[id] METHOD path status duration ms``, with
    the same values as ``fields`` for JSON lines; the duration to a tenth of a millisecond.

    ``request_id`` and ``method`` are the service's own text (an id that passed its check or
    was made here, a method label): only ``path`` can carry a control character a client sent.

    When nothing but :func:`configure_logging`'s handler would see them (the service as it
    runs), the lines are made at once, exactly as the handler would have made their records',
    and queued with its lines: a log record and the logging module's dispatch were a fifth of a
    request's cost. Whenever another handler or filter is on the way (a test's capture, an
    embedding application's), each line is a log record like any other (of the time it is
    logged: a line's own time is only kept without a record).
    """
    if not lines or not request_log.isEnabledFor(logging.INFO):
        return
    direct = _direct_handler()
    if direct is not None:
        handler, redacting = direct
        handler.queue(redacting.request_lines(lines, handler.terminator))
        return
    for _, request_id, method, path, status, duration_ms in lines:
        request_log.info(
            request_message(request_id, method, path, status, duration_ms),
            extra={
                "request_id": request_id,
                "fields": request_fields(method, path, status, duration_ms),
            },
        )


def request_message(
    request_id: str, method: str, path: str, status: int, duration_ms: float
) -> str:
    """A request line's message: ``[id] METHOD path status duration ms``."""
    return f"[{request_id}] {method} {path} {status} {_milliseconds(duration_ms)} ms"


def request_fields(method: str, path: str, status: int, duration_ms: float) -> dict[str, Any]:
    """A request line's ``fields`` (shown by JSON lines)."""
    return {"method": method, "path": path, "status": status, "duration_ms": round(duration_ms, 1)}


#: What :func:`_milliseconds` writes for each number of tenths of a millisecond under 100 ms.
_TENTHS = tuple(f"{t // 10}" if t % 10 == 0 else f"{t // 10}.{t % 10}" for t in range(1000))


def _milliseconds(duration_ms: float) -> str:
    """``f"{round(duration_ms, 1):g}"``, for a fraction of its cost.

    Under 100 ms (most requests), the tenths rounded half up, read from a table, unless the
    duration is within a millionth of a tenth of a tie (where the float sum may round the
    other way, and ``round`` rounds a true tie to even). Under 100,000 ms, the digits ``.1f``
    writes (both round correctly), without a ``.0`` (``:g`` writes none)."""
    scaled = duration_ms * 10 + 0.5
    if 0.0 <= scaled < 1000.0:
        tenths = int(scaled)
        if 1e-6 < scaled - tenths < 1 - 1e-6:
            return _TENTHS[tenths]
    text = f"{duration_ms:.1f}"
    if len(text) > 7:  # 100000.0 and over: :g keeps six digits, or takes an exponent
        return f"{round(duration_ms, 1):g}"
    return text[:-2] if text.endswith(".0") else text


def _direct_handler() -> tuple[LoopBatchingHandler, RedactingFormatter] | None:
    """configure_logging's handler and formatter, when a request line would reach nothing else."""
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
    return handler, formatter


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
