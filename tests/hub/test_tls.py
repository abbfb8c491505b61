"""TLS end to end, with certificates of a private CA the tests make (``trustme``): the hub
serves ``wss://`` and HTTPS; the SDK, the load generator and a bot connect over it; a
client that does not trust the certificate is refused and the node carries on; a node
reaches a ``rediss://`` Redis that asks for a client certificate, and without one it
does not start."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from clients import Client, ConnectionLost, FeedInsert, connect
from clients.loadtest.graph import GraphSpec, SocialGraph
from clients.loadtest.workers import run_loadtest
from hub.backends.base import BackendUnavailable
from hub.config import add_arguments, settings_from_args
from hub.node import Node
from hub.tls import TlsError
from hub.tokens import issue_token
from tests.hub.conftest import SECRET, make_settings
from tests.hub.serverproc import ServerProcess
from tests.loadtest.conftest import config
from tests.redisproc import RedisServer
from tests.tlsfiles import TlsFiles, make_tls_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def node(tmp_path: Path, tls: TlsFiles) -> AsyncIterator[Node]:
    """A node serving wss:// and https:// on a free port."""
    settings = make_settings(
        tmp_path / "data", tls_cert=tls.server_cert, tls_key=tls.server_key, write_burst=100
    )
    started = await Node.start(settings)
    yield started
    await started.drain()


def first_insert(client: Client) -> asyncio.Future[str]:
    """The text of the next post inserted into ``client``'s feed."""
    found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def listen(event: object) -> None:
        if isinstance(event, FeedInsert) and not found.done():
            found.set_result(event.post.text)

    client.connection.add_listener(listen)
    return found


def wss(node: Node) -> str:
    """The node's secure WebSocket URL."""
    return f"wss://127.0.0.1:{node.port}/"


async def test_the_sdk_talks_to_the_hub_over_wss(node: Node, tls: TlsFiles) -> None:
    alice = await connect(wss(node), token=issue_token("alice", SECRET), tls=tls.trusting())
    bob = await connect(wss(node), token=issue_token("bob", SECRET), tls=tls.trusting())
    await alice.follow("bob")
    inserted = first_insert(alice)
    await bob.post("over TLS")
    assert await asyncio.wait_for(inserted, 10) == "over TLS"
    await alice.close()
    await bob.close()


def https_get(port: int, path: str, tls: TlsFiles) -> tuple[int, bytes]:
    """Status and body of an HTTPS GET on 127.0.0.1, trusting the test CA."""
    address = f"https://127.0.0.1:{port}{path}"
    with urllib.request.urlopen(address, timeout=5, context=tls.trusting()) as response:
        return response.status, response.read()


async def test_health_and_metrics_answer_over_https(node: Node, tls: TlsFiles) -> None:
    assert (await asyncio.to_thread(https_get, node.port, "/healthz", tls))[0] == 200
    status, body = await asyncio.to_thread(https_get, node.port, "/metrics", tls)
    assert status == 200 and b"hubbub_connections" in body


async def test_a_separate_metrics_address_is_served_over_https_too(
    tmp_path: Path, tls: TlsFiles
) -> None:
    settings = make_settings(
        tmp_path / "data",
        tls_cert=tls.server_cert,
        tls_key=tls.server_key,
        metrics_address=("127.0.0.1", 0),
    )
    node = await Node.start(settings)
    try:
        assert node.metrics_port is not None
        status, body = await asyncio.to_thread(https_get, node.metrics_port, "/metrics", tls)
        assert status == 200 and b"hubbub_connections" in body
    finally:
        await node.drain()


async def test_a_client_that_does_not_trust_the_certificate_is_refused(
    node: Node, tls: TlsFiles
) -> None:
    with pytest.raises(ConnectionLost):
        await connect(
            wss(node),
            token=issue_token("mallory", SECRET),
            tls=tls.trusting_the_stranger(),
            connect_timeout=5,
        )
    with pytest.raises(ConnectionLost):  # plain ws:// to a TLS port: no handshake
        await connect(
            f"ws://127.0.0.1:{node.port}/", token=issue_token("mallory", SECRET), connect_timeout=2
        )
    trusted = await connect(wss(node), token=issue_token("carol", SECRET), tls=tls.trusting())
    assert trusted.me.id == "carol"  # the node carries on
    await trusted.close()


async def test_the_load_generator_runs_over_wss(node: Node, tls: TlsFiles) -> None:
    spec = GraphSpec(users=21, follows=0, star=True, prefix="tls")
    run = config(wss(node), "burst", spec, posts=10, decode_every=5, ca_file=tls.ca, secret=SECRET)
    result = await asyncio.to_thread(run_loadtest, run, SocialGraph.generate(spec), True)
    corr = result["correctness"]
    assert result["connections"]["up"] == 21 and result["errors"] == {}
    assert corr["expected"] == corr["received"] == 21 * 10
    assert (corr["missed"], corr["duplicated"]) == (0, 0)


