"""The dashboard at ``/`` driven in Debian's headless Chromium (Playwright, no browser download).

Two containers run through the API (one serves a file, the other fetches it every second and
holds memory; one burns CPU under its limit), then the page is opened: it asks for the token,
refuses a wrong one, lists both containers with a memory, CPU and network chart that each have
data, switches scale and refreshes itself. The screenshot goes to a temporary folder, or to
``docs/dashboard.png`` with ``DOCKERLINK_SAVE_SCREENSHOT=1`` (how the committed one was made).
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, ViewportSize, async_playwright

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import REPO, TEST_TOKEN, engine_required, serve_app, wait_for
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
            await page.wait_for_selector(f"body[data-status=ok][data-scale={scale}]")
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
        assert_drawn(await charts_of(page), ids, 5)
        await page.fill("#filter", base)
        await page.press("#filter", "Enter")
        await wait_for(lambda: two_cards(page), timeout=10)

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
