"""The terminal page at ``/terminal?id=`` in Debian's headless Chromium (Playwright).

It asks for the token (and refuses a wrong one), opens a shell, follows the window's size (the
shell's ``stty size`` shows the new size after the viewport changes), loads nothing from
anywhere but dockerlink, and says when the session has ended. The screenshot goes to a
temporary folder, or to ``docs/terminal.png`` with ``DOCKERLINK_SAVE_SCREENSHOT=1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Page, Request

from docker_api import DockerClient
from dockerlink.settings import Settings

from ..conftest import REPO, TEST_TOKEN, serve_app, wait_for
from ._api import create_and_start
from .test_dashboard import browser, png_size

__all__ = ["browser"]  # the fixture, shared with the dashboard's test

SCREEN = ".xterm-rows"


async def size_of(page: Page) -> tuple[int, int]:
    """The terminal's (cols, rows), as the page last sent them."""
    size = await page.get_attribute("body", "data-size")
    assert size is not None
    cols, rows = size.split("x")
    return int(cols), int(rows)


async def shows_size(page: Page, marker: str) -> tuple[int, int]:
    """Type ``stty size`` and wait for the shell's answer; (cols, rows) as the shell sees them."""
    # the shell prints "<marker>-size R C"; the typed line shows "<marker>-$(echo size)"
    await page.keyboard.type(f"echo {marker}-$(echo size) $(stty size)\n")
    line = page.locator(SCREEN).get_by_text(f"{marker}-size ", exact=False).last
    await line.wait_for()
    text = await page.locator(SCREEN).inner_text()
    answer = [row for row in text.splitlines() if row.startswith(f"{marker}-size ")]
    assert answer, text
    rows, cols = answer[-1].split()[1:3]
    return int(cols), int(rows)


async def test_the_terminal_page_opens_a_shell_that_follows_the_window(
    engine_settings: Settings,
    docker: DockerClient,
    cleanup: list[str],
    unique_name: Callable[[str], str],
    browser: Browser,
    tmp_path: Path,
) -> None:
    settings = replace(engine_settings, api_token=TEST_TOKEN)
    async with serve_app(settings) as (_app, client):
        name = unique_name("page")
        await create_and_start(client, docker, cleanup, name)
        base = str(client.base_url).rstrip("/")
        context = await browser.new_context(viewport={"width": 1000, "height": 600})
        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = await context.new_page()
        problems: list[str] = []
        elsewhere: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

        def console(message: ConsoleMessage) -> None:
            # The refused upgrade and the 401 the page then reads are logged by the browser;
            # anything else (a script error, a file the policy refused) is a problem.
            text = message.text
            if message.type == "error" and not (
                "Failed to load resource" in text or "WebSocket connection" in text
            ):
                problems.append(f"console: {text}")

        def request(request: Request) -> None:
            origin = base.replace("http://", "ws://")
            if not request.url.startswith((base, origin)):
                elsewhere.append(request.url)

        page.on("console", console)
        page.on("request", request)
        await page.goto(f"{base}/terminal?id={name}")

        # No token yet: the prompt. A wrong one is refused and not kept.
        await page.wait_for_selector("body[data-status=auth]")
        assert "needs its API token" in (await page.text_content("#auth-message") or "")
        await page.fill("#token", "wrong-token-0123456789")
        await page.press("#token", "Enter")
        await page.locator("#auth-message", has_text="refused").wait_for()
        assert await page.evaluate("sessionStorage.getItem('dockerlink.token')") is None

        # The right one opens the shell, sized to the window.
        await page.fill("#token", TEST_TOKEN)
        await page.press("#token", "Enter")
        await page.wait_for_selector("body[data-status=open]")
        await page.locator(SCREEN).get_by_text("$", exact=False).first.wait_for()
        first = await size_of(page)
        assert await shows_size(page, "before") == first

        # A smaller window: the page sends the new size, the shell sees it.
        await page.set_viewport_size({"width": 720, "height": 420})

        # (polled: the page's policy forbids the eval that wait_for_function needs)
        async def resized() -> bool:
            return await size_of(page) != first

        await wait_for(resized, timeout=10, interval=0.05)
        second = await size_of(page)
        assert second[0] < first[0]
        assert second[1] < first[1]
        assert await shows_size(page, "after") == second

        save = os.environ.get("DOCKERLINK_SAVE_SCREENSHOT", "") not in {"", "0"}
        await page.keyboard.type("ls -la /var/www; id\n")
        await page.locator(SCREEN).get_by_text("uid=1000(admin)", exact=False).wait_for()
        shot = REPO / "docs" / "terminal.png" if save else tmp_path / "terminal.png"
        shot.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(shot))
        assert png_size(shot) == (720, 420)

        # Paste (Ctrl+Shift+V) types the clipboard into the shell; copy (select, then
        # Ctrl+Shift+C) puts the selection on the clipboard.
        await page.evaluate("navigator.clipboard.writeText('echo pasted-$((5+5))\\n')")
        await page.keyboard.press("Control+Shift+V")
        answer = page.locator(SCREEN).get_by_text("pasted-10", exact=True)
        await answer.wait_for()
        box = await answer.bounding_box()
        assert box is not None
        middle = box["y"] + box["height"] / 2
        await page.mouse.move(box["x"] + 1, middle)
        await page.mouse.down()
        await page.mouse.move(box["x"] + box["width"] - 1, middle, steps=5)
        await page.mouse.up()
        await page.keyboard.press("Control+Shift+C")

        async def copied() -> bool:
            text = await page.evaluate("navigator.clipboard.readText()")
            return str(text).strip() == "pasted-10"

        await wait_for(copied, timeout=10)

        # The shell exits: the page says so.
        await page.keyboard.type("exit\n")
        await page.wait_for_selector("body[data-status=closed]")
        assert "shell exited with code 0" in (await page.text_content("#status") or "")
        assert await page.is_visible("#reconnect")
        assert problems == []
        assert elsewhere == []
        await context.close()
