"""The service's logging set up on a stream that keeps each write, for tests of when lines are
written."""

from __future__ import annotations

import io
import time

import pytest

from dockerlink.logs import configure_logging, log_requests


class WriteRecorder(io.StringIO):
    """A stream that keeps each write's text."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)


def service_logging(monkeypatch: pytest.MonkeyPatch) -> WriteRecorder:
    """The logging set up as the service does, on a stream that keeps each write. (Call it in
    a test's body: pytest adds a handler of its own to the root logger while a test runs.)"""
    stream = WriteRecorder()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", "text", ["turn-secret"])
    return stream


def log_request(request_id: str, method: str, path: str, status: int, duration_ms: float) -> None:
    """:func:`log_requests` of one request answered now."""
    log_requests([(time.time(), request_id, method, path, status, duration_ms)])


def messages(text: str) -> list[str]:
    """The messages of text lines (what follows ``<time> <level> <logger>: ``)."""
    return [line.partition(": ")[2] for line in text.splitlines()]
