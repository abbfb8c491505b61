"""The Redis Bus: each node subscribes only to the channels its sessions need.

Theory of operation: changes are published by the write scripts that commit them (the
change-log library of ``redis_append``), once per route key of the change
(``<ns>c:f:<author>``, ``<ns>c:s:public``, ...), atomically with their sequence number;
follow updates by ``redis_store``'s follow scripts on the follower's ``d:`` channel;
presence changes here, on the user's ``f:`` channel. So :meth:`RedisBus.publish` sends
presence only. The pieces a bus on Redis Cluster shares with this one
(``redis_cluster_bus``) live here too: :func:`bus_message` reads what was published,
:class:`PresenceSender` sends presence, :class:`Handlers` calls the handlers.

The node's fan-out calls :meth:`watch` when a route key gets its first local session and
:meth:`unwatch` when its last one leaves (reference counting lives in the fan-out). One
:class:`~hub.backends.redis_subscriber.Subscriber` keeps the node's subscriber connection
subscribed to those channels, confirms them (:meth:`settled`), watches the link's health
and reconnects. Because Redis delivers to one connection in publish order and the append
script publishes in sequence order, changes arrive in increasing ``seq``; one change
published on several channels this node watches arrives several times in a row, and
every copy with ``seq <= last_seq`` is dropped. After a reconnect, before any message of
the new connection, the handlers get :class:`~hub.backends.base.BusGap`
``(after=last_seq)``: the node then makes each session replay what it may have missed
from the change log. :attr:`connected` is False while down (the node reports not ready).

Presence changes are published from a queue by a task of their own: :meth:`publish`
returns at once, and while Redis is unavailable the task retries with the same backoff
until they are out, in order, up to :data:`PUBLISH_BATCH` per round trip. Should the
queue grow past :data:`QUEUE_LIMIT` (a long outage under churn), it is compacted to the
latest state of each user: bounded by the number of users, still in order per user.

Logging: one WARNING when the subscriber connection is lost or declared dead
(``redis_subscriber``), one when publishing starts failing; retries log at DEBUG,
recoveries at INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from hub.backends.base import BusGap, BusHandler, BusMessage, FollowChange
from hub.backends.redis_append import change_from_json
from hub.backends.redis_link import UNAVAILABLE_ERRORS, Keys, connect, raise_if_cancelled
from hub.backends.redis_subscriber import Subscriber
from hub.background import stop_task
from hub.names import FollowersKey, RouteKey
from hub.records import Change, PresenceChange, RelationChange, RelationKind

__all__ = ["Handlers", "PresenceSender", "RedisBus", "bus_message", "presence_payload"]

log = logging.getLogger(__name__)

_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0

PUBLISH_BATCH = 500
"""Presence changes sent in one pipelined round trip."""
QUEUE_LIMIT = 100_000
"""Queued presence changes beyond which the queue keeps only each user's latest."""
FLUSH_TIMEOUT = 2.0
"""Seconds :meth:`PresenceSender.close` waits for queued presence changes to go out."""


def bus_message(fields: dict[str, Any]) -> BusMessage | None:
    """The message a published payload (decoded) stands for: a change (``"t": "c"``,
    with its ``seq``), presence, a follow or a relation; None for an unknown kind."""
    kind = fields["t"]
    if kind == "c":
        return change_from_json(int(fields["seq"]), fields["c"])
    if kind == "p":
        return PresenceChange(fields["user"], bool(fields["online"]))
    if kind == "f":
        return FollowChange(
            fields["follower"], fields["followee"], bool(fields["on"]), int(fields["after"])
        )
    if kind == "r":
        return RelationChange(
            fields["actor"],
            fields["target"],
            RelationKind(fields["kind"]),
            bool(fields["on"]),
            fields.get("until"),
            fields["to"],
        )
    return None


def presence_payload(change: PresenceChange) -> bytes:
    """What a presence change is published as."""
    return orjson.dumps({"t": "p", "user": change.user, "online": change.online})


class Handlers:
    """The bus handlers of one node: each message goes to every one, and one that fails
    is logged without stopping the others."""

    def __init__(self) -> None:
        self._handlers: list[BusHandler] = []

    def add(self, handler: BusHandler) -> None:
        """Call ``handler`` for every message dispatched from now on."""
        self._handlers.append(handler)

    def dispatch(self, message: BusMessage | Change) -> None:
        """Hand ``message`` to every handler."""
        for handler in self._handlers:
            try:
                handler(message)
            except Exception:
                log.exception("bus handler %r failed on %r", handler, message)


