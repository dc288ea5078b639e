"""The dashboard at ``/`` driven in Debian's headless Chromium (Playwright, no browser download).

Two containers run through the API (one serves a file, the other fetches it every second and
holds memory; one burns CPU under its limit), then the page is opened: it asks for the token,
refuses a wrong one, lists both containers with a memory, CPU and network chart that each have
data, switches scale and refreshes itself. The screenshot goes to a temporary folder, or to
``docs/dashboard.png`` with ``DOCKERLINK_SAVE_SCREENSHOT=1`` (how the committed one was made).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, ViewportSize, async_playwright

from docker_api import DockerClient, NotFound
from dockerlink.settings import Settings

from ..conftest import REPO, TEST_TOKEN, engine_required, serve_app, wait_for
from ..summary import report
from ._api import create_and_start

CHROMIUM = Path(os.environ.get("DOCKERLINK_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
#: Each chart of every card: its kind, how many points it has, and each drawn path.
CHARTS_JS = """cards => cards.map(card => ({
  id: card.dataset.id,
  state: card.dataset.state,
  charts: [...card.querySelectorAll("figure.chart")].map(figure => ({
    kind: figure.dataset.kind,
    points: Number(figure.dataset.points),
    paths: [...figure.querySelectorAll("path")].map(path => ({
      series: path.dataset.series, points: Number(path.dataset.points), d: path.getAttribute("d"),
    })),
  })),
}))"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"no {CHROMIUM} (Debian's chromium; scripts/test installs it)"
        if engine_required():
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def charts_of(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.eval_on_selector_all("article.card", CHARTS_JS)
    return result


def assert_drawn(cards: list[dict[str, Any]], ids: set[str], min_points: int) -> None:
    """Every card of ``ids`` has its three charts with at least ``min_points`` points drawn."""
    assert {card["id"] for card in cards} >= ids
    for card in cards:
        if card["id"] not in ids:
            continue
        assert [chart["kind"] for chart in card["charts"]] == ["memory", "cpu", "network"], card
        for chart in card["charts"]:
            assert chart["points"] >= min_points, (card["id"], chart)
            assert chart["paths"], (card["id"], chart)
            for path in chart["paths"]:
                assert path["points"] == chart["points"], path
                assert path["d"].startswith("M"), path
                if chart["points"] > 1:  # a line through every point
                    assert path["d"].count("L") == chart["points"] - 1, path


async def two_cards(page: Page) -> bool:
    return await page.locator("article.card").count() == 2


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


async def test_the_dashboard_asks_for_the_token_and_charts_every_container(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    browser: Browser,
    tmp_path: Path,
) -> None:
    settings = replace(engine_settings, api_token=TEST_TOKEN)
    async with serve_app(settings) as (_app, client):
        base = unique_name("dash")  # the page's name filter shows these two alone
        web_name, shop_name = f"{base}-web", f"{base}-shop"
        web = await create_and_start(
            client,
            docker,
            cleanup,
            web_name,
            memory=0.25,
            cpulimit=0.5,
            commands=[
                "mkdir -p /tmp/www",
                "dd if=/dev/zero of=/tmp/www/blob bs=64k count=4",
                "httpd -p 8080 -h /tmp/www",
                "dd if=/dev/zero of=/dev/shm/fill bs=1M count=24",
                "{ while :; do :; done & }",
            ],
        )
        info = await docker.containers.inspect(web)
        address = next(iter(info["NetworkSettings"]["Networks"].values()))["IPAddress"]
        shop = await create_and_start(
            client,
            docker,
            cleanup,
            shop_name,
            memory=0.5,
            cpulimit=1,
            commands=[
                "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64",
                f"{{ while :; do wget -qO /dev/null http://{address}:8080/blob; sleep 1; done & }}",
            ],
        )
        ids = {web, shop}

        # Saving the documentation's screenshot: let the charts have a minute of history.
        save = os.environ.get("DOCKERLINK_SAVE_SCREENSHOT", "") not in {"", "0"}
        history = 60 if save else 5

        async def sampled(container_id: str) -> bool:
            response = await client.get("/v1/container/stats", params={"id": container_id})
            return len(response.json()) >= history

        for container_id in ids:
            await wait_for(partial(sampled, container_id), timeout=30 + history, interval=0.5)

        page = await browser.new_page(viewport=VIEWPORT)
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

        def console(message: ConsoleMessage) -> None:
            # The browser logs each error status the page gets (the 401s, a 404 for a container
            # another test just removed); the page handles them. Anything else is a problem: a
            # script error, or a resource the Content-Security-Policy refused.
            if message.type == "error" and "Failed to load resource" not in message.text:
                problems.append(f"console: {message.text}")

        page.on("console", console)
        await page.goto(f"{client.base_url}/")

        # No token yet: the prompt, and no data.
        await page.wait_for_selector("body[data-status=auth]")
        assert await page.is_visible("#token")
        assert "needs its API token" in (await page.text_content("#auth-message") or "")
        assert await page.locator("article.card").count() == 0

        # A wrong token is refused, and not kept.
        await page.fill("#token", "wrong-token-0123456789")
        await page.press("#token", "Enter")
        # (Waits use selectors or polling from here: the page's policy forbids the eval that
        # Playwright's wait_for_function needs, which is the point of the policy.)
        await page.locator("#auth-message", has_text="refused").wait_for()
        assert await page.evaluate("sessionStorage.getItem('dockerlink.token')") is None
        assert await page.locator("article.card").count() == 0

        # The right one lists both containers, running, with their limits, and draws the charts.
        await page.fill("#token", TEST_TOKEN)
        await page.click("#token-form button")
        await page.wait_for_selector("body[data-status=ok]")
        assert not await page.is_visible("#auth")
        assert await page.evaluate("sessionStorage.getItem('dockerlink.token')") == TEST_TOKEN
        # Other tests' containers on the engine are listed too, until the filter hides them.
        await page.fill("#filter", base)
        await page.press("#filter", "Enter")
        await wait_for(lambda: two_cards(page), timeout=10)
        await page.wait_for_selector("body[data-charts=ok]")
        for container_id, name, limits in (
            (web, web_name, ("256 MiB", "0.5 CPU")),
            (shop, shop_name, ("512 MiB", "1 CPU")),
        ):
            row = page.locator(f"#containers tr[data-id='{container_id}']")
            assert await row.get_attribute("data-name") == name
            assert await row.get_attribute("data-state") == "running"
            text = await row.inner_text()
            assert all(limit in text for limit in limits), text
            link = row.locator("a.terminal")  # running: a link to its terminal page
            assert await link.get_attribute("href") == f"terminal?id={container_id}"
        # The link opens the terminal in a new tab that has the token already: no prompt.
        async with page.expect_popup() as opened:
            await page.locator(f"#containers tr[data-id='{web}'] a.terminal").click()
        terminal = await opened.value
        await terminal.wait_for_selector("body[data-status=open]")
        await terminal.close()
        cards = await charts_of(page)
        assert_drawn(cards, ids, 5)
        # The fetching container's network chart shows traffic, not a flat line at zero.
        shop_card = next(card for card in cards if card["id"] == shop)
        network = next(chart for chart in shop_card["charts"] if chart["kind"] == "network")
        down = next(path for path in network["paths"] if path["series"] == "down")
        assert len({point.split(" ")[1] for point in down["d"][1:].split("L")}) > 1, down

        # Other scales: fewer points (2-minute and 20-minute buckets), each chart still drawn.
        for scale in ("day", "week", "instant"):
            await page.select_option("#scale", scale)
            await page.wait_for_selector(
                f"body[data-status=ok][data-scale={scale}][data-charts=ok]"
            )
            assert_drawn(await charts_of(page), ids, 1)

        # It refreshes itself: new samples appear without a click.
        async def points_of_web() -> int:
            card = next(card for card in await charts_of(page) if card["id"] == web)
            return max(int(chart["points"]) for chart in card["charts"])

        before = await points_of_web()
        await page.select_option("#refresh", "2")

        async def refreshed() -> bool:
            return await points_of_web() > before

        await wait_for(refreshed, timeout=20, interval=0.5)

        # A reload keeps the token for the session: straight to the containers.
        await page.reload()
        await page.wait_for_selector("body[data-status=ok]")
        await page.fill("#filter", base)
        await page.press("#filter", "Enter")
        await wait_for(lambda: two_cards(page), timeout=10)
        await page.wait_for_selector("body[data-charts=ok]")
        assert_drawn(await charts_of(page), ids, 5)

        shot = REPO / "docs" / "dashboard.png" if save else tmp_path / "dashboard.png"
        shot.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(shot))
        assert png_size(shot) == (1280, 800)
        assert problems == []


async def test_each_container_links_to_its_logs_and_the_link_shows_them(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    browser: Browser,
) -> None:
    settings = replace(engine_settings, api_token=TEST_TOKEN)
    async with serve_app(settings) as (_app, client):
        name = unique_name("dashlogs")
        marker = f"printed-by-{name}"
        container_id = await create_and_start(
            client, docker, cleanup, name, commands=[f"echo {marker}", f"echo {marker}-2"]
        )

        async def printed() -> bool:
            response = await client.get("/v1/container/logs", params={"id": container_id})
            return response.text == f"{marker}\n{marker}-2\n"

        await wait_for(printed, timeout=10)

        page = await browser.new_page(viewport=VIEWPORT)
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"console: {message.text}")
                if message.type == "error" and "Failed to load resource" not in message.text
                else None
            ),
        )
        await page.goto(f"{client.base_url}/")
        await page.wait_for_selector("body[data-status=auth]")
        await page.fill("#token", TEST_TOKEN)
        await page.press("#token", "Enter")
        await page.wait_for_selector("body[data-status=ok]")
        await page.fill("#filter", name)
        await page.press("#filter", "Enter")
        link = page.locator(f"#containers tr[data-id='{container_id}'] a.logs-link")
        await link.wait_for()
        href = await link.get_attribute("href")
        assert href is not None and href.startswith(f"v1/container/logs?id={container_id}")
        assert not await page.is_visible("#logs")

        # Following the link shows the container's output (fetched with the token).
        await link.click()
        await page.wait_for_selector("#logs[data-status=ok]")
        assert await page.is_visible("#logs-text")
        assert await page.text_content("#logs-text") == f"{marker}\n{marker}-2\n"
        assert name in (await page.text_content("#logs-title") or "")
        assert page.url == f"{client.base_url}/"  # the page stayed, with its token
        await page.click("#logs-close")
        assert not await page.is_visible("#logs")
        assert problems == []


