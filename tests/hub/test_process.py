"""The real ``hubbub`` process: durability under SIGKILL, draining on SIGTERM, the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson

from hub.tokens import issue_token, verify_token
from protocol.errors import CloseCode
from tests.hub.serverproc import ServerProcess
from tests.hub.wsclient import WsClient

SECRET = "process-test-secret-0123456789-0123456789"


async def _signed_in(url: str, user: str) -> WsClient:
    client = await WsClient.open(url)
    await client.call("auth", token=issue_token(user, SECRET))
    return client


async def test_acknowledged_posts_survive_sigkill(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", SECRET, "--write-burst", "1000")
    server.start()
    try:
        writer = await _signed_in(server.url, "writer")
        acked = [(await writer.call("post", text=f"durable {i}"))["id"] for i in range(50)]
        await writer.call("like", post=acked[0])
    finally:
        server.kill()
    server.start()
    try:
        reader = await _signed_in(server.url, "reader")
        seen: list[int] = []
        args: dict[str, object] = {"user": "writer", "limit": 20}
        while True:
            page = await reader.call("feed.user", **args)
            seen += [p["id"] for p in page["items"]]
            if page["next"] is None:
                break
            args["before"] = page["next"]
        assert sorted(seen) == sorted(acked)
        profile = await reader.call("profile.get", user="writer")
        assert profile["posts"] == 50
        await reader.close()
    finally:
        server.kill()


async def test_sigterm_drains_with_notice_and_close_code(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", SECRET)
    server.start()
    client = await _signed_in(server.url, "alice")
    output = server.terminate()
    notice = await client.next_event("notice")
    assert notice.data["kind"] == "draining"
    assert await client.closed_code() == CloseCode.DRAINING
    assert "draining" in output and "stopped" in output


def _fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url) as response:
        return int(response.status), bytes(response.read())


async def _get(url: str) -> tuple[int, bytes]:
    return await asyncio.to_thread(_fetch, url)


async def test_http_endpoints(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", SECRET, "--dev")
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert await _get(base + "/healthz") == (200, b"ok\n")
        assert await _get(base + "/readyz") == (200, b"ready\n")
        status, body = await _get(base + "/dev/token?user=alice")
        assert status == 200
        token = orjson.loads(body)["token"]
        assert verify_token(token, SECRET) == "alice"
        client = await _signed_in(server.url, "alice")
        await client.call("post", text="counted")
        metrics = (await _get(base + "/metrics"))[1].decode()
        assert "hubbub_connections 1.0" in metrics
        assert "hubbub_messages_in_total" in metrics
        assert 'python_gc_collections_total{generation="2"}' in metrics
        assert "process_resident_memory_bytes" in metrics
        await client.close()
    finally:
        server.kill()


def test_cli_help_and_token(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "hub.cli"]
    help_text = subprocess.run(
        [*run, "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--port", "--data-dir", "--secret", "--dev", "HUBBUB_OUTBOX_LIMIT"):
        assert flag in help_text
    token = subprocess.run(
        [*run, "token", "alice", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    secret = (tmp_path / "token-secret").read_text().strip()
    assert verify_token(token, secret) == "alice"
    bad = subprocess.run(
        [*run, "token", "Not Valid", "--secret", SECRET],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "invalid user id" in bad.stderr
