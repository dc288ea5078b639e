"""Every test in this folder runs against the real test engine (see tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _requires_engine(engine_sock: str) -> None:
    """Resolving ``engine_sock`` skips (laptop) or fails (CI) when no engine answers."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/engine/" in str(item.path):
            item.add_marker(pytest.mark.engine)
