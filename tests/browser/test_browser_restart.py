"""The hub restarts under an open page: it shows "reconnecting", then catches up, once."""

from __future__ import annotations

import socket
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser.conftest import FAST
from tests.browser.demo_page import WAIT_MS, DemoPage
from tests.hub.conftest import SECRET
from tests.hub.serverproc import ServerProcess


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_page_resumes_after_hub_restart(browser: Browser, tmp_path: Path) -> None:
    data, port = tmp_path / "data", _free_port()
    hub = ServerProcess(data, SECRET, *FAST, "--port", str(port))  # the last --port wins
    hub.start()
    base = f"http://127.0.0.1:{port}/"
    bob = DemoPage(browser, base)
    bob.sign_in("bob")
    bob.compose("Before the restart")
    alice = DemoPage(browser, base)
    alice.sign_in("alice")
    alice.follow_suggested("bob")
    expect(alice.post("Before the restart")).to_have_count(1, timeout=WAIT_MS)

    hub.kill()
    expect(alice.state).to_have_text("Reconnecting…", timeout=WAIT_MS)
    # While alice's hub is down, bob posts through another hub on the same data.
    other = ServerProcess(data, SECRET, *FAST)
    other.start()
    writer = DemoPage(browser, f"http://127.0.0.1:{other.port}/")
    writer.sign_in("bob")
    writer.compose("Posted while alice was away")
    writer.page.context.close()
    other.terminate()
    expect(alice.state).to_have_text("Reconnecting…")

    hub.start()
    try:
        expect(alice.state).to_have_text("Live", timeout=WAIT_MS)
        expect(alice.post("Posted while alice was away")).to_have_count(1, timeout=WAIT_MS)
        expect(alice.page.locator("#feed li.post")).to_have_count(2)
        assert alice.not_reloaded()
        assert alice.errors == []
    finally:
        hub.terminate()
