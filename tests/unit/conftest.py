"""Unit tests run in a fresh working directory: no .env is read, ./data lands in a temp dir."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _fresh_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
