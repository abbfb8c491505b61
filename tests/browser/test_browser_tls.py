"""The demo app and its JS client over HTTPS and wss://: Chromium trusts exactly the
hub's key (``--ignore-certificate-errors-spki-list``, nothing else is waved through)
and two users see each other's posts live over TLS."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import FAST
from tests.browser.demo_page import WAIT_MS, DemoPage, chromium
from tests.hub.conftest import SECRET
from tests.hub.serverproc import ServerProcess
from tests.tlsfiles import make_tls_files


def test_two_users_interact_live_over_tls(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    hub = ServerProcess(tmp_path / "data", SECRET, *FAST, *tls.serve_flags())
    hub.start()
    try:
        trust = f"--ignore-certificate-errors-spki-list={tls.server_spki_sha256()}"
        with chromium(trust) as browser:
            base = f"https://127.0.0.1:{hub.port}/"
            alice, bob = DemoPage(browser, base), DemoPage(browser, base)
            alice.sign_in("alice")
            bob.sign_in("bob")
            bob.compose("Hello over TLS")
            alice.follow_suggested("bob")
            expect(alice.post("Hello over TLS")).to_have_count(1, timeout=WAIT_MS)
            bob.compose("And live over wss")
            expect(alice.post("And live over wss")).to_have_count(1, timeout=WAIT_MS)
            assert alice.page.evaluate("location.protocol") == "https:"
            assert alice.errors == [] and bob.errors == []
    finally:
        hub.terminate()
