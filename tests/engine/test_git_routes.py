"""The git routes against the real test engine, in containers created through the API.

Repositories, commits and remotes are set up inside the container with ``docker exec`` as
``admin`` (the test image's user, whose ~/.gitconfig has a name, an e-mail and
``init.defaultBranch = main``); the routes are then checked against what git in the container says.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from typing import Any

import httpx
import pytest

from docker_api import DockerClient
from dockerlink.git import BRANCH_FORMAT
from dockerlink.settings import Settings
from tests import conftest
from tests.conftest import TEST_IMAGE, serve, wait_for
from tests.engine._api import create_and_start

REPO = "/var/www/html"
REMOTE = "/var/www/remote.git"
PORT_AREA = 1000
TEXT = "text/plain; charset=utf-8"


@pytest.fixture
def git_settings(engine_settings: Settings) -> Settings:
    return replace(engine_settings, port_area_size=PORT_AREA)


@pytest.fixture
async def git_api(git_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(git_settings) as client:
        yield client


# -- helpers --------------------------------------------------------------------------------------


async def create_container(
    api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    name: str,
    *,
    start: bool = True,
) -> str:
    """A dockerlink container from the test image (started unless ``start=False``)."""
    if start:
        return await create_and_start(api, docker, cleanup, name)
    return await conftest.create_container(api, docker, cleanup, name)


async def sh(docker: DockerClient, container_id: str, script: str, *, user: str = "admin") -> str:
    """Run a shell script in the container; it must succeed. Its stdout, as text."""
    result = await docker.execs.run(
        container_id, ["sh", "-c", "set -e\n" + script], timeout=120, user=user
    )
    assert result.exit_code == 0, result.text()
    return result.stdout.decode()


async def repo_with_commits(docker: DockerClient, container_id: str, repo: str = REPO) -> str:
    """A repository with two commits on main; the sha of the last one."""
    await sh(
        docker,
        container_id,
        f"""
        cd {repo}
        git init -q
        echo one > index.html && git add index.html && git commit -q -m 'first commit'
        echo two >> index.html && git commit -q -am 'second: ünïcode subject' -m 'the body line'
        git rev-parse HEAD
        """,
    )
    return (await sh(docker, container_id, f"git -C {repo} rev-parse HEAD")).strip()


async def add_remote(docker: DockerClient, container_id: str) -> None:
    """A bare repository as ``origin``, with main pushed and tracked, and ``origin/HEAD`` set."""
    await sh(
        docker,
        container_id,
        f"""
        git init -q --bare {REMOTE}
        cd {REPO}
        git remote add origin {REMOTE}
        git push -q -u origin main
        git remote set-head origin main
        """,
    )


async def head_of(docker: DockerClient, container_id: str, repo: str = REPO) -> tuple[str, str]:
    """(commit sha, current branch) of a repository, read without touching it."""
    out = await sh(docker, container_id, f"git -C {repo} rev-parse HEAD --abbrev-ref HEAD")
    sha, branch = out.split()
    return sha, branch


async def snapshot(docker: DockerClient, container_id: str) -> str:
    """The state a refused request must not change: git's view of the repository, and files."""
    return await sh(
        docker,
        container_id,
        f"""
        export GIT_OPTIONAL_LOCKS=0
        g() {{ git -c safe.directory='*' -C {REPO} "$@"; }}
        g rev-parse HEAD
        g symbolic-ref -q HEAD || echo detached
        g branch -a --format='%(refname) %(objectname) %(symref)'
        g status --porcelain --untracked-files=all
        g stash list
        find /var/www /home/admin /tmp -xdev | sort
        ls -a /
        """,
        user="root",
    )


async def changed_since(docker: DockerClient, container_id: str, stamp: str) -> str:
    """Files and directories modified after ``stamp`` was made."""
    return await sh(
        docker,
        container_id,
        f"find /var/www /home/admin /tmp / -xdev -newer {stamp} 2>/dev/null | sort",
        user="root",
    )


# -- the routes, working --------------------------------------------------------------------------


