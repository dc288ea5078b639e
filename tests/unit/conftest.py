"""Unit tests run in a fresh working directory: no .env is read, ./data lands in a temp dir.

Also the stats tests' shared fixtures, an injected ``clock`` and a ``store`` that uses it, and
``restore_logging`` for the tests that set the logging up as the service does.
"""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockerlink.logs import SANIC_LOGGERS
from dockerlink.stats.store import HistoryStore

from .clock import Clock


@pytest.fixture(autouse=True)
def _fresh_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[HistoryStore]:
    history = HistoryStore(tmp_path / "stats", clock=clock)
    history.open()
    yield history
    history.close()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    sanic_saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in SANIC_LOGGERS
    }
    httpx_levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    for name, level in httpx_levels.items():
        logging.getLogger(name).setLevel(level)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, (handlers, propagate) in sanic_saved.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate
