"""The bus's subscriber connection drops while Redis stays up: the gap is reported and
sessions catch up from the change log, exactly once, in order."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from hub import session as session_module
from hub.backends.base import BackendUnavailable, BusGap, BusMessage
from hub.backends.bundle import Backends, open_redis
from hub.backends.redis_bus import RedisBus
from hub.names import FollowersKey
from hub.node import Node
from hub.routing import route_keys
from hub.tokens import issue_token
from protocol.errors import CloseCode
from tests.backends.backend_harness import post_change
from tests.hub.conftest import SECRET, make_settings
from tests.hub.wsclient import WAIT, WsClient
from tests.redisproc import RedisServer


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the test's redis-server."""
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def backends(redis_server: RedisServer) -> AsyncIterator[Backends]:
    """The Redis backend bundle in this process."""
    opened = await open_redis(
        redis_server.url,
        route_keys=route_keys,
        retention_seconds=60,
        retention_per_log=100,
        fanout_limit=100,
        presence_ttl=1.5,
    )
    yield opened
    await opened.close()


async def test_dropped_subscriber_reports_the_gap_first(
    backends: Backends, admin: aioredis.Redis
) -> None:
    received: asyncio.Queue[BusMessage] = asyncio.Queue()
    backends.bus.subscribe(received.put_nowait)
    backends.bus.watch(FollowersKey("ann"))
    await backends.bus.settled()
    (first,) = await backends.changelog.append([post_change("ann", 1)])
    async with asyncio.timeout(WAIT):
        assert await received.get() == first
        await admin.client_kill_filter(_type="pubsub")
        (missed,) = await backends.changelog.append([post_change("ann", 2)])  # in the gap
        assert await received.get() == BusGap(after=first.seq)
        await backends.bus.settled()
        (later,) = await backends.changelog.append([post_change("ann", 3)])
        assert await received.get() == later  # the missed one never came live
    assert missed.seq < later.seq


async def test_sessions_catch_up_after_a_bus_gap(
    tmp_path: Path, redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    settings = dataclasses.replace(make_settings(tmp_path), redis_url=redis_server.url)
    node = await Node.start(settings)
    url = f"ws://127.0.0.1:{node.port}/"
    try:
        ann, bob = await WsClient.open(url), await WsClient.open(url)
        await ann.call("auth", token=issue_token("ann", SECRET))
        await bob.call("auth", token=issue_token("bob", SECRET))
        await ann.call("follow", user="bob")
        await admin.client_kill_filter(_type="pubsub")
        texts = [f"post {i}" for i in range(5)]
        for text in texts:
            await bob.call("post", text=text)
        got = [(await ann.next_event("feed.insert")).data["text"] for _ in texts]
        assert got == texts
        await bob.call("post", text="live")
        assert (await ann.next_event("feed.insert")).data["text"] == "live"
        assert ann.events.empty()
        assert isinstance(node.bus, RedisBus) and node.bus.reconnects == 1
        await ann.close()
        await bob.close()
    finally:
        await node.drain()


class FlakyReads:
    """Fault injection on the store's read: the next ``failures`` change-log reads raise
    BackendUnavailable as a saturated Redis pool does; later reads go to Redis."""

    def __init__(self, node: Node, failures: int) -> None:
        self.failures = failures
        self._read = node.changelog.read_since

    async def __call__(self, *args: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise BackendUnavailable("redis unavailable: No connection available.")
        return await self._read(*args)


async def _gap_with_flaky_reads(
    tmp_path: Path,
    redis_server: RedisServer,
    admin: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    failures: int,
) -> tuple[Node, WsClient, WsClient]:
    """A node whose subscriber connection is killed while its next ``failures`` log
    reads fail; ann follows bob. Returns the node, ann and bob (bob posts in the gap)."""
    monkeypatch.setattr(session_module, "CATCH_UP_BACKOFF", 0.01)
    settings = dataclasses.replace(make_settings(tmp_path), redis_url=redis_server.url)
    node = await Node.start(settings)
    url = f"ws://127.0.0.1:{node.port}/"
    ann, bob = await WsClient.open(url), await WsClient.open(url)
    await ann.call("auth", token=issue_token("ann", SECRET))
    await bob.call("auth", token=issue_token("bob", SECRET))
    await ann.call("follow", user="bob")
    await bob.call("post", text="before")  # ann gets it once the follow's catch-up is done
    assert (await ann.next_event("feed.insert")).data["text"] == "before"
    monkeypatch.setattr(node.changelog, "read_since", FlakyReads(node, failures))
    await admin.client_kill_filter(_type="pubsub")
    await bob.call("post", text="in the gap")
    return node, ann, bob


async def test_a_catch_up_retries_while_the_store_is_briefly_unavailable(
    tmp_path: Path,
    redis_server: RedisServer,
    admin: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = session_module.CATCH_UP_ATTEMPTS - 1
    node, ann, bob = await _gap_with_flaky_reads(
        tmp_path, redis_server, admin, monkeypatch, failures
    )
    try:
        assert (await ann.next_event("feed.insert")).data["text"] == "in the gap"
        await bob.call("post", text="live")
        assert (await ann.next_event("feed.insert")).data["text"] == "live"
        assert ann.events.empty()
        assert node.metrics.catch_up_retries._value.get() == failures
        await ann.close()
        await bob.close()
    finally:
        await node.drain()


async def test_a_catch_up_that_keeps_failing_closes_with_4002(
    tmp_path: Path,
    redis_server: RedisServer,
    admin: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = session_module.CATCH_UP_ATTEMPTS
    node, ann, bob = await _gap_with_flaky_reads(
        tmp_path, redis_server, admin, monkeypatch, failures
    )
    try:
        assert await ann.closed_code() == CloseCode.INTERNAL  # reconnect and resume
        await bob.close()
    finally:
        await node.drain()
