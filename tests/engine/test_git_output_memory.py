"""A tenant's git printing 200 MiB cannot grow a real ``dockerlink serve`` by more than a bound.

The tenant is root in its container and controls the repository's hooks, so the size of git's
output is theirs to choose; dockerlink keeps ``git_output_limit`` (1 MiB) of it and drops the rest.
The figure is the process's peak resident set (``VmHWM`` in ``/proc/<pid>/status``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from docker_api import DockerClient
from tests.conftest import TEST_IMAGE, create_container
from tests.dockerlink_process import DockerlinkProcess

REPO = "/var/www/html"
PRINTED = 200 << 20
LIMIT = 1 << 20
#: Far less than the output (three copies of it made the daemon grow by over 600 MiB).
MAX_GROWTH = 40 << 20


async def test_200_mib_of_git_output_leaves_peak_rss_bounded(
    engine_sock: str,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    process = DockerlinkProcess(
        tmp_path,
        {
            "docker_sock": engine_sock,
            "base_image": TEST_IMAGE,
            "data_dir": str(tmp_path / "data"),
            "git_timeout": "120",
        },
    )
    process.start()
    try:
        await process.until_healthy()
        async with httpx.AsyncClient(base_url=process.url, timeout=150) as api:
            cid = await create_container(api, docker, cleanup, unique_name("gitmem"))
            assert (await api.post("/v1/container/start", params={"id": cid})).status_code == 204
            setup = await docker.execs.run(
                cid,
                [
                    "sh",
                    "-c",
                    f"""set -e
                    cd {REPO}
                    git init -q
                    git commit -q --allow-empty -m first
                    git branch other
                    printf '#!/bin/sh\\nhead -c {PRINTED} /dev/zero | tr "\\\\0" x\\n' \
                        > .git/hooks/post-checkout
                    chmod +x .git/hooks/post-checkout
                    """,
                ],
                timeout=30,
                user="admin",
            )
            assert setup.exit_code == 0, setup.text()
            # Warm up (imports, connection pools, the first git answer), then measure.
            warm = await api.get("/v1/git/head", params={"id": cid})
            assert warm.status_code == 200, warm.text
            process.reset_peak_rss()
            before = process.peak_rss_kib() * 1024

            answer = await api.post("/v1/git/branch", params={"id": cid, "branch": "other"})

            after = process.peak_rss_kib() * 1024
        assert answer.status_code == 200, answer.text[:200]
        growth = after - before
        print(f"peak RSS {before >> 20} MiB -> {after >> 20} MiB for {PRINTED >> 20} MiB of output")
        assert growth < MAX_GROWTH, f"peak RSS grew by {growth >> 20} MiB"
        printed = PRINTED + len("Switched to branch 'other'\n")
        note = f"[{printed - LIMIT} more bytes of output dropped (git_output_limit)]\n"
        assert answer.text.endswith(note)
        assert len(answer.content) == LIMIT + 1 + len(note)  # cut inside the x's: "\n" added
    finally:
        process.stop()
