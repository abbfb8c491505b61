"""Framing and postMessage sign-in: only the demo's own origin and ``--demo-origins`` may
frame the page or hand it a token. The embedding page is served by a real HTTP server on
another port of 127.0.0.1, which is another origin."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import Browser, Frame, Page, Route, expect

from hub.tokens import issue_token
from tests.browser.demo_page import WAIT_MS
from tests.hub.conftest import SECRET
from tests.hub.serverproc import ServerProcess

EMBEDDER = b"""<!doctype html>
<title>embedder</title>
<iframe id="demo" width="900" height="600"></iframe>
<script>
  const frame = document.getElementById("demo");
  window.framed = new Promise((loaded) => frame.addEventListener("load", loaded, {once: true}));
  frame.src = new URLSearchParams(location.search).get("hub");
  window.hand = (token) => frame.contentWindow.postMessage({type: "hubbub:token", token}, "*");
</script>
"""
"""A page that frames the hub named in its ``?hub=`` and can post it a token."""

FRAMING_HEADERS = {"content-security-policy", "x-frame-options"}


class _Embedder(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(EMBEDDER)))
        self.end_headers()
        self.wfile.write(EMBEDDER)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def embedder() -> Iterator[str]:
    """Serve :data:`EMBEDDER` on a free port of 127.0.0.1; yields its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embedder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def hub(tmp_path: Path, *flags: str) -> Iterator[str]:
    """A hub process (not --dev) with ``flags``; yields its origin."""
    process = ServerProcess(tmp_path / "data", SECRET, *flags)
    process.start()
    try:
        yield f"http://127.0.0.1:{process.port}"
    finally:
        process.terminate()


def framed(page: Page, embedder_origin: str, hub_origin: str) -> Frame:
    """Open the embedding page and return the demo's frame once it has loaded."""
    page.goto(f"{embedder_origin}/?hub={quote(hub_origin + '/')}")
    page.evaluate("window.framed")
    handle = page.locator("#demo").element_handle()
    frame = handle.content_frame() if handle is not None else None
    assert frame is not None
    return frame


def test_another_origin_cannot_frame_the_demo(browser: Browser, tmp_path: Path) -> None:
    with embedder() as outsider, hub(tmp_path) as hub_origin:
        page = browser.new_context().new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        frame = framed(page, outsider, hub_origin)
        assert not frame.url.startswith(hub_origin)  # Chromium's error page instead
        assert frame.locator("#signin").count() == 0
        assert any("frame-ancestors" in text for text in console), console


def test_an_allowed_origin_frames_the_demo_and_signs_it_in(
    browser: Browser, tmp_path: Path
) -> None:
    with embedder() as app, hub(tmp_path, "--demo-origins", app) as hub_origin:
        page = browser.new_context().new_page()
        frame = framed(page, app, hub_origin)
        page.evaluate("(token) => window.hand(token)", issue_token("alice", SECRET))
        expect(frame.locator("#conn")).to_have_text("Live", timeout=WAIT_MS)
        expect(frame.locator("#whoami")).to_contain_text("@alice")


def _without_framing_headers(route: Route) -> None:
    response = route.fetch()
    headers = {k: v for k, v in response.headers.items() if k.lower() not in FRAMING_HEADERS}
    route.fulfill(response=response, headers=headers)


def test_a_token_from_an_origin_not_allowed_does_not_sign_in(
    browser: Browser, tmp_path: Path
) -> None:
    """Even where the frame renders (a browser that ignores the headers, simulated by
    dropping them), the page takes no token from a parent on another origin."""
    with (
        embedder() as app,
        embedder() as outsider,
        hub(tmp_path, "--demo-origins", app) as hub_origin,
    ):
        context = browser.new_context()
        context.route(f"{hub_origin}/**", _without_framing_headers)
        page = context.new_page()
        frame = framed(page, outsider, hub_origin)
        expect(frame.locator("#signin")).to_be_visible()
        # A listener added after the app's runs after it for the same message.
        frame.evaluate(
            "() => { window.seen = new Promise((done) => addEventListener('message',"
            " () => done(document.getElementById('conn').dataset.state), {once: true})); }"
        )
        page.evaluate("(token) => window.hand(token)", issue_token("alice", SECRET))
        assert frame.evaluate("window.seen") == "idle"
        expect(frame.locator("#signin")).to_be_visible()
        expect(frame.locator("#app")).to_be_hidden()
