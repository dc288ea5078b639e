"""Unit tests run in a fresh working directory: no .env is read, ./data lands in a temp dir.

Also the stats tests' shared fixtures: an injected ``clock`` and a ``store`` that uses it.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

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
