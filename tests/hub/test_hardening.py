"""Hardened defaults on a real node: private data files, token rules at sign-in, posts
that show nothing refused, no versions in ``Server``, ``/metrics`` on its own address."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt
import pytest

from hub.backends.sqlite_schema import DB_FILENAME
from hub.config import Settings, add_arguments, settings_from_args
from hub.node import Node
from hub.tokens import SECRET_FILE, issue_token
from tests.hub.conftest import SECRET, Connect, make_settings
from tests.hub.wsclient import WsClient

Fetched = tuple[int, dict[str, str], bytes]


def _get(url: str) -> Fetched:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def _fetch(port: int, path: str) -> Fetched:
    return await asyncio.to_thread(_get, f"http://127.0.0.1:{port}{path}")


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_data_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    old = os.umask(0)
    try:
        node = await Node.start(make_settings(data_dir, secret=None))
    finally:
        os.umask(old)
    try:
        client = await WsClient.open(f"ws://127.0.0.1:{node.port}/")
        await client.call("auth", token=node.tokens.issue("alice"))
        await client.call("post", text="written to the WAL")
        files = sorted(p.name for p in data_dir.iterdir())
        assert files == sorted(
            [SECRET_FILE, DB_FILENAME, f"{DB_FILENAME}-wal", f"{DB_FILENAME}-shm"]
        )
        assert _mode(data_dir) == 0o700
        assert {name: _mode(data_dir / name) for name in files} == dict.fromkeys(files, 0o600)
        await client.close()
    finally:
        await node.drain()


@pytest.mark.node_settings(max_token_ttl=3600, token_audience="hub", token_issuer="login")
async def test_sign_in_applies_the_token_rules(connect: Connect) -> None:
    now = int(time.time())
    refused = [
        issue_token("alice", SECRET, 7200, audience="hub", issuer="login"),  # too long
        issue_token("alice", SECRET, 60, issuer="login"),  # no audience
        issue_token("alice", SECRET, 60, audience="hub", issuer="other"),
        jwt.encode({"sub": "alice", "aud": "hub", "iss": "login", "iat": now}, SECRET),  # no exp
    ]
    for token in refused:
        client = await connect()
        reply = await client.call_raw("auth", token=token)
        assert getattr(reply, "code", None) == "unauthorized"
    client = await connect()
    good = issue_token("alice", SECRET, 3600, audience="hub", issuer="login")
    assert (await client.call("auth", token=good))["user"]["id"] == "alice"


@pytest.mark.parametrize("text", ["\u200b", "\u200c\u200d\u2060\ufeff", " \u180e\u202e\u2066 "])
async def test_a_post_or_edit_that_shows_nothing_is_bad_request(
    connect: Connect, text: str
) -> None:
    alice = await connect("alice")
    reply = await alice.call_raw("post", text=text)
    assert getattr(reply, "code", None) == "bad_request"
    post = await alice.call("post", text="\u200bvisible\u200b")
    reply = await alice.call_raw("edit", post=post["id"], text=text)
    assert getattr(reply, "code", None) == "bad_request"


@pytest.mark.node_settings(dev=True)
async def test_the_server_header_carries_no_versions(node: Node, connect: Connect) -> None:
    client = await connect()
    assert client.connection.response is not None
    assert client.connection.response.headers["Server"] == "hubbub"
    for path in ("/healthz", "/metrics", "/", "/app.js", "/dev/token?user=al", "/nowhere"):
        _, headers, _ = await _fetch(node.port, path)
        assert headers["Server"] == "hubbub", path


async def test_metrics_on_their_own_address(tmp_path: Path) -> None:
    node = await Node.start(make_settings(tmp_path, metrics_address=("127.0.0.1", 0)))
    metrics_port = node.metrics_port
    try:
        assert metrics_port is not None and metrics_port != node.port
        status, headers, body = await _fetch(metrics_port, "/metrics")
        assert status == 200 and b"hubbub_connections" in body
        assert headers["Server"] == "hubbub"
        assert (await _fetch(metrics_port, "/healthz"))[0] == 404
        assert (await _fetch(node.port, "/metrics"))[0] == 404
        assert (await _fetch(node.port, "/healthz"))[0] == 200
    finally:
        await node.drain()
    with pytest.raises(ConnectionRefusedError), socket.socket() as probe:  # closed by drain
        probe.connect(("127.0.0.1", metrics_port))


async def test_metrics_stay_on_the_main_port_by_default(node: Node) -> None:
    assert node.metrics_port is None
    assert (await _fetch(node.port, "/metrics"))[0] == 200


@pytest.mark.parametrize(
    ("text", "origins"),
    [
        ("https://App.Example.com", ("https://app.example.com",)),
        (
            "https://a.example:443/, http://127.0.0.1:8080",
            ("https://a.example", "http://127.0.0.1:8080"),
        ),
        ("http://[::1]:80 http://[::1]:81", ("http://[::1]", "http://[::1]:81")),
    ],
)
def test_demo_origins_are_written_as_browsers_write_them(
    text: str, origins: tuple[str, ...]
) -> None:
    assert _parse("--demo-origins", text).demo_origins == origins


@pytest.mark.parametrize(
    ("flag", "text"),
    [
        ("--demo-origins", "*"),
        ("--demo-origins", "https://a.example/path"),
        ("--demo-origins", "javascript:alert(1)"),
        ("--demo-origins", "https://a.example:99999"),
        ("--demo-origins", 'https://a.example" onload="x'),
        ("--metrics-address", "9100"),
        ("--metrics-address", "localhost:http"),
        ("--metrics-address", "127.0.0.1:70000"),
    ],
)
def test_bad_origins_and_addresses_are_refused(
    flag: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parse(flag, text)
    assert f"argument {flag}: expected " in capsys.readouterr().err


def _parse(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(argv), {})
