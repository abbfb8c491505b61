"""Bus and Presence contract (a shared bus delivers asynchronously: tests await delivery)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from hub.backends.base import BusMessage, FollowChange
from hub.names import PUBLIC, FollowersKey, RouteKey, Stream, StreamKey
from hub.records import PresenceChange
from tests.backends.backend_harness import Backends, post_change

WAIT = 10.0


class Collector:
    """A bus handler that queues what it receives, for tests to await."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[BusMessage] = asyncio.Queue()

    def __call__(self, message: BusMessage) -> None:
        """Receive one message."""
        self.queue.put_nowait(message)

    async def take(self, count: int) -> list[BusMessage]:
        """The next ``count`` messages (fails the test after WAIT seconds)."""
        async with asyncio.timeout(WAIT):
            return [await self.queue.get() for _ in range(count)]


async def watching(backend: Backends, *keys: RouteKey) -> None:
    """Watch route keys and wait until that is in effect."""
    for key in keys:
        backend.bus.watch(key)
    await backend.bus.settled()


async def is_follow(backend: Backends, message: object, expected: FollowChange) -> bool:
    """Whether ``message`` is ``expected`` but for ``after``, which is between
    ``expected.after`` and the head now (both the same where numbers are dense; on a
    cluster, the head of the followee's partition after the write)."""
    if not isinstance(message, FollowChange):
        return False
    same = dataclasses.replace(message, after=expected.after) == expected
    return same and expected.after <= message.after <= await backend.changelog.head()


async def test_bus_delivers_to_every_handler_in_publish_order(backend: Backends) -> None:
    first, second = Collector(), Collector()
    backend.bus.subscribe(first)
    backend.bus.subscribe(second)
    await watching(backend, FollowersKey("ann"))
    messages = [PresenceChange("ann", True), PresenceChange("ann", False)]
    for message in messages:
        await backend.bus.publish(message)
    assert await first.take(2) == messages and await second.take(2) == messages


async def test_appended_changes_arrive_once_each_in_seq_order(backend: Backends) -> None:
    got = Collector()
    backend.bus.subscribe(got)
    await watching(
        backend, FollowersKey("ann"), StreamKey(PUBLIC), StreamKey(Stream.parse("tag:x"))
    )
    changes = await backend.changelog.append(
        [post_change("ann", 1, tags=("x",)), post_change("ann", 2)]
    )
    assert await got.take(2) == changes  # the append published them, once each
    await backend.bus.publish(PresenceChange("ann", True))
    assert await got.take(1) == [PresenceChange("ann", True)]  # no duplicate came first


async def test_failing_handler_is_logged_not_raised(
    backend: Backends, caplog: pytest.LogCaptureFixture
) -> None:
    received = Collector()

    def broken(message: BusMessage) -> None:
        raise RuntimeError("boom")

    backend.bus.subscribe(broken)
    backend.bus.subscribe(received)
    await watching(backend, FollowersKey("ann"))
    with caplog.at_level(logging.ERROR):
        await backend.bus.publish(PresenceChange("ann", True))
        assert await received.take(1) == [PresenceChange("ann", True)]
    assert "boom" in caplog.text


async def test_presence_counts_connections(backend: Backends) -> None:
    presence = backend.presence
    assert await presence.connect("ann")
    assert not await presence.connect("ann")
    assert await presence.connect("bob")
    assert await presence.online(["ann", "bob", "cat"]) == {"ann", "bob"}
    assert not await presence.disconnect("ann")
    assert await presence.disconnect("ann")
    assert await presence.online(["ann", "bob"]) == {"bob"}
