"""Readiness follows Redis within 2 s: a silently dead pub/sub link (black-holed, no FIN,
no RST) and a frozen redis-server (SIGSTOP) both make the node not ready; when they come
back it is ready again and its sessions catch up. Outages log one WARNING each, no
traceback."""

from __future__ import annotations

import asyncio
import signal
import time

from hub.tokens import issue_token
from protocol import ErrorReply, Reply
from protocol.errors import ErrorCode
from tests.cluster.conftest import SECRET, Cluster, Inbox, NodeProcess
from tests.hub.wsclient import WAIT, WsClient
from tests.tcpproxy import TcpProxy

NOT_READY_WITHIN = 2.0
"""Seconds within which a node must report not ready (health checks every 0.5 s, 1 s
timeouts: 1.5 s at worst, plus the 50 ms /readyz polling)."""


def start_node(cluster: Cluster, redis_url: str, *extra: str) -> NodeProcess:
    """One more node of ``cluster`` on ``redis_url`` (a proxy), with extra flags."""
    node = NodeProcess(cluster.tmp_path / f"node{len(cluster.nodes)}", redis_url)
    node.extra = (*node.extra, *extra)
    node.start()
    cluster.nodes.append(node)
    return node


async def wait_for_log(node: NodeProcess, text: str) -> None:
    """Wait (at most WAIT seconds) until ``text`` appears in the node's output."""
    await asyncio.to_thread(_poll_output, node, text)


def _poll_output(node: NodeProcess, text: str) -> None:
    deadline = time.monotonic() + WAIT
    while text not in "".join(node.output):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the node never logged {text!r}:\n{''.join(node.output)}")
        time.sleep(0.05)  # polling another process's output, not a timer


async def timed_readyz(node: NodeProcess, status: int) -> float:
    """Wait until /readyz answers ``status``; return the seconds it took."""
    started = time.monotonic()
    await node.wait_readyz(status)
    return time.monotonic() - started


def inserts(inbox: Inbox) -> list[str]:
    """Texts of the home-feed inserts a client received, in order."""
    return [event.data["text"] for event in inbox.of("feed.insert")]


async def test_a_blackholed_bus_link_is_noticed_and_caught_up(cluster: Cluster) -> None:
    proxy = TcpProxy(cluster.redis.port).start()
    try:
        proxied = start_node(cluster, proxy.redis_url)  # node 0: through the proxy
        cluster.start_nodes(1)  # node 1: straight to Redis
        fol = await cluster.connect("fol", 0)
        bob = await cluster.connect("bob", 1)
        await fol.client.call("follow", user="bob")
        await bob.client.call("post", text="before")
        await fol.wait_for(lambda events: inserts(fol) == ["before"])

        assert proxy.blackhole(b"SUBSCRIBE") == 1, "one pub/sub link held"
        not_ready = await timed_readyz(proxied, 503)
        assert not_ready < NOT_READY_WITHIN, f"not ready after {not_ready:.2f} s, want < 2 s"
        await wait_for_log(proxied, "WARNING hub.backends.redis_bus: bus connection to redis")
        await bob.client.call("post", text="while the link was dead")

        proxy.pass_traffic()
        ready_again = await timed_readyz(proxied, 200)
        await fol.wait_for(lambda events: len(inserts(fol)) == 2)
        await bob.client.call("post", text="live again")
        await fol.wait_for(lambda events: len(inserts(fol)) == 3)
        expected = ["before", "while the link was dead", "live again"]
        assert inserts(fol) == expected, f"0 missed, 0 repeated: {inserts(fol)}"
        output = "".join(proxied.output)
        assert output.count("bus connection to redis lost") == 1, "one WARNING per outage"
        assert "Traceback" not in output
        print(f"\nblack-holed bus link: not ready after {not_ready:.2f} s, "
              f"ready {ready_again:.2f} s after the link came back")  # fmt: skip
    finally:
        if cluster.nodes:  # the proxied node first: it must not see the proxy vanish
            cluster.nodes[0].terminate()
        proxy.close()


async def test_readyz_follows_a_frozen_redis(cluster: Cluster) -> None:
    (node,) = cluster.start_nodes(1)
    await node.wait_readyz(200)
    redis = cluster.redis.process
    assert redis is not None
    redis.send_signal(signal.SIGSTOP)
    try:
        not_ready = await timed_readyz(node, 503)
    finally:
        redis.send_signal(signal.SIGCONT)
    ready_again = await timed_readyz(node, 200)
    assert not_ready < NOT_READY_WITHIN, f"not ready after {not_ready:.2f} s, want < 2 s"
    print(f"\nSIGSTOP: not ready after {not_ready:.2f} s; SIGCONT: ready after {ready_again:.2f} s")


OUTAGE_WARNINGS = {
    "hub.backends.redis_link: redis unreachable": "the probe",
    "hub.backends.redis_bus: bus connection to redis lost": "the bus",
    "hub.backends.redis_presence: presence heartbeat failed": "the heartbeat",
    "hub.node: pruning the change log postponed": "the pruner",
}


async def test_an_outage_logs_one_warning_per_part_and_no_traceback(cluster: Cluster) -> None:
    node = start_node(cluster, cluster.redis.url, "--prune-interval", "0.05")
    await node.wait_readyz(200)
    cluster.redis.stop(kill=True)
    for text in OUTAGE_WARNINGS:
        await wait_for_log(node, f"WARNING {text}")
    await node.wait_readyz(503)
    cluster.redis.restart()
    await node.wait_readyz(200)
    output = "".join(node.output)
    for text, part in OUTAGE_WARNINGS.items():
        count = output.count(text)
        assert count == 1, f"{part} logged {count} WARNING lines for one outage, want 1"
    assert "Traceback" not in output and " ERROR " not in output, output


async def test_auth_during_a_bus_stall_fails_cleanly_and_succeeds_when_retried(
    cluster: Cluster,
) -> None:
    """A sign-in while the node's pub/sub link is black-holed is answered `unavailable`
    and leaves the connection unauthenticated; the same connection signs in once the
    link is back, and its replay holds what happened meanwhile (nothing skipped)."""
    proxy = TcpProxy(cluster.redis.port).start()
    try:
        proxied = start_node(cluster, proxy.redis_url)
        cluster.start_nodes(1)
        fol = await cluster.connect("fol", 0)
        bob = await cluster.connect("bob", 1)
        await fol.client.call("follow", user="bob")
        cursor = fol.client.cursor
        await fol.client.close()

        assert proxy.blackhole(b"SUBSCRIBE") == 1, "one pub/sub link held"
        await bob.client.call("post", text="during the stall")
        client = await WsClient.open(proxied.url)
        cluster.clients.append(client)
        token = issue_token("fol", SECRET)
        failed = await client.call_raw("auth", token=token, cursor=cursor)
        assert isinstance(failed, ErrorReply), f"auth during the stall got {failed}"
        assert failed.code is ErrorCode.UNAVAILABLE, failed
        refused = await client.call_raw("feed.home")
        assert isinstance(refused, ErrorReply) and refused.code is ErrorCode.UNAUTHORIZED

        proxy.pass_traffic()
        await proxied.wait_readyz(200)
        retried = await client.call_raw("auth", token=token, cursor=cursor)
        assert isinstance(retried, Reply), f"retrying auth got {retried}"
        assert retried.result["replayed"] == 1, retried.result
        replayed = await client.next_event("feed.insert")
        assert replayed.data["text"] == "during the stall"
    finally:
        proxy.close()
