"""Production sign-in: the embedding app hands the page a token in the URL fragment."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, expect

from hub.tokens import issue_token
from tests.browser.demo_page import WAIT_MS
from tests.hub.conftest import SECRET
from tests.hub.serverproc import ServerProcess


def test_fragment_token_signs_in_and_a_bad_one_is_refused(browser: Browser, tmp_path: Path) -> None:
    hub = ServerProcess(tmp_path / "data", SECRET)  # not --dev: no /dev/token
    hub.start()
    try:
        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{hub.port}/#token={issue_token('alice', SECRET)}")
        expect(page.locator("#conn")).to_have_text("Live", timeout=WAIT_MS)
        expect(page.locator("#whoami")).to_contain_text("@alice")
        assert "token" not in page.url  # taken out of the address bar at once

        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{hub.port}/#token=forged.token.value")
        expect(page.locator("#signin-error")).to_contain_text("sign in again", timeout=WAIT_MS)
        expect(page.locator("#conn")).to_have_text("Disconnected")

        page.get_by_label("Your handle").fill("alice")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#signin-error")).to_contain_text("not in --dev mode")
    finally:
        hub.terminate()
