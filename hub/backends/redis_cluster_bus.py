"""The Bus on Redis Cluster: sharded pub/sub, one subscriber per partition, one merged order.

Theory of operation (docs/cluster.md 1-2): a route key's channels are shard channels in
the slot of their partition (:meth:`Partitions.channels`: a user's in the user's partition,
the public stream and a hashtag in every partition), so a change's publication reaches only
the shard that owns it, and its partition's write script publishes it with ``SPUBLISH`` in
the same slot it writes. This bus keeps one
:class:`~hub.backends.redis_subscriber.Subscriber` per partition, connected to that
partition's master (looked up in the cluster's slot map on every connect, so a failover
moves it) and subscribed with ``SSUBSCRIBE`` to the partition's tick channel (its control
channel) and to the channels of the watched keys that live there.

Each partition's messages arrive in that partition's order; a
:class:`~hub.backends.partition_merge.PartitionMerge` turns them into one order: a change
waits until every partition has been heard at or above its number, and the bus asks quiet
partitions for a tick (``close``, :class:`~hub.backends.redis_partitions.PartitionCounters`)
as the merge wants, retrying after a backoff while a partition does not answer. Follow and
relation messages keep their place after the last change of their partition (a follow
also after the number it carries: its other half's partition's head); presence is
ephemeral and handed on at once.

When a partition's subscriber reconnects, the handlers get
:class:`~hub.backends.base.BusGap` ``(after=released)``: everything numbered up to the
merge's released position was handed on, and what the partition published meanwhile is
replayed from the change log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from hub.backends.base import BusGap, BusHandler, BusMessage, FollowChange
from hub.backends.partition_merge import PartitionMerge
from hub.backends.partitions import Partitions
from hub.backends.redis_bus import Handlers, PresenceSender, bus_message, presence_payload
from hub.backends.redis_link import UNAVAILABLE_ERRORS, connect
from hub.backends.redis_partitions import PartitionCounters
from hub.backends.redis_subscriber import Subscriber
from hub.background import stop_task
from hub.names import FollowersKey, RouteKey
from hub.records import Change, PresenceChange

__all__ = ["ClusterBus"]

log = logging.getLogger(__name__)

CLOSE_LEAD = 1024
"""A close raises a quiet partition this many of its own numbers past the highest number
held, so that it holds nothing up for about as many changes of the busy partitions (one
close per partition per ~1000 changes instead of one per change: B4C)."""

CLOSE_RETRY = 0.2
"""Seconds before a failed close of a quiet partition is tried again."""


class ClusterBus:
    """Bus implementation over Redis Cluster sharded pub/sub (see the module docstring)."""

    def __init__(self, cluster: RedisCluster, partitions: Partitions) -> None:
        self._cluster = cluster
        self._parts = partitions
        self._counters = PartitionCounters(cluster, partitions)
        lead = CLOSE_LEAD * partitions.count
        self._merge: PartitionMerge[BusMessage] = PartitionMerge(partitions, lead=lead)
        self._handlers = Handlers()
        self._subscribers = [
            Subscriber(
                self._connect_to(part),
                partitions.tick_channel(part),
                self._receiver(part),
                self._gap,
                sharded=True,
                logger=log,
            )
            for part in range(partitions.count)
        ]
        self._presence = PresenceSender(self._send)
        self._closing: set[asyncio.Task[None]] = set()
        self._retry: asyncio.TimerHandle | None = None

    @property
    def connected(self) -> bool:
        """Whether every partition's subscriber is up."""
        return all(subscriber.connected for subscriber in self._subscribers)

    @property
    def released(self) -> int:
        """Every change numbered up to this has been handed on (see PartitionMerge)."""
        return self._merge.released

    # -- the Bus seam -------------------------------------------------------------

    async def publish(self, message: BusMessage) -> None:
        """Queue a presence change for its user's channel (changes, follows and
        relations are published by the write scripts)."""
        if isinstance(message, PresenceChange):
            self._presence.queue(message)

    def subscribe(self, handler: BusHandler) -> None:
        """Call ``handler`` for every message received from now on."""
        self._handlers.add(handler)

    def watch(self, key: RouteKey) -> None:
        """Subscribe to the channels of route key ``key`` (asynchronously; see settled)."""
        for part, channel in self._parts.channels(key):
            self._subscribers[part].want(channel)

    def unwatch(self, key: RouteKey) -> None:
        """Unsubscribe from the channels of route key ``key``."""
        for part, channel in self._parts.channels(key):
            self._subscribers[part].drop(channel)

    async def settled(self) -> None:
        """Wait until every partition's subscriber is connected and has confirmed every
        key watched *before this call*."""
        await asyncio.gather(*(subscriber.settled() for subscriber in self._subscribers))

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the subscribers and the presence publisher."""
        for subscriber in self._subscribers:
            subscriber.start()
        self._presence.start()

    async def close(self) -> None:
        """Send the queued presence (briefly), then stop every task and connection."""
        await self._presence.close()
        if self._retry is not None:
            self._retry.cancel()
        for task in list(self._closing):
            await stop_task(task)
        for subscriber in self._subscribers:
            await subscriber.close()

    # -- connections --------------------------------------------------------------

    def _connect_to(self, part: int) -> Callable[[], Awaitable[aioredis.Redis]]:
        """How partition ``part``'s subscriber connects: to the master of its slot now."""
        counter = self._parts.counter(part)

        async def connected() -> aioredis.Redis:
            try:
                await self._cluster.nodes_manager.initialize()  # a failover moves slots
            except Exception as exc:  # redis-py raises its own error when no node answers
                raise ConnectionError(f"no node of the cluster answers: {exc}") from exc
            node = self._cluster.get_node_from_key(counter)
            if node is None:
                raise ConnectionError(f"no master serves partition {part}")
            return connect(f"redis://{node.host}:{node.port}/0", retries=0)

        return connected

    # -- what the subscribers hear ------------------------------------------------

    def _receiver(self, part: int) -> Callable[[str, str], None]:
        tick = self._parts.tick_channel(part)

        def receive(channel: str, data: str) -> None:
            if channel == tick:
                self._hand_on(self._merge.tick(part, int(data)))
                return
            fields: dict[str, Any] = orjson.loads(data)
            if fields["t"] == "c" and int(fields["seq"]) <= self._merge.watermarks[part]:
                return  # a repeat, dropped before its change is built
            message = bus_message(fields)
            if message is None:
                log.warning("ignoring an unknown bus message %r", data[:80])
            elif isinstance(message, Change):
                self._hand_on(self._merge.heard(message.seq, message))
            elif isinstance(message, PresenceChange):
                self._handlers.dispatch(message)
            elif isinstance(message, FollowChange):
                self._hand_on(self._merge.follows(part, message, message.after))
            else:
                self._hand_on(self._merge.follows(part, message))

        return receive

    def _hand_on(self, released: list[BusMessage]) -> None:
        for message in released:
            self._handlers.dispatch(message)
        self._ask_closes()

    def _gap(self) -> None:
        """A partition's subscriber reconnected: what it published meanwhile is lost."""
        log.info("replaying after seq %d", self._merge.released)
        self._handlers.dispatch(BusGap(self._merge.released))

    # -- closing quiet partitions ---------------------------------------------------

    def _ask_closes(self) -> None:
        loop = asyncio.get_running_loop()
        for part, target in self._merge.closes_wanted():
            task = loop.create_task(self._close(part, target))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _close(self, part: int, target: int) -> None:
        try:
            await self._counters.close(part, target)
        except Exception as exc:  # unavailable, or the cluster down or moving its slot
            if not isinstance(exc, UNAVAILABLE_ERRORS | ResponseError):
                log.exception("closing partition %d failed; retrying", part)
            log.debug("closing partition %d failed (%s); retrying", part, exc)
            self._merge.close_ended(part)
            if self._retry is None:
                self._retry = asyncio.get_running_loop().call_later(CLOSE_RETRY, self._retried)
            return
        self._merge.close_ended(part)
        self._ask_closes()  # the merge may want a higher target by now

    def _retried(self) -> None:
        self._retry = None
        self._ask_closes()

    # -- presence -----------------------------------------------------------------

    async def _send(self, batch: list[PresenceChange]) -> None:
        for change in batch:
            [(_, channel)] = self._parts.channels(FollowersKey(change.user))
            await self._cluster.spublish(channel, presence_payload(change))
