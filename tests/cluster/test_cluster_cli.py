"""Clear errors for a bad or unreachable ``--redis``, and the ``hubbub cluster`` runner
(with and without HAProxy in front of its nodes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients import connect
from hub.haproxy import local_config, template
from hub.tokens import load_or_create_secret, verify_token
from tests.redisproc import free_port

HUBBUB = (sys.executable, "-m", "hub.cli")


def hubbub(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``hubbub ARGS`` to completion."""
    return subprocess.run(
        [*HUBBUB, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [("bogus", "bad Redis URL 'bogus'"), (f"redis://127.0.0.1:{free_port()}/0", "is it running?")],
)
def test_serve_refuses_a_bad_or_unreachable_redis(tmp_path: Path, url: str, says: str) -> None:
    done = hubbub("serve", "--port", "0", "--data-dir", str(tmp_path), "--redis", url)
    assert done.returncode == 1
    assert says in done.stderr and "Traceback" not in done.stderr


def test_cluster_help_and_bad_node_count(tmp_path: Path) -> None:
    assert "redis-server" in hubbub("cluster", "--help").stdout
    done = hubbub("cluster", "--nodes", "0", "--data-dir", str(tmp_path))
    assert done.returncode == 1 and "--nodes must be at least 1" in done.stderr


@contextlib.contextmanager
def running_cluster(tmp_path: Path, *flags: str) -> Iterator[list[str]]:
    """``hubbub cluster --nodes 2 --port 0 --dev FLAGS`` up to its "nodes up" line: yields
    the lines it printed so far; then SIGINT, and both nodes must have stopped cleanly."""
    command = [*HUBBUB, "cluster", "--nodes", "2", "--port", "0", "--dev", *flags]
    process = subprocess.Popen(
        [*command, "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "nodes up" in line:
                break
        yield lines
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and rest.count("hubbub: stopped") == 2


def node_urls(lines: list[str]) -> list[str]:
    """The ``ws://`` URL of every node that said it listens."""
    return [
        "ws://" + line.split("ws://")[1].split("/")[0] + "/"
        for line in lines
        if "listening on ws://" in line
    ]


def test_cluster_runs_redis_and_nodes_sharing_one_secret(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as lines:
        urls = node_urls(lines)
        secret = load_or_create_secret(tmp_path)  # the one the runner gave every node
        for url in urls:
            http = url.replace("ws://", "http://")
            answer = urllib.request.urlopen(f"{http}dev/token?user=ann")
            assert verify_token(json.loads(answer.read())["token"], secret) == "ann"
        assert len(urls) == 2


def test_local_haproxy_config_has_one_server_per_node() -> None:
    text = local_config(template(), 9000, 9001, [7001, 7002, 7003, 7004], check="1s")
    assert "bind 127.0.0.1:9000" in text and "bind 127.0.0.1:9001" in text
    servers = [line.strip() for line in text.splitlines() if line.strip().startswith("server ")]
    assert servers == [f"server hub{n} 127.0.0.1:{7000 + n}" for n in range(1, 5)]
    assert "check inter 1s" in text and "option httpchk GET /readyz" in text
    assert "timeout tunnel 1h" in text  # the compose file's WebSocket timeout stays


async def _post_through(url: str, token: str) -> str:
    """Sign in at ``url``, post, read the post back: its text."""
    async with asyncio.timeout(20):
        client = await connect(url, token=token)
        try:
            post = await client.post("through the balancer")
            return (await client.get_post(post.id)).text
        finally:
            await client.close()


def test_cluster_runs_haproxy_in_front_of_the_nodes(tmp_path: Path) -> None:
    with running_cluster(tmp_path, "--haproxy", "--lb-port", "0") as lines:
        said = [line for line in lines if "load balancer at " in line]
        balancer = said[0].split("load balancer at ")[1].strip()
        assert balancer.startswith("ws://127.0.0.1:")
        http = balancer.replace("ws://", "http://")
        answer = urllib.request.urlopen(f"{http}dev/token?user=ann", timeout=5)  # HTTP too
        token = json.loads(answer.read())["token"]
        assert asyncio.run(_post_through(balancer, token)) == "through the balancer"


async def _post_on_one_read_on_another(first: str, second: str, token: str) -> str:
    """Post through ``first``, read the post back through ``second``: its text."""
    async with asyncio.timeout(20):
        writer, reader = await connect(first, token=token), await connect(second, token=token)
        try:
            post = await writer.post("on a Redis Cluster")
            return (await reader.get_post(post.id)).text
        finally:
            await writer.close()
            await reader.close()


def test_cluster_runs_the_nodes_on_a_redis_cluster_when_asked(tmp_path: Path) -> None:
    with running_cluster(tmp_path, "--redis-cluster", "--replicas", "0") as lines:
        assert "a Redis Cluster at redis://127.0.0.1:" in lines[-1]
        assert all("Redis Cluster at" in line for line in lines if "listening on" in line)
        urls = node_urls(lines)
        http = urls[0].replace("ws://", "http://")
        answer = urllib.request.urlopen(f"{http}dev/token?user=ann", timeout=5)
        token = json.loads(answer.read())["token"]
        text = asyncio.run(_post_on_one_read_on_another(urls[0], urls[1], token))
        assert text == "on a Redis Cluster"
