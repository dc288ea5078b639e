"""Validation of the git routes' parameters, and the parsing of git's branch listing (no engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import docker_api
from dockerlink.errors import BadRequest, engine_error_answer
from dockerlink.git import branch_names, default_workdir, git_command
from dockerlink.requests import parse_branch, parse_git_path

# -- path -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ("", None),
        ("/", "/"),
        ("/var/www/html", "/var/www/html"),
        ("/var/www/html/", "/var/www/html"),
        ("//var//www/./html/.", "/var/www/html"),
        ("/srv/sité web", "/srv/sité web"),
        ("/a/..b/c..", "/a/..b/c.."),
    ],
)
def test_path_accepted_and_normalized(given: str | None, expected: str | None) -> None:
    assert parse_git_path(given) == expected


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("var/www/html", "absolute"),
        ("./html", "absolute"),
        ("~/html", "absolute"),
        ("-C/tmp", "absolute"),
        ("/var/www\0/html", "NUL"),
        ("\0", "NUL"),
        ("/var/www/../../etc", ".."),
        ("/..", ".."),
        ("/var/www/html/..", ".."),
        ("/" + "a" * 4096, "longer than 4096 bytes"),
        ("/" + "é" * 2048, "longer than 4096 bytes"),
        ("/bad\udc80surrogate", "UTF-8"),
    ],
)
def test_path_refused_naming_the_parameter(given: str, problem: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_git_path(given)
    assert caught.value.message.startswith("path ")
    assert problem in caught.value.message


def test_path_of_4096_bytes_is_accepted() -> None:
    path = "/" + "a" * 4095
    assert parse_git_path(path) == path


# -- branch ---------------------------------------------------------------------------------------

VALID_BRANCHES = [
    "main",
    "feature/login",
    "v1.2.3",
    "a",
    "fix-42_b",
    "x@y",
    "deep/nested/name",
    "ünïcode",
    "remotes/origin/main",
    "a.b",
    "lock",
    "x.locked",
    "a-",
    "@x",
    "b" * 255,
]

INVALID_BRANCHES = [
    "a..b",
    "..",
    "a b",
    " lead",
    "tab\there",
    "nl\nx",
    "ctrl\x01",
    "del\x7f",
    "x~1",
    "x^",
    "a:b",
    "what?",
    "glob*",
    "br[a",
    "back\\slash",
    "trail/",
    "/lead",
    "a//b",
    "dot.",
    "a/.hidden",
    ".hidden",
    "x.lock",
    "a/b.lock/c",
    "a@{1}",
    "@{-1}",
    "@",
    "HEAD",
    "a/./b",
    "a/../b",
]


@pytest.mark.parametrize("name", VALID_BRANCHES)
def test_branch_accepted(name: str) -> None:
    assert parse_branch(name) == name


@pytest.mark.parametrize("name", INVALID_BRANCHES)
def test_branch_refused_naming_the_parameter(name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_branch(name)
    assert caught.value.message.startswith("branch is not a valid branch name: ")


@pytest.mark.parametrize("name", ["-b", "--orphan=x", "-", "--", "-f"])
def test_branch_starting_with_dash_refused(name: str) -> None:
    with pytest.raises(BadRequest, match=r"^branch may not start with -$"):
        parse_branch(name)


@pytest.mark.parametrize("name", [None, ""])
def test_branch_required(name: str | None) -> None:
    with pytest.raises(BadRequest, match=r"^branch is required$"):
        parse_branch(name)


def test_branch_too_long_refused() -> None:
    with pytest.raises(BadRequest, match="longer than 255 bytes"):
        parse_branch("b" * 256)
    with pytest.raises(BadRequest, match="longer than 255 bytes"):
        parse_branch("é" * 128)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed here")
@pytest.mark.parametrize("name", [n for n in VALID_BRANCHES + INVALID_BRANCHES if "@" not in n])
def test_branch_rules_agree_with_git(name: str, tmp_path: Path) -> None:
    """Our Python rules say what ``git check-ref-format --branch`` says (run outside any repo).

    Names with ``@`` are left out: git expands ``@`` and ``@{-N}`` before checking (in a repo),
    and dockerlink refuses those on purpose.
    """
    git = subprocess.run(
        ["git", "check-ref-format", "--branch", name],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)},
    )
    try:
        parse_branch(name)
        ours = True
    except BadRequest:
        ours = False
    assert ours == (git.returncode == 0), git.stderr


# -- branch listing -------------------------------------------------------------------------------


def test_branch_names_locals_then_remotes_without_aliases() -> None:
    listing = (
        "(HEAD detached at 43d8335)\t\n"
        "refs/heads/alias\trefs/heads/main\n"
        "refs/heads/feature/x\t\n"
        "refs/heads/main\t\n"
        "refs/remotes/origin/HEAD\trefs/remotes/origin/main\n"
        "refs/remotes/origin/feature/x\t\n"
        "refs/remotes/origin/main\t\n"
        "refs/remotes/up/stream/dev\t\n"
    )
    assert branch_names(listing) == [
        "feature/x",
        "main",
        "remotes/origin/feature/x",
        "remotes/origin/main",
        "remotes/up/stream/dev",
    ]


def test_branch_names_dedupes_keeping_the_first() -> None:
    # A local branch literally named "remotes/origin/main" has the remote-tracking one's name.
    listing = (
        "refs/heads/main\t\n"
        "refs/heads/remotes/origin/main\t\n"
        "refs/remotes/origin/main\t\n"
        "refs/heads/main\t\n"
    )
    assert branch_names(listing) == ["main", "remotes/origin/main"]


def test_branch_names_ignores_noise() -> None:
    listing = "\n\n(no branch)\t\nrefs/tags/v1\t\nrefs/remotes/lonely\t\nrefs/heads/ok\t\r\n"
    assert branch_names(listing) == ["ok"]
    assert branch_names("") == []


# -- the command, the default directory, the timeout answer ----------------------------------------


def test_git_command_runs_in_the_directory_and_never_pages() -> None:
    argv = git_command("/var/www/html", ["checkout", "main", "--"])
    assert argv[0] == "git"
    assert argv[argv.index("-C") + 1] == "/var/www/html"
    assert argv[-3:] == ["checkout", "main", "--"]
    assert "--no-pager" in argv
    assert "core.quotepath=off" in argv


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"Config": {"WorkingDir": "/var/www/html"}}, "/var/www/html"),
        ({"Config": {"WorkingDir": ""}}, "/"),
        ({"Config": {}}, "/"),
        ({}, "/"),
        ({"Config": {"WorkingDir": "relative"}}, "/"),
    ],
)
def test_default_workdir(info: dict[str, object], expected: str) -> None:
    assert default_workdir(info) == expected


def test_exec_timeout_answer_carries_the_output_so_far() -> None:
    exc = docker_api.ExecTimeout("git did not finish within 2 s", b"Fetching origin\nhalf \xff")
    status, message = engine_error_answer(exc)
    assert status == 504
    assert message == "git did not finish within 2 s; output so far: Fetching origin half \ufffd"
    status, message = engine_error_answer(docker_api.ExecTimeout("git did not finish", b""))
    assert (status, message) == (504, "git did not finish; it printed nothing")