async def test_init_creates_a_repository(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    cid = await create_container(git_api, docker, cleanup, unique_name("git"))
    check = f"test ! -e {REPO}/.git && test ! -e /var/www/site/.git && mkdir /var/www/site"
    await sh(docker, cid, check)

    # Default directory: the container's working directory.
    answer = await git_api.put("/v1/git", params={"id": cid})
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    inside = await sh(docker, cid, f"cd {REPO} && git rev-parse --is-inside-work-tree --git-dir")
    assert inside.split() == ["true", ".git"]
    owner = await sh(docker, cid, f"stat -c %U {REPO}/.git")
    assert owner.strip() == "admin"  # run as exec_user, not root

    # An explicit path, given in a non-normalized spelling.
    answer = await git_api.put("/v1/git", params={"id": cid, "path": "//var/www/./site/"})
    assert answer.status_code == 204, answer.text
    inside = await sh(docker, cid, "cd /var/www/site && git rev-parse --show-toplevel")
    assert inside.strip() == "/var/www/site"


async def test_head_and_branch_show_the_last_commit_and_current_branch(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    cid = await create_container(git_api, docker, cleanup, unique_name("git"))
    assert (await git_api.put("/v1/git", params={"id": cid})).status_code == 204
    sha = await repo_with_commits(docker, cid)

    head = await git_api.get("/v1/git/head", params={"id": cid})
    assert head.status_code == 200, head.text
    assert head.headers["content-type"] == TEXT
    lines = head.text.splitlines()
    assert lines[0] == f"commit {sha}"
    assert "Author: admin <admin@dockerlink.test>" in lines
    assert "    second: ünïcode subject" in lines  # git's lines kept, not squeezed into one
    assert "    the body line" in lines
    assert "first commit" not in head.text

    branch = await git_api.get("/v1/git/branch", params={"id": cid})
    assert branch.status_code == 200, branch.text
    assert branch.headers["content-type"] == TEXT
    assert branch.text == "main\n"

    await sh(docker, cid, f"cd {REPO} && git checkout -q -b 'feature/ünï'")
    branch = await git_api.get("/v1/git/branch", params={"id": cid, "path": REPO})
    assert branch.text == "feature/ünï\n"


async def test_current_branch_before_the_first_commit_is_the_unborn_branch(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """A fresh ``git init`` answers the branch the first commit will create, not an error."""
    cid = await create_container(git_api, docker, cleanup, unique_name("git"))
    not_yet = await git_api.get("/v1/git/branch", params={"id": cid})
    assert not_yet.status_code == 412
    assert not_yet.text.startswith("fatal: not a git repository")

    assert (await git_api.put("/v1/git", params={"id": cid})).status_code == 204
    branch = await git_api.get("/v1/git/branch", params={"id": cid})
    assert branch.status_code == 200, branch.text
    assert branch.headers["content-type"] == TEXT
    assert branch.text == "main\n"  # admin's init.defaultBranch
    await sh(docker, cid, f"git -C {REPO} symbolic-ref HEAD refs/heads/trunk")
    assert (await git_api.get("/v1/git/branch", params={"id": cid})).text == "trunk\n"

    # After commits, a detached HEAD still answers HEAD, as git rev-parse --abbrev-ref says.
    await sh(docker, cid, f"cd {REPO} && git commit -q --allow-empty -m one")
    assert (await git_api.get("/v1/git/branch", params={"id": cid})).text == "trunk\n"
    await sh(docker, cid, f"git -C {REPO} checkout -q --detach")
    detached = await git_api.get("/v1/git/branch", params={"id": cid})
    assert (detached.status_code, detached.text) == (200, "HEAD\n")


async def test_branches_lists_local_and_remote_tracking_names_cleanly(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    cid = await create_container(git_api, docker, cleanup, unique_name("git"))
    await repo_with_commits(docker, cid)
    await add_remote(docker, cid)
    await sh(
        docker,
        cid,
        f"""
        cd {REPO}
        git branch feature/x && git push -q origin feature/x
        git branch old && git push -q origin old && git branch -q -D old
        git symbolic-ref refs/heads/alias refs/heads/main
        git branch remotes/origin/main
        """,
    )
    # What `git branch -a` shows, for the record: markers, an alias, a HEAD symref, and a
    # local branch whose name is the same as a remote-tracking one.
    plain = await sh(docker, cid, f"git -C {REPO} branch -a")
    assert "* main" in plain
    assert "alias -> main" in plain
    assert "remotes/origin/HEAD -> origin/main" in plain

    expected = [
        "feature/x",
        "main",
        "remotes/origin/main",
        "remotes/origin/feature/x",
        "remotes/origin/old",
    ]
    answer = await git_api.get("/v1/git/branches", params={"id": cid})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == expected

    # The remote changes behind the container's back: a new branch, a deleted one.
    await sh(
        docker,
        cid,
        f"""
        git clone -q {REMOTE} /tmp/other && cd /tmp/other
        git checkout -q -b fresh && git push -q origin fresh
        git push -q origin --delete old
        """,
    )
    answer = await git_api.get("/v1/git/branches", params={"id": cid, "fetch": "false"})
    assert answer.json() == expected  # without fetch, the remote was not asked
    answer = await git_api.get("/v1/git/branches", params={"id": cid, "fetch": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == [
        "feature/x",
        "main",
        "remotes/origin/main",
        "remotes/origin/feature/x",
        "remotes/origin/fresh",
    ]

    # A detached HEAD is no branch.
    await sh(docker, cid, f"git -C {REPO} checkout -q --detach")
    answer = await git_api.get("/v1/git/branches", params={"id": cid})
    assert "(HEAD detached" in await sh(docker, cid, f"git -C {REPO} branch")
    assert answer.json()[:2] == ["feature/x", "main"]
    assert not [name for name in answer.json() if "HEAD" in name or " " in name]


async def test_checkout_switches_branches(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    cid = await create_container(git_api, docker, cleanup, unique_name("git"))
    main_sha = await repo_with_commits(docker, cid)
    await add_remote(docker, cid)
    await sh(
        docker,
        cid,
        f"""
        cd {REPO}
        git checkout -q -b feature/x && echo x > x.txt && git add x.txt && git commit -q -m x
        git checkout -q main
        git clone -q {REMOTE} /tmp/other && cd /tmp/other
        git checkout -q -b only-remote && git commit -q --allow-empty -m r
        git push -q origin only-remote
        cd {REPO} && git fetch -q
        """,
    )
    feature_sha = (await sh(docker, cid, f"git -C {REPO} rev-parse feature/x")).strip()

    answer = await git_api.post("/v1/git/branch", params={"id": cid, "branch": "feature/x"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == TEXT
    assert "Switched to branch 'feature/x'" in answer.text
    assert await head_of(docker, cid) == (feature_sha, "feature/x")
    assert (await git_api.get("/v1/git/branch", params={"id": cid})).text == "feature/x\n"

    # A branch that exists only on the remote: git creates the local one, tracking it.
    answer = await git_api.post("/v1/git/branch", params={"id": cid, "branch": "only-remote"})
    assert answer.status_code == 200, answer.text
    assert "Switched to a new branch 'only-remote'" in answer.text
    upstream = await sh(docker, cid, f"git -C {REPO} rev-parse --abbrev-ref only-remote@{{u}}")
    assert upstream.strip() == "origin/only-remote"

    answer = await git_api.post(
        "/v1/git/branch", params={"id": cid, "branch": "main", "path": REPO + "/"}
    )
    assert answer.status_code == 200, answer.text
    assert await head_of(docker, cid) == (main_sha, "main")


async def test_pull_brings_a_commit_pushed_to_the_remote(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    cid = await create_container(git_api, docker, cleanup, unique_name("git"))
    before = await repo_with_commits(docker, cid)
    await add_remote(docker, cid)
    pushed = await sh(
        docker,
        cid,
        f"""
        git clone -q {REMOTE} /tmp/other && cd /tmp/other
        echo pushed > pushed.txt && git add pushed.txt && git commit -q -m 'pushed elsewhere'
        git push -q origin main
        git rev-parse HEAD
        """,
    )
    assert await head_of(docker, cid) == (before, "main")

    answer = await git_api.get("/v1/git", params={"id": cid})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == TEXT
    assert "Fast-forward" in answer.text
    assert "pushed.txt" in answer.text
    assert await head_of(docker, cid) == (pushed.strip(), "main")
    assert (await sh(docker, cid, f"cat {REPO}/pushed.txt")) == "pushed\n"

    again = await git_api.get("/v1/git", params={"id": cid})
    assert again.status_code == 200, again.text
    assert again.text == "Already up to date.\n"


# -- large output ---------------------------------------------------------------------------------


async def test_exec_keeps_each_stream_whole_and_in_order_over_many_frames(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """docker_api's exec: > 1 MiB on stdout and on stderr at once, written concurrently."""
    cid = await create_container(git_api, docker, cleanup, unique_name("git"))
    count = 150_000
    script = f"seq 1 {count} | sed 's/^/out-/' & seq 1 {count} | sed 's/^/err-/' >&2; wait"
    result = await docker.execs.run(cid, ["sh", "-c", script], timeout=120, user="admin")
    expected_out = "".join(f"out-{i}\n" for i in range(1, count + 1)).encode()
    expected_err = "".join(f"err-{i}\n" for i in range(1, count + 1)).encode()
    assert len(expected_out) > 1 << 20
    assert len(expected_err) > 1 << 20
    assert result.exit_code == 0
    assert result.stdout == expected_out
    assert result.stderr == expected_err
    assert len(result.output) == len(expected_out) + len(expected_err)


async def large_output_repo(docker: DockerClient, cid: str, count: int = 120_000) -> None:
    """A commit message of ``count`` lines (> 1 MiB) and a post-checkout hook that prints
    60,000 lines on stdout and on stderr (> 1 MiB in all); branch ``other`` to check out."""
    await sh(
        docker,
        cid,
        f"""
        cd {REPO}
        git init -q
        seq 1 {count} | sed 's/^/line-/' > /tmp/message
        git commit -q --allow-empty -F /tmp/message
        git branch other
        cat > .git/hooks/post-checkout <<'EOF'
#!/bin/sh
i=1
while [ $i -le 60000 ]; do echo "hook-out-$i"; echo "hook-err-$i" >&2; i=$((i+1)); done
EOF
        chmod +x .git/hooks/post-checkout
        """,
    )


async def test_route_returns_large_output_whole_and_in_order(
    git_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """With git_output_limit raised above it, output of more than 1 MiB comes back whole."""
    async with serve(replace(git_settings, git_output_limit=8 << 20)) as git_api:
        await _large_output_whole_and_in_order(git_api, docker, cleanup, unique_name("git"))


async def _large_output_whole_and_in_order(
    git_api: httpx.AsyncClient, docker: DockerClient, cleanup: list[str], name: str
) -> None:
    cid = await create_container(git_api, docker, cleanup, name)
    count = 120_000
    await large_output_repo(docker, cid, count)

    # stdout: a commit message of more than 1 MiB.
    head = await git_api.get("/v1/git/head", params={"id": cid})
    assert head.status_code == 200, head.text[:200]
    assert len(head.content) > 1 << 20
    message = [line for line in head.text.splitlines() if line.startswith("    ")]
    assert message == [f"    line-{i}" for i in range(1, count + 1)]

    # stderr: a hook printing more than 1 MiB (git sends hooks' stdout to its stderr too).
    answer = await git_api.post("/v1/git/branch", params={"id": cid, "branch": "other"})
    assert answer.status_code == 200, answer.text[:200]
    assert len(answer.content) > 1 << 20
    lines = answer.text.splitlines()
    assert [x for x in lines if x.startswith("hook-out-")] == [
        f"hook-out-{i}" for i in range(1, 60_001)
    ]
    assert [x for x in lines if x.startswith("hook-err-")] == [
        f"hook-err-{i}" for i in range(1, 60_001)
    ]
    assert "Switched to branch 'other'" in lines
    assert len(lines) == 120_001


async def test_route_cuts_output_at_git_output_limit_and_says_how_much_was_dropped(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """With the default git_output_limit (1 MiB), the answer is git's first MiB and a line
    saying how many bytes were read and dropped."""
    limit = Settings().git_output_limit
    assert limit == 1 << 20
    cid = await create_container(git_api, docker, cleanup, unique_name("git"))
    await large_output_repo(docker, cid)
    full = (await sh(docker, cid, f"git -C {REPO} --no-pager log -1")).encode()
    assert len(full) > limit

    head = await git_api.get("/v1/git/head", params={"id": cid})
    assert head.status_code == 200, head.text[:200]
    dropped = f"[{len(full) - limit} more bytes of output dropped (git_output_limit)]\n"
    assert head.content == full[:limit] + b"\n" + dropped.encode()

    # Both streams of a hook, over the limit together: cut too, and the checkout still done.
    answer = await git_api.post("/v1/git/branch", params={"id": cid, "branch": "other"})
    assert answer.status_code == 200, answer.text[:200]
    hook_lines = [f"hook-{kind}-{i}\n" for i in range(1, 60_001) for kind in ("out", "err")]
    printed = sum(len(line) for line in hook_lines) + len("Switched to branch 'other'\n")
    note = f"[{printed - limit} more bytes of output dropped (git_output_limit)]\n".encode()
    assert answer.content.endswith(note)
    assert len(answer.content) - len(note) in {limit, limit + 1}  # + "\n" unless cut at one
    assert (await head_of(docker, cid))[1] == "other"


async def test_timed_out_git_output_is_cut_at_git_output_limit(
    git_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """The 504 of a hanging git keeps at most git_output_limit of what it printed."""
    limit = 64 << 10
    async with serve(replace(git_settings, git_timeout=3, git_output_limit=limit)) as api:
        cid = await create_container(api, docker, cleanup, unique_name("git"))
        await repo_with_commits(docker, cid)
        await sh(docker, cid, f"git -C {REPO} remote add origin {REMOTE}")
        await sh(
            docker,
            cid,
            f"git -C {REPO} config remote.origin.uploadpack "
            "'head -c 262144 /dev/zero | tr \"\\0\" x >&2; exec sleep 4321 #'",
        )
        answer = await api.get("/v1/git", params={"id": cid})
        assert answer.status_code == 504, answer.text[:200]
        assert answer.text.startswith(
            "git pull did not finish within 3 s (git_timeout); output so far: xxx"
        )
        match = re.search(
            r"; \[(\d+) more bytes of output dropped \(git_output_limit\)\]$", answer.text
        )
        assert match is not None, answer.text[-200:]
        assert int(match.group(1)) >= 262144 - limit
        assert limit - 100 <= answer.text.count("x") <= limit


# -- failures and refusals ------------------------------------------------------------------------


async def test_git_failure_answers_412_with_gits_message(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    cid = await create_container(git_api, docker, cleanup, unique_name("git"))

    # Not a repository yet.
    answer = await git_api.get("/v1/git/head", params={"id": cid})
    assert answer.status_code == 412
    assert answer.headers["content-type"] == TEXT
    assert answer.text.startswith("fatal: not a git repository")
    # A directory that does not exist: git says so.
    answer = await git_api.put("/v1/git", params={"id": cid, "path": "/nowhere/repo"})
    assert answer.status_code == 412
    assert answer.text == "fatal: cannot change to '/nowhere/repo': No such file or directory\n"
    # A directory exec_user may not write to.
    answer = await git_api.put("/v1/git", params={"id": cid, "path": "/root"})
    assert answer.status_code == 412
    assert "Permission denied" in answer.text

    # A repository without commits.
    assert (await git_api.put("/v1/git", params={"id": cid})).status_code == 204
    answer = await git_api.get("/v1/git/head", params={"id": cid})
    assert answer.status_code == 412
    assert "does not have any commits yet" in answer.text

    # A branch that does not exist: git refuses, nothing changes.
    sha = await repo_with_commits(docker, cid)
    before = await snapshot(docker, cid)
    answer = await git_api.post("/v1/git/branch", params={"id": cid, "branch": "nope"})
    assert answer.status_code == 412
    assert answer.text == "fatal: invalid reference: nope\n"
    assert await snapshot(docker, cid) == before
    assert await head_of(docker, cid) == (sha, "main")

    # A pull with nothing to pull from.
    answer = await git_api.get("/v1/git", params={"id": cid})
    assert answer.status_code == 412
    assert "There is no tracking information for the current branch." in answer.text
    assert await head_of(docker, cid) == (sha, "main")

    # fetch=true: a fetch that fails answers 412 with its message.
    answer = await git_api.get("/v1/git/branches", params={"id": cid, "fetch": "true"})
    assert answer.status_code == 200  # no remote: fetch --all has nothing to do
    assert answer.json() == ["main"]
    await sh(docker, cid, f"cd {REPO} && git remote add origin /var/www/missing.git")
    answer = await git_api.get("/v1/git/branches", params={"id": cid, "fetch": "true"})
    assert answer.status_code == 412
    assert "'/var/www/missing.git' does not appear to be a git repository" in answer.text


REFUSALS: list[tuple[str, str, dict[str, str | None], str]] = [
    # Each of these would change the repository if it reached git.
    ("POST", "/v1/git/branch", {"branch": "--orphan=evil"}, "branch may not start with -\n"),
    ("POST", "/v1/git/branch", {"branch": "-bevil"}, "branch may not start with -\n"),
    ("POST", "/v1/git/branch", {"branch": "HEAD~1"}, "branch is not a valid branch name: "),
    ("POST", "/v1/git/branch", {"branch": "main@{1}"}, "branch is not a valid branch name: "),
    ("POST", "/v1/git/branch", {"branch": "feature/x..y"}, "branch is not a valid branch name: "),
    ("POST", "/v1/git/branch", {"branch": "feature/x "}, "branch is not a valid branch name: "),
    ("POST", "/v1/git/branch", {"branch": "x.lock"}, "branch is not a valid branch name: "),
    ("POST", "/v1/git/branch", {}, "branch is required\n"),
    ("POST", "/v1/git/branch", {"branch": "feature/x", "path": "var/www/html"}, "path must be"),
    ("PUT", "/v1/git", {"path": "var/www/evil"}, "path must be absolute (start with /)\n"),
    ("PUT", "/v1/git", {"path": "/var/www/html/../evil"}, "path may not contain .. components\n"),
    ("PUT", "/v1/git", {"path": "/var/www/evil\0x"}, "path may not contain NUL bytes\n"),
    ("PUT", "/v1/git", {"path": "/var/www/" + "e" * 4096}, "path is longer than 4096 bytes\n"),
    ("GET", "/v1/git", {"path": "html"}, "path must be absolute (start with /)\n"),
    ("GET", "/v1/git/branches", {"fetch": "yes please"}, "fetch must be true or false\n"),
    ("PUT", "/v1/git", {"id": None}, "id is required\n"),
    ("PUT", "/v1/git", {"id": "../x"}, "id is not a container id or name\n"),
]


async def test_refused_requests_change_nothing(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    cid = await create_container(git_api, docker, cleanup, unique_name("git"))
    await repo_with_commits(docker, cid)
    await add_remote(docker, cid)
    await sh(docker, cid, f"git -C {REPO} branch feature/x")
    stamp = "/tmp/.before-refusals"
    await sh(docker, cid, f"touch {stamp}", user="root")
    before = await snapshot(docker, cid)

    for method, route, params, answer in REFUSALS:
        query = {"id": cid, **params}
        sent = {key: value for key, value in query.items() if value is not None}
        response = await git_api.request(method, route, params=sent)
        case = (method, route, params, response.text)
        assert response.status_code == 400, case
        assert response.headers["content-type"] == TEXT, case
        assert response.text.startswith(answer), case
        assert response.text.endswith("\n"), case

    assert await snapshot(docker, cid) == before
    assert await changed_since(docker, cid, stamp) == ""


async def test_stopped_container_answers_409_and_is_left_alone(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    created = await create_container(git_api, docker, cleanup, unique_name("git"), start=False)
    answer = await git_api.put("/v1/git", params={"id": created})
    assert answer.status_code == 409
    assert answer.text == "container is not running\n"
    assert (await docker.containers.inspect(created))["State"]["Status"] == "created"

    cid = await create_container(git_api, docker, cleanup, unique_name("git"))
    await repo_with_commits(docker, cid)
    await sh(docker, cid, f"git -C {REPO} branch feature/x")
    before = await snapshot(docker, cid)
    stopped = await git_api.post("/v1/container/stop", params={"id": cid, "t": "0"})
    assert stopped.status_code == 204, stopped.text
    for method, route, params in [
        ("POST", "/v1/git/branch", {"branch": "feature/x"}),
        ("GET", "/v1/git", {}),
        ("PUT", "/v1/git", {"path": "/var/www/new"}),
        ("GET", "/v1/git/head", {}),
        ("GET", "/v1/git/branch", {}),
        ("GET", "/v1/git/branches", {"fetch": "true"}),
    ]:
        answer = await git_api.request(method, route, params={"id": cid, **params})
        assert answer.status_code == 409, (route, answer.text)
        assert answer.text == "container is not running\n"
    assert (await docker.containers.inspect(cid))["State"]["Running"] is False
    started = await git_api.post("/v1/container/start", params={"id": cid})
    assert started.status_code == 204, started.text
    assert await snapshot(docker, cid) == before


async def test_foreign_and_unknown_containers_are_refused(
    git_api: httpx.AsyncClient,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name("foreign")
    await docker.containers.create(
        {"Image": TEST_IMAGE, "Cmd": ["/usr/sbin/sshd", "-D"], "WorkingDir": REPO}, name=name
    )
    cleanup.append(name)
    for state in ("created", "running"):
        if state == "running":
            assert await docker.containers.start(name)
        for method, route, params in [
            ("PUT", "/v1/git", {}),
            ("POST", "/v1/git/branch", {"branch": "main"}),
            ("GET", "/v1/git/head", {}),
        ]:
            answer = await git_api.request(method, route, params={"id": name, **params})
            assert answer.status_code == 412, (state, route, answer.text)
            assert answer.text == "this docker has not been created with dockerlink\n"
    missing = await docker.execs.run(name, ["sh", "-c", f"test ! -e {REPO}/.git"], timeout=30)
    assert missing.exit_code == 0, "PUT /v1/git initialized a repository in a foreign container"

    unknown = unique_name("nobody")
    answer = await git_api.get("/v1/git/head", params={"id": unknown})
    assert answer.status_code == 404
    assert answer.text == f"no such container: {unknown}\n"


async def add_hanging_remote(docker: DockerClient, cid: str) -> None:
    """An origin whose side never answers (as an unreachable server would), after a word."""
    await add_remote(docker, cid)
    await sh(
        docker,
        cid,
        f"git -C {REPO} config remote.origin.uploadpack "
        "'echo partial-output-marker >&2; exec sleep 4321 #'",
    )


async def once_hanging(
    docker: DockerClient, cid: str, pull: Coroutine[Any, Any, httpx.Response]
) -> asyncio.Future[httpx.Response]:
    """``pull`` (a request to the hanging remote) sent, once its git hangs in the container."""
    sent = asyncio.ensure_future(pull)

    async def hanging() -> bool:
        return "sleep 4321" in await sh(docker, cid, "ps -o args", user="root")

    await wait_for(hanging, timeout=10)
    return sent


async def test_hanging_git_answers_504_with_its_output_and_is_stopped(
    git_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    async with serve(replace(git_settings, git_timeout=3)) as api:
        cid = await create_container(api, docker, cleanup, unique_name("git"))
        sha = await repo_with_commits(docker, cid)
        await add_hanging_remote(docker, cid)

        began = time.monotonic()
        answer = await api.get("/v1/git", params={"id": cid})
        elapsed = time.monotonic() - began

        assert answer.status_code == 504, answer.text
        assert answer.headers["content-type"] == TEXT
        assert answer.text.startswith(
            "git pull did not finish within 3 s (git_timeout); output so far: "
        )
        assert "partial-output-marker" in answer.text
        assert 3 <= elapsed < 15

        async def hung_process_gone() -> bool:
            listing = await sh(docker, cid, "ps -o args", user="root")
            return "sleep 4321" not in listing

        await wait_for(hung_process_gone, timeout=10)

        # The repository and the container's lock are free again.
        head = await api.get("/v1/git/head", params={"id": cid})
        assert head.status_code == 200, head.text
        assert head.text.startswith(f"commit {sha}\n")
        assert await head_of(docker, cid) == (sha, "main")


async def test_reads_do_not_wait_behind_a_hanging_pull_but_writes_do(
    git_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    async with serve(replace(git_settings, git_timeout=6)) as api:
        cid = await create_container(api, docker, cleanup, unique_name("git"))
        sha = await repo_with_commits(docker, cid)
        await add_hanging_remote(docker, cid)
        finished: list[str] = []

        async def call(label: str, method: str, path: str, **params: str) -> httpx.Response:
            response = await api.request(method, path, params={"id": cid, **params})
            finished.append(label)
            return response

        pull = await once_hanging(docker, cid, call("pull", "GET", "/v1/git"))
        checkout = asyncio.ensure_future(call("checkout", "POST", "/v1/git/branch", branch="main"))
        head = await call("head", "GET", "/v1/git/head")
        branch = await call("branch", "GET", "/v1/git/branch")
        listing = await call("branches", "GET", "/v1/git/branches")
        assert head.status_code == 200, head.text
        assert head.text.startswith(f"commit {sha}\n")
        assert (branch.status_code, branch.text) == (200, "main\n")
        assert listing.status_code == 200, listing.text
        assert (await pull).status_code == 504
        assert (await checkout).status_code == 200
        # The reads answered while the pull held the repository; the checkout waited for it.
        assert finished == ["head", "branch", "branches", "pull", "checkout"]


async def test_a_stop_does_not_wait_behind_git_and_the_pull_it_ends_answers_409(
    git_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """Git has a lock of its own: an operator's stop is not queued behind a hanging pull. The
    pull the stop ends is told the container is not running, not that git failed."""
    async with serve(replace(git_settings, git_timeout=30)) as api:
        cid = await create_container(api, docker, cleanup, unique_name("git"))
        await repo_with_commits(docker, cid)
        await add_hanging_remote(docker, cid)
        pull = await once_hanging(docker, cid, api.get("/v1/git", params={"id": cid}))
        began = time.monotonic()
        stop = await api.post("/v1/container/stop", params={"id": cid, "t": "0"})
        assert stop.status_code == 204, stop.text
        assert time.monotonic() - began < 15  # not the pull's 30 s
        answer = await pull
        assert (answer.status_code, answer.text) == (409, "container is not running\n")


async def test_a_pull_whose_client_left_keeps_the_repository_until_it_ends(
    git_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """The client's leaving does not free the lock while git runs on: a checkout sent next
    waits until the pull has timed out and been stopped, then runs alone."""
    async with serve(replace(git_settings, git_timeout=4)) as api:
        cid = await create_container(api, docker, cleanup, unique_name("git"))
        await repo_with_commits(docker, cid)
        await add_hanging_remote(docker, cid)
        began = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await api.get("/v1/git", params={"id": cid}, timeout=1.5)
        checkout = await api.post("/v1/git/branch", params={"id": cid, "branch": "main"})
        assert checkout.status_code == 200, checkout.text
        assert time.monotonic() - began >= 4  # after the pull's git_timeout
        listing = await sh(docker, cid, "ps -o args", user="root")
        assert "sleep 4321" not in listing  # the abandoned pull was stopped first


async def test_a_write_waits_for_the_repository_at_most_git_timeout(
    git_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """Writes queue one at a time, each waiting at most git_timeout: behind two hanging pulls
    (about 2 x git_timeout of work), a third answers 409 once its wait runs out."""
    async with serve(replace(git_settings, git_timeout=3)) as api:
        cid = await create_container(api, docker, cleanup, unique_name("git"))
        await repo_with_commits(docker, cid)
        await add_hanging_remote(docker, cid)
        first = await once_hanging(docker, cid, api.get("/v1/git", params={"id": cid}))
        second = asyncio.ensure_future(api.get("/v1/git", params={"id": cid}))
        await asyncio.sleep(0.2)
        began = time.monotonic()
        third = await api.post("/v1/git/branch", params={"id": cid, "branch": "main"})
        assert (third.status_code, third.text) == (
            409,
            "another git command in this container held its repository for 3 s "
            "(git_timeout); try again\n",
        )
        assert 3 <= time.monotonic() - began < 10
        assert (await first).status_code == 504
        assert (await second).status_code in {504, 409}


async def test_a_branch_list_over_git_output_limit_is_refused_not_cut(
    git_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
) -> None:
    """A JSON list cut short would leave branches out without a word: 412, saying why."""
    async with serve(replace(git_settings, git_output_limit=4096)) as api:
        cid = await create_container(api, docker, cleanup, unique_name("git"))
        await repo_with_commits(docker, cid)
        names = [f"feature/branch-number-{i:04d}" for i in range(200)]
        await sh(docker, cid, f"cd {REPO} && for b in {' '.join(names)}; do git branch $b; done")
        listing = await sh(docker, cid, f"git -C {REPO} branch -a '{BRANCH_FORMAT}'")
        answer = await api.get("/v1/git/branches", params={"id": cid})
        dropped = len(listing.encode()) - 4096
        assert (answer.status_code, answer.text) == (
            412,
            "the branch list is longer than git_output_limit (4096 bytes): "
            f"[{dropped} more bytes of output dropped (git_output_limit)]\n",
        )
