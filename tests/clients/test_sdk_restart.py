"""The SDK across a real hub process being killed, restarted and drained."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from clients import FeedInsert, FeedView, RequestTimeout, connect
from tests.clients.conftest import FAST, SECRET, token
from tests.clients.test_sdk_resume import bob_writes, converged
from tests.hub.serverproc import ServerProcess


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_hub_restarts_on_the_same_data_dir(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(tmp_path / "data", SECRET, "--port", str(port), "--write-burst", "100")
    server.start()
    try:
        alice = await connect(server.url, token=token("alice"), **FAST)
        bob = await connect(server.url, token=token("bob"), **{**FAST, "request_timeout": 20})
        impatient = await connect(server.url, token=token("carol"), request_timeout=0.2)
        await alice.follow("bob")
        posts = [(await bob.post("before")).id]
        seen: list[int] = []
        alice.connection.add_listener(
            lambda e: seen.append(e.post.id) if isinstance(e, FeedInsert) else None
        )
        view = await FeedView(alice, limit=5).start()

        await asyncio.to_thread(server.kill)
        with pytest.raises(RequestTimeout):
            await impatient.ping()
        await asyncio.to_thread(server.start)
        await bob_writes(bob, posts, 5, "after kill")  # waits for bob's reconnect
        await converged(view, alice)

        await asyncio.to_thread(server.terminate)  # drain: notice, close 4000
        await asyncio.to_thread(server.start)
        await bob_writes(bob, posts, 5, "after drain")
        await converged(view, alice)

        stats = alice.connection.stats
        assert stats.reconnects == 2 and stats.resumes == 2 and stats.resyncs == 0
        assert sorted(seen) == sorted(set(seen)) and set(posts) <= set(seen)
        for client in (alice, bob, impatient):
            await client.close()
    finally:
        server.kill()