async def test_each_card_shows_recent_events_with_crashes_marked(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    browser: Browser,
) -> None:
    settings = replace(engine_settings, api_token=TEST_TOKEN)
    async with serve_app(settings) as (_app, client):
        base = unique_name("dashev")
        crashed = await create_and_start(
            client, docker, cleanup, f"{base}-crash", commands=["exit 3"]
        )
        stopped = await create_and_start(client, docker, cleanup, f"{base}-stop")
        answer = await client.post("/v1/container/stop", params={"id": stopped, "t": "0"})
        assert answer.status_code == 204, answer.text

        async def both_died() -> bool:
            for container_id in (crashed, stopped):
                events = (
                    await client.get("/v1/container/events", params={"id": container_id})
                ).json()
                if not any(event["type"] == "die" for event in events):
                    return False
            return True

        await wait_for(both_died, timeout=30)

        page = await browser.new_page(viewport=VIEWPORT)
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        await page.goto(f"{client.base_url}/")
        await page.wait_for_selector("body[data-status=auth]")
        await page.fill("#token", TEST_TOKEN)
        await page.press("#token", "Enter")
        await page.wait_for_selector("body[data-status=ok]")
        await page.fill("#filter", base)
        await page.press("#filter", "Enter")
        await wait_for(lambda: two_cards(page), timeout=10)

        crash_list = page.locator(f"article.card[data-id='{crashed}'] ul.events")
        stop_list = page.locator(f"article.card[data-id='{stopped}'] ul.events")
        await crash_list.locator("li[data-type=die]").wait_for()
        await stop_list.locator("li[data-type=die]").wait_for()
        # Newest first: the crash is marked, in red, with its exit code; the asked-for stop is not.
        crash_die = crash_list.locator("li[data-type=die]")
        assert await crash_die.get_attribute("data-crash") == "true"
        assert "crash" in (await crash_die.get_attribute("class") or "").split()
        assert "exit 3" in await crash_die.inner_text()
        assert "crash" in await crash_die.inner_text()
        stop_die = stop_list.locator("li[data-type=die]")
        assert await stop_die.get_attribute("data-crash") == "false"
        assert "crash" not in await stop_die.inner_text()
        stop_types = await stop_list.locator("li").evaluate_all(
            "items => items.map(i => i.dataset.type)"
        )
        assert stop_types == ["stop", "die", "start", "create"], stop_types
        assert problems == []


