"""deploy/dockerlink.service: systemd accepts it, and it says what the deployment guide promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import REPO

UNIT = REPO / "deploy" / "dockerlink.service"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """``{section: [(key, value), ...]}``, keys repeated as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"directive outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line}"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for k, value in section if k == key]


def words(section: list[tuple[str, str]], key: str) -> set[str]:
    return {word for value in values(section, key) for word in value.split()}


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text())


def test_it_starts_after_and_with_the_engine(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert {"docker.service", "docker.socket"} <= words(unit["Unit"], "After")
    assert "docker.service" in words(unit["Unit"], "Requires")
    assert values(unit["Install"], "WantedBy") == ["multi-user.target"]


def test_it_serves_and_restarts_on_failure(unit: dict[str, list[tuple[str, str]]]) -> None:
    service = unit["Service"]
    assert values(service, "ExecStart") == ["/usr/local/bin/dockerlink serve"]
    assert values(service, "Restart") == ["on-failure"]
    assert values(service, "EnvironmentFile") == ["/etc/dockerlink/env"]
    assert values(service, "StateDirectory") == ["dockerlink"]
    # data_dir's default (./data) lands in the state directory
    assert values(service, "WorkingDirectory") == ["/var/lib/dockerlink"]


def test_it_runs_unprivileged_with_only_the_socket_and_its_data(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    service = unit["Service"]
    expected = {
        "User": "dockerlink",
        "SupplementaryGroups": "docker",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
    }
    for key, value in expected.items():
        assert values(service, key) == [value], key
    assert values(service, "SystemCallFilter")[0] == "@system-service"
    assert values(service, "ReadWritePaths") == []  # StateDirectory= is the only writable place


def test_it_lets_the_stats_sampler_see_the_containers_processes(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    # The cgroup stats source reads /proc/<pid>/{cgroup,net/dev} of every container's init,
    # which belongs to another user: invisible/noaccess/ptraceable would hide it.
    service = unit["Service"]
    assert values(service, "ProtectProc") in ([], ["default"])
    assert values(service, "ProcSubset") in ([], ["all"])
    # ... and the rest of the sandbox stays
    assert values(service, "ProtectKernelTunables") == ["yes"]
    assert values(service, "ProtectControlGroups") == ["yes"]  # read-only is enough to read


def test_systemd_accepts_it(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the directives are checked above)")
    # verify also checks that ExecStart= is executable: point it at one that exists
    stand_in = tmp_path / "dockerlink"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    text = UNIT.read_text().replace("/usr/local/bin/dockerlink", str(stand_in))
    (tmp_path / "dockerlink.service").write_text(text)
    result = subprocess.run(
        [analyze, "verify", "--man=no", "./dockerlink.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # unknown or malformed directives are warnings on stderr: none are allowed
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    broken = UNIT.read_text().replace("ProtectHome=yes", "ProtectHome=perhaps")
    broken = broken.replace("/usr/local/bin/dockerlink", "/bin/true")
    (tmp_path / "dockerlink.service").write_text(broken)
    result = subprocess.run(
        [analyze, "verify", "--man=no", "./dockerlink.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Failed to parse protect home value, ignoring: perhaps" in result.stderr