def test_serve_says_wss_and_a_bot_runs_over_it(tmp_path: Path, tls: TlsFiles) -> None:
    hub = ServerProcess(tmp_path / "data", SECRET, *tls.serve_flags())
    hub.start()
    bot = None
    try:
        assert any(f"listening on wss://127.0.0.1:{hub.port}/" in line for line in hub.output)
        command = [sys.executable, "-m", "hub.cli", "bot", "run", "clients/examples/reply_bot.py"]
        command += [
            "--url",
            f"wss://127.0.0.1:{hub.port}/",
            "--token",
            issue_token("helper", SECRET),
        ]
        bot = subprocess.Popen(
            [*command, "--ca-file", str(tls.ca)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert bot.stdout is not None
        lines = []
        for line in bot.stdout:  # ends if the bot exits
            lines.append(line)
            if "running as @helper" in line:
                break
        assert "running as @helper" in "".join(lines), "".join(lines)
    finally:
        if bot is not None:
            bot.terminate()
            bot.wait(timeout=10)
        hub.terminate()


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["bot", "run", "clients/examples/reply_bot.py", "--token", "t"], 1),
        (["loadtest", "--users", "2", "--follows", "1"], 2),
    ],
)
def test_a_missing_ca_file_is_named(tmp_path: Path, command: list[str], code: int) -> None:
    missing = ["--ca-file", str(tmp_path / "no.pem")]
    url = ["--url", "wss://127.0.0.1:1/"] if command[0] == "bot" else ["wss://127.0.0.1:1/"]
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", *command, *url, *missing],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == code
    assert "CA file" in done.stderr and "not found" in done.stderr, done.stderr


@pytest.fixture
def tls_redis(tmp_path: Path, tls: TlsFiles) -> Iterator[RedisServer]:
    """A redis-server that speaks only TLS and wants a client certificate."""
    server = RedisServer(tmp_path / "redis", tls=tls).start()
    yield server
    server.stop()


async def test_a_node_shares_its_world_over_rediss(
    tmp_path: Path, tls: TlsFiles, tls_redis: RedisServer
) -> None:
    assert tls_redis.url.startswith("rediss://")
    settings = make_settings(
        tmp_path / "data",
        redis_url=tls_redis.url,
        redis_ca=tls.ca,
        redis_cert=tls.client_cert,
        redis_key=tls.client_key,
    )
    node = await Node.start(settings)
    try:
        url = f"ws://127.0.0.1:{node.port}/"
        alice = await connect(url, token=issue_token("alice", SECRET))
        bob = await connect(url, token=issue_token("bob", SECRET))
        await alice.follow("bob")
        inserted = first_insert(alice)
        await bob.post("stored in Redis over TLS")
        assert await asyncio.wait_for(inserted, 10) == "stored in Redis over TLS"
        assert [p.text for p in (await alice.home()).items] == ["stored in Redis over TLS"]
        await alice.close()
        await bob.close()
    finally:
        await node.drain()


async def test_without_a_client_certificate_the_node_does_not_start(
    tmp_path: Path, tls: TlsFiles, tls_redis: RedisServer
) -> None:
    settings = make_settings(tmp_path / "data", redis_url=tls_redis.url, redis_ca=tls.ca)
    with pytest.raises(BackendUnavailable):
        await Node.start(settings)


async def test_tls_files_that_cannot_work_stop_the_node_with_what_to_do(
    tmp_path: Path, tls: TlsFiles
) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(TlsError, match="not found"):
        await Node.start(make_settings(tmp_path / "a", tls_cert=missing, tls_key=tls.server_key))
    with pytest.raises(TlsError, match="go together"):
        await Node.start(make_settings(tmp_path / "e", tls_cert=tls.server_cert))
    with pytest.raises(TlsError, match="matches it"):  # the client's key is not the server's
        await Node.start(
            make_settings(tmp_path / "b", tls_cert=tls.server_cert, tls_key=tls.client_key)
        )
    with pytest.raises(TlsError, match="rediss://"):
        await Node.start(
            make_settings(tmp_path / "c", redis_url="redis://127.0.0.1:1/0", redis_ca=tls.ca)
        )
    with pytest.raises(TlsError, match="go together"):
        await Node.start(
            make_settings(
                tmp_path / "d", redis_url="rediss://127.0.0.1:1/0", redis_cert=tls.client_cert
            )
        )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-key", "key.pem"], "--tls-cert and --tls-key go together"),
        (["--redis-ca", "ca.pem"], "need --redis"),
    ],
)
def test_serve_refuses_half_given_tls_options(flags: list[str], message: str) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit, match=message):
        settings_from_args(parser.parse_args(flags), environ={})