THOUSAND = 1000
#: Of the thousand, these run (the rest are created, never started, as most of a big host's).
RUNNING = 10
#: Memory limits cycle through these (MiB), for the sort by memory limit.
LIMITS_MIB = (16, 32, 48, 64, 80)
#: Counts the page's nodes; an unbounded table or card list would have ~50 per container.
NODES_JS = "() => document.getElementsByTagName('*').length"
#: Milliseconds from the start of navigation (the page's own clock).
NOW_JS = "() => performance.now()"
#: The ids of the cards on screen.
ON_SCREEN_JS = """cards => cards.filter(card => {
  const box = card.getBoundingClientRect();
  return box.bottom > 0 && box.top < window.innerHeight && box.height > 0;
}).map(card => card.dataset.id)"""


async def make_containers(docker: DockerClient, base: str, count: int) -> dict[str, int]:
    """``count`` dockerlink containers named ``<base>-web<n>``, the first ``RUNNING`` started:
    their ids and memory limits (MiB). Made concurrently, as the engine allows."""
    semaphore = asyncio.Semaphore(16)
    made: dict[str, int] = {}

    async def one(n: int) -> None:
        limit = LIMITS_MIB[n % len(LIMITS_MIB)]
        body = {
            "Image": "dockerlink-test:latest",
            "Cmd": ["sleep", "2147483647"],
            "Labels": {"dockerlink": "v1.0.0", "ports": str(20000 + 10 * n)},
            "HostConfig": {
                "Memory": limit << 20,
                "MemorySwap": limit << 20,
                "LogConfig": {"Type": "none", "Config": {}},
            },
        }
        async with semaphore:
            created = await docker.containers.create(body, name=f"{base}-web{n}", timeout=120)
            made[str(created["Id"])] = limit
            if n < RUNNING:
                await docker.containers.start(str(created["Id"]), timeout=120)

    results = await asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        await remove_containers(docker, list(made))
        raise failures[0]
    return made


