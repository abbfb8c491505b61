"""Headless Chromium (Debian's, driven by Playwright) and a page object for the demo app."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

WAIT_MS = 15_000
"""How long an expectation waits for the page to catch up."""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium binary: ``$HUBBUB_CHROMIUM``, else Debian's ``chromium`` on the PATH."""
    found = os.environ.get("HUBBUB_CHROMIUM") or shutil.which("chromium")
    if not found or not Path(found).exists():
        raise RuntimeError("no chromium: run `make system-deps` (apt-get install chromium)")
    return found


@contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    """A headless Chromium (with ``extra_args``) for the duration of the block."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()


class DemoPage:
    """One browser window on the demo app, signed in as one user."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.page: Page = browser.new_context(viewport={"width": 1100, "height": 820}).new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(base_url)

    def sign_in(self, user: str) -> None:
        """Sign in by name (dev mode) and wait until the feed is live."""
        self.page.get_by_label("Your handle").fill(user)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.state).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        # A marker that survives only as long as the page is not reloaded.
        self.page.evaluate("window.__noReload = true")

    @property
    def state(self) -> Locator:
        """The connection state indicator."""
        return self.page.locator("#conn")

    def compose(self, text: str) -> Locator:
        """Post ``text`` from the composer; returns the locator of its feed item."""
        self.page.get_by_label("What's happening?").fill(text)
        self.page.get_by_role("button", name="Post", exact=True).click()
        item = self.post(text)
        expect(item).to_have_count(1, timeout=WAIT_MS)
        return item

    def post(self, text: str) -> Locator:
        """The feed items whose text contains ``text``."""
        return self.page.locator("#feed li.post").filter(has_text=text)

    def follow_suggested(self, user: str) -> None:
        """Follow ``user`` from the "Who to follow" list."""
        self.page.locator("#suggest").get_by_role("button", name=f"Follow @{user}").click()
        following = self.page.locator("#following")
        expect(following.get_by_role("button", name=f"Unfollow @{user}")).to_be_visible(
            timeout=WAIT_MS
        )

    def not_reloaded(self) -> bool:
        """Whether the page is still the one that signed in (no reload happened)."""
        return bool(self.page.evaluate("window.__noReload === true"))