class PresenceSender:
    """Publishes presence changes from a queue by a task of its own (see the module
    docstring); ``send`` publishes one batch."""

    def __init__(self, send: Callable[[list[PresenceChange]], Awaitable[None]]) -> None:
        self._send = send
        self._outgoing: deque[PresenceChange] = deque()
        self._compact_at = QUEUE_LIMIT
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def queue(self, change: PresenceChange) -> None:
        """Queue ``change``; it goes out in order, retried while Redis is unavailable."""
        self._outgoing.append(change)
        if len(self._outgoing) > self._compact_at:
            self._compact()
        self._idle.clear()
        self._wakeup.set()

    def _compact(self) -> None:
        """Keep each user's latest queued change, in the order of those changes."""
        latest: dict[str, PresenceChange] = {}
        for change in self._outgoing:
            latest.pop(change.user, None)
            latest[change.user] = change
        self._outgoing = deque(latest.values())
        self._compact_at = max(QUEUE_LIMIT, 2 * len(self._outgoing))

    def start(self) -> None:
        """Start the publishing task."""
        self._task = asyncio.get_running_loop().create_task(self._publish_forever())

    async def close(self) -> None:
        """Send what is queued (for up to :data:`FLUSH_TIMEOUT` s), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_TIMEOUT):
                await self._idle.wait()
        await stop_task(self._task)

    async def _publish_forever(self) -> None:
        backoff = _BACKOFF_MIN
        failing = False
        while True:
            raise_if_cancelled()
            if not self._outgoing:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            outgoing = self._outgoing
            batch = [outgoing.popleft() for _ in range(min(PUBLISH_BATCH, len(outgoing)))]
            try:
                await self._send(batch)
            except Exception as exc:
                if not isinstance(exc, UNAVAILABLE_ERRORS):
                    log.exception("publishing %d presence changes failed", len(batch))
                    continue
                raise_if_cancelled()
                self._outgoing.extendleft(reversed(batch))  # first again, in order
                if not failing:
                    log.warning("presence not published yet (%s); retrying", exc)
                failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            else:
                if failing:
                    log.info("presence published again")
                failing = False
                backoff = _BACKOFF_MIN


class RedisBus:
    """Bus implementation over Redis pub/sub (see the module docstring)."""

    def __init__(self, url: str, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._k = keys
        self._handlers = Handlers()
        self._subscriber = Subscriber(
            self._connect_subscriber(url),
            keys.control_channel(),
            lambda _channel, data: self._receive(data),
            self._gap,
            logger=log,
        )
        self._presence = PresenceSender(self._send)
        self.last_seq = 0
        """The highest change sequence received."""

    @staticmethod
    def _connect_subscriber(url: str) -> Callable[[], Awaitable[aioredis.Redis]]:
        async def connected() -> aioredis.Redis:
            return connect(url, retries=0)

        return connected

    @property
    def connected(self) -> bool:
        """Whether the subscriber connection is up."""
        return self._subscriber.connected

    @property
    def reconnects(self) -> int:
        """How many times the subscriber connection was lost and made again."""
        return self._subscriber.reconnects

    # -- the Bus seam -------------------------------------------------------------

    async def publish(self, message: BusMessage) -> None:
        """Queue a presence change for its user's channel (other messages: see module).

        It is sent by the publishing task, retried while Redis is unavailable (see the
        module docstring).
        """
        if isinstance(message, PresenceChange):
            self._presence.queue(message)

    def subscribe(self, handler: BusHandler) -> None:
        """Call ``handler`` for every message received from now on."""
        self._handlers.add(handler)

    def watch(self, key: RouteKey) -> None:
        """Subscribe to the channel of route key ``key`` (asynchronously; see settled)."""
        self._subscriber.want(self._k.channel(key))

    def unwatch(self, key: RouteKey) -> None:
        """Unsubscribe from the channel of route key ``key``."""
        self._subscriber.drop(self._k.channel(key))

    async def settled(self) -> None:
        """Wait until connected and the subscription of every key watched *before this
        call* is confirmed (not the ones watched later)."""
        await self._subscriber.settled()

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the subscriber and the publishing tasks."""
        self._subscriber.start()
        self._presence.start()

    async def close(self) -> None:
        """Send what is queued (for up to :data:`FLUSH_TIMEOUT` s), then stop both tasks
        and their connections."""
        await self._presence.close()
        await self._subscriber.close()

    # -- what the subscriber hears ------------------------------------------------

    def _gap(self) -> None:
        """The subscriber reconnected: messages after ``last_seq`` may be lost."""
        log.info("replaying after seq %d", self.last_seq)
        self._handlers.dispatch(BusGap(self.last_seq))

    def _receive(self, data: str) -> None:
        fields = orjson.loads(data)
        if fields["t"] == "c":  # a repeat is dropped before its change is built
            seq = int(fields["seq"])
            if seq <= self.last_seq:
                return
            self.last_seq = seq
        message = bus_message(fields)
        if message is None:
            log.warning("ignoring an unknown bus message %r", data[:80])
            return
        self._handlers.dispatch(message)

    async def _send(self, batch: list[PresenceChange]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for change in batch:
                pipe.publish(self._k.channel(FollowersKey(change.user)), presence_payload(change))
            await pipe.execute()