async def remove_containers(docker: DockerClient, ids: list[str]) -> None:
    semaphore = asyncio.Semaphore(16)

    async def one(container_id: str) -> None:
        async with semaphore:
            with contextlib.suppress(NotFound):
                await docker.containers.remove(container_id, force=True, volumes=True)

    await asyncio.gather(*(one(i) for i in ids))


async def test_the_dashboard_pages_a_thousand_containers(
    engine_settings: Settings,
    docker: DockerClient,
    unique_name: Callable[[str], str],
    browser: Browser,
    pytestconfig: pytest.Config,
) -> None:
    """Issue 15: 1,000 containers (most created, not running) cost the page two requests and a
    page of rows, whatever their number; names sort naturally, any column sorts, and a card's
    history and events are fetched when it is on screen."""
    base = unique_name("k")
    began = time.monotonic()
    made = await make_containers(docker, base, THOUSAND)
    figures = [f"{THOUSAND} containers made in {time.monotonic() - began:.1f} s"]
    ids = list(made)
    try:
        settings = replace(engine_settings, sample_interval=5)
        async with serve_app(settings) as (_app, client):

            async def ready() -> bool:
                listed = (await client.get("/v1/container")).json()["success"]
                latest = (await client.get("/v1/container/stats/latest")).json()["latest"]
                return set(ids) <= set(listed) and set(ids) <= set(latest)

            await wait_for(ready, timeout=90, interval=1)

            page = await browser.new_page(viewport=VIEWPORT)
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            await page.goto(f"{client.base_url}/")
            await page.wait_for_selector("body[data-status=ok][data-charts=ok]")
            render_ms = await page.evaluate(NOW_JS)
            listed = await page.locator("#summary").inner_text()
            figures.append(f"first render {render_ms:.0f} ms ({listed})")

            def api_calls(urls: list[str]) -> tuple[list[str], list[str], list[str]]:
                """The page's API calls: the table's, the cards' histories, the cards' events."""
                calls = [
                    u.split(str(client.base_url).rstrip("/"), 1)[1] for u in urls if "/v1/" in u
                ]
                charts = [u for u in calls if u.startswith("/v1/container/stats?")]
                events = [u for u in calls if u.startswith("/v1/container/events?")]
                return [u for u in calls if u not in charts + events], charts, events

            others, charts, events = api_calls(requests)
            assert sorted(others) == ["/v1/container", "/v1/container/stats/latest"], others
            on_screen = await page.eval_on_selector_all("article.card", ON_SCREEN_JS)
            assert len(charts) == len(on_screen), (charts, on_screen)
            assert len(events) == len(on_screen), (events, on_screen)
            assert await page.locator("#containers tbody tr").count() == 50
            nodes = await page.evaluate(NODES_JS)
            figures.append(f"{nodes} DOM nodes")
            assert nodes < 5000

            # A refresh: the same two requests, and the histories of the cards on screen.
            requests.clear()
            refreshes = int(await page.get_attribute("body", "data-refreshes") or "0")
            await page.select_option("#refresh", "2")
            await page.wait_for_selector(f"body[data-refreshes='{refreshes + 1}']")
            await page.wait_for_selector("body[data-charts=ok]")
            others, charts, events = api_calls(requests)
            assert sorted(others) == ["/v1/container", "/v1/container/stats/latest"], others
            on_screen = await page.eval_on_selector_all("article.card", ON_SCREEN_JS)
            assert len(charts) <= len(on_screen), (charts, on_screen)
            assert len(events) <= len(on_screen), (events, on_screen)
            await page.select_option("#refresh", "0")

            # Only ours, in natural order: web2 before web10; a page is 50 rows.
            await page.fill("#filter", f"{base}-")
            names = await page.eval_on_selector_all(
                "#containers tbody tr", "rows => rows.map(r => r.dataset.name)"
            )
            assert names == [f"{base}-web{n}" for n in range(50)]
            await page.click("#next")
            first = await page.get_attribute("#containers tbody tr", "data-name")
            assert first == f"{base}-web50"
            assert await page.locator("#containers tbody tr").count() == 50

            # The running ones show their current memory (from the sampler's latest sample).
            await page.fill("#filter", f"{base}-web1")  # web1, web10..web19, web100..: web1 runs
            row = page.locator(f"#containers tr[data-name='{base}-web1']")
            memory_used = await row.locator("td").nth(2).inner_text()
            assert memory_used.endswith(("B", "KiB", "MiB")), memory_used

            # Sorted by memory limit, largest first, then by name.
            await page.fill("#filter", f"{base}-")
            await page.click("th[data-key=memory] button")
            assert await page.get_attribute("#containers", "data-sort") == "memory desc"
            shown = await page.eval_on_selector_all(
                "#containers tbody tr", "rows => rows.map(r => r.dataset.id)"
            )
            assert [made[i] for i in shown] == [max(LIMITS_MIB)] * 50
            await page.click("th[data-key=memory] button")
            shown = await page.eval_on_selector_all(
                "#containers tbody tr", "rows => rows.map(r => r.dataset.id)"
            )
            assert [made[i] for i in shown] == [min(LIMITS_MIB)] * 50

            # Opening a container (its name's link) brings its card on screen: its history is
            # fetched then, and drawn.
            target = shown[-1]
            requests.clear()
            await page.click(f"#containers tr[data-id='{target}'] a")
            card = page.locator(f"article.card[data-id='{target}'] figure.chart")
            await card.first.wait_for()
            assert await card.count() == 3
            _, charts, events = api_calls(requests)
            assert any(target in url for url in charts), charts
            assert any(target in url for url in events), events
            await page.locator(f"article.card[data-id='{target}'] ul.events li").first.wait_for()
    finally:
        began = time.monotonic()
        await remove_containers(docker, ids)
        figures.append(f"removed in {time.monotonic() - began:.1f} s")
        report(pytestconfig, f"dashboard: {'; '.join(figures)}")
