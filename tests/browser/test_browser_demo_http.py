"""The hub serves the demo's fixed set of files at /, and nothing else."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hub.node import Node
from tests.hub.conftest import make_settings

Fetched = tuple[int, dict[str, str], bytes]


def _get(url: str, headers: dict[str, str] | None = None) -> Fetched:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def _fetch(node: Node, path: str, headers: dict[str, str] | None = None) -> Fetched:
    return await asyncio.to_thread(_get, f"http://127.0.0.1:{node.port}{path}", headers)


@pytest.mark.parametrize(
    ("path", "content_type", "snippet"),
    [
        ("/", "text/html", b"<title>Hubbub</title>"),
        ("/app.js", "text/javascript", b'from "/hubbub.js"'),
        ("/style.css", "text/css", b"--accent"),
        ("/hubbub.js", "text/javascript", b"export class HubbubClient"),
    ],
)
async def test_demo_assets_are_served(
    tmp_path: Path, path: str, content_type: str, snippet: bytes
) -> None:
    node = await Node.start(make_settings(tmp_path))
    try:
        status, headers, body = await _fetch(node, path)
        assert status == 200
        assert headers["Content-Type"].startswith(content_type)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert headers["Content-Security-Policy"].endswith("; frame-ancestors 'self'")
        assert headers["X-Frame-Options"] == "SAMEORIGIN"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert snippet in body
        again, _, empty = await _fetch(node, path, {"If-None-Match": headers["ETag"]})
        assert (again, empty) == (304, b"")
    finally:
        await node.drain()


@pytest.mark.parametrize(
    "path", ["/../pyproject.toml", "/demo.py", "/demo/app.js", "/hubbub.d.ts", "/%2e%2e/hub"]
)
async def test_only_the_allow_list_is_served(tmp_path: Path, path: str) -> None:
    node = await Node.start(make_settings(tmp_path))
    try:
        status, _, body = await _fetch(node, path)
        assert status == 404
        assert b"not found" in body
    finally:
        await node.drain()


async def test_demo_off_answers_404(tmp_path: Path) -> None:
    node = await Node.start(make_settings(tmp_path, demo=False))
    try:
        status, _, _ = await _fetch(node, "/")
        assert status == 404
    finally:
        await node.drain()


async def test_configured_origins_may_frame_the_page(tmp_path: Path) -> None:
    origins = ("https://app.example", "http://127.0.0.1:8080")
    node = await Node.start(make_settings(tmp_path, demo_origins=origins))
    try:
        _, headers, body = await _fetch(node, "/")
        csp = headers["Content-Security-Policy"]
        assert csp.endswith("; frame-ancestors 'self' https://app.example http://127.0.0.1:8080")
        meta = b'<meta name="hubbub-embedders" content="https://app.example http://127.0.0.1:8080">'
        assert meta in body
    finally:
        await node.drain()
