"""The node-wide keepalive: answering clients stay, silent ones are closed with 1011,
and no connection carries a keepalive task of its own."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from hub.keepalive import Keepalive
from hub.node import Node
from hub.tokens import issue_token
from tests.hub.conftest import SECRET
from tests.hub.wsclient import WAIT, WsClient

pytestmark = pytest.mark.node_settings(ping_interval=0.5)


async def _silent_websocket(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that completes the opening handshake and then never answers a ping
    (what a vanished peer looks like to the hub)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: hubbub.v1.json\r\n\r\n"
        ).encode()
    )
    status = await reader.readline()
    assert b" 101 " in status
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def _close_code(reader: asyncio.StreamReader) -> int:
    """Read server frames (small, unmasked) until the close frame; return its code."""
    while True:
        opcode, length = await reader.readexactly(2)
        payload = await reader.readexactly(length & 0x7F)
        if opcode & 0x0F == 0x8:
            return int.from_bytes(payload[:2], "big")


async def test_a_client_that_answers_pings_stays_connected(node: Node) -> None:
    client = await WsClient.open(f"ws://127.0.0.1:{node.port}/")
    for _ in range(3):
        await node.keepalive.check(node.open_connections())  # waits for the pongs
    assert "user" in await client.call("auth", token=issue_token("ann", SECRET))
    await client.close()


async def test_a_silent_connection_is_closed_with_1011(node: Node) -> None:
    reader, writer = await _silent_websocket(node.port)
    try:
        async with asyncio.timeout(WAIT):
            assert await _close_code(reader) == 1011  # after pings it left unanswered
        assert node.metrics.closes.labels("1011")._value.get() == 1
    finally:
        writer.close()


async def test_connections_have_no_keepalive_task_of_their_own(node: Node) -> None:
    client = await WsClient.open(f"ws://127.0.0.1:{node.port}/")
    (connection,) = list(node.open_connections())
    assert connection.keepalive_task is None
    await client.close()


class StuckPeer:
    """Stands in for a connection whose socket buffer is full: ``ping()`` itself waits
    for a drain that never comes (what websockets does for a peer that stopped reading)."""

    async def ping(self) -> asyncio.Future[float]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.mark.node_settings(ping_interval=0)  # only this test's sweeper pings
async def test_a_stuck_peer_does_not_hold_up_the_verdict_on_others(node: Node) -> None:
    client = await WsClient.open(f"ws://127.0.0.1:{node.port}/")
    _, writer = await _silent_websocket(node.port)
    real = list(node.open_connections())
    stuck = StuckPeer()
    dead: list[object] = []
    sweeper = Keepalive(lambda: [], 0.5, dead.append)
    try:
        async with asyncio.timeout(WAIT):
            await sweeper.check([stuck, *real])  # type: ignore[list-item]  # one interval
        assert len(dead) == 2 and dead[0] is stuck  # and the silent one; not the client
        assert "user" in await client.call("auth", token=issue_token("ann", SECRET))
    finally:
        writer.close()
        await client.close()
