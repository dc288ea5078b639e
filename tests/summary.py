"""Figures a test reports (cases fuzzed, kills survived, requests served), shown in pytest's
terminal summary under "dockerlink figures", so that a CI log carries them."""

from __future__ import annotations

from typing import Any

import pytest

_PLUGIN_NAME = "dockerlink-figures"


class _Figures:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("dockerlink figures")
        for line in self.lines:
            terminalreporter.write_line(line)


def report(config: pytest.Config, *lines: str) -> None:
    """Add lines to the terminal summary of this run."""
    plugin = config.pluginmanager.get_plugin(_PLUGIN_NAME)
    if plugin is None:
        plugin = _Figures()
        config.pluginmanager.register(plugin, _PLUGIN_NAME)
    assert isinstance(plugin, _Figures)
    plugin.lines.extend(lines)
