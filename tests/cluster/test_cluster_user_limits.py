"""Per-user limits across two node processes on one Redis: a user's writes share one
bucket and their connections one cap, whichever node they land on; a killed node's
connections stop counting once its heartbeat lapses."""

from __future__ import annotations

import asyncio
import time

from hub.tokens import issue_token
from protocol import Reply
from protocol.errors import CloseCode
from tests.cluster.conftest import PRESENCE_TTL, SECRET, Cluster, NodeProcess
from tests.hub.wsclient import WsClient, assert_held_to_user_rate

RECOVERS_WITHIN = PRESENCE_TTL + 5.0
"""A dead node's entry lapses after the presence TTL; slack for a loaded machine."""


async def test_one_user_on_two_nodes_is_held_to_the_per_user_rate(cluster: Cluster) -> None:
    relaxed = ("--write-rate", "1000", "--write-burst", "1000")
    cluster.start_nodes(2, *relaxed, "--user-write-rate", "5", "--user-write-burst", "20")
    clients = [(await cluster.connect("mallory", i % 2)).client for i in range(8)]
    await assert_held_to_user_rate(clients, 5, 20)
    bob = await cluster.connect("bob", 1)
    assert "id" in await bob.client.call("post", text="others are not held back")


async def _auth(node: NodeProcess, user: str, cluster: Cluster) -> WsClient | None:
    """A client of ``user`` on ``node``, or None when the cap refused it (after its
    ``conflict`` reply and 4004 close)."""
    client = await WsClient.open(node.url)
    cluster.clients.append(client)
    reply = await client.call_raw("auth", token=issue_token(user, SECRET))
    if isinstance(reply, Reply):
        return client
    assert reply.code.value == "conflict" and "2 connections" in reply.message
    assert await client.closed_code() == CloseCode.TOO_MANY_CONNECTIONS
    return None


async def test_the_connection_cap_spans_nodes_and_a_killed_node_stops_counting(
    cluster: Cluster,
) -> None:
    doomed, survivor = cluster.start_nodes(2, "--connections-per-user", "2")
    assert await _auth(doomed, "ann", cluster) is not None
    assert await _auth(survivor, "ann", cluster) is not None
    assert await _auth(survivor, "ann", cluster) is None  # one on each node: the cap
    assert await _auth(doomed, "ann", cluster) is None
    doomed.kill()
    deadline = time.monotonic() + RECOVERS_WITHIN
    while await _auth(survivor, "ann", cluster) is None:  # until the dead entry lapses
        assert time.monotonic() < deadline, "a killed node's connections still count"
        await asyncio.sleep(0.2)  # polling another process's state, not a timer
    assert await _auth(survivor, "ann", cluster) is None  # two live ones: the cap again
