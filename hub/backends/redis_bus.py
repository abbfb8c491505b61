"""The Redis Bus: each node subscribes only to the channels its sessions need.

Theory of operation: changes are published by the write scripts that commit them (the
change-log library of ``redis_append``), once per route key of the change
(``<ns>c:f:<author>``, ``<ns>c:s:public``, ...), atomically with their sequence number;
follow updates by ``redis_store``'s follow scripts on the follower's ``d:`` channel;
presence changes here, on the user's ``f:`` channel. So :meth:`RedisBus.publish` sends
presence only.

The node's fan-out calls :meth:`watch` when a route key gets its first local session and
:meth:`unwatch` when its last one leaves (reference counting lives in the fan-out). A
background task owns one subscriber connection: it sends the (un)subscriptions in batches,
reads messages and calls the handlers. Because Redis delivers to one connection in publish
order and the append script publishes in sequence order, changes arrive in increasing
``seq``; one change published on several channels this node watches arrives several
times in a row, and every copy with ``seq <= last_seq`` is dropped.

:meth:`settled` returns once the keys watched *before the call* are subscribed (each
watch is numbered; the call waits until no older watch is unconfirmed), not every key
watched since: in a sign-in storm new keys keep coming, and a sign-in waits for its own.
Confirmations, watches and (un)subscriptions cost O(1) each (the subscriber sends only
the channels touched since its last round), whatever the number of watched keys or of
sign-ins waiting.

When the connection breaks (Redis restarted, network), the task reconnects with
exponential backoff (50 ms doubling up to 2 s), resubscribes every watched key and, before
handing on any message of the new connection, calls the handlers with
:class:`~hub.backends.base.BusGap` ``(after=last_seq)``: the node then makes each session
replay what it may have missed from the change log. :attr:`connected` is False while
down (the node reports not ready).

A connection can also die silently (a partition, a frozen peer: no FIN, no RST), and a
subscriber connection never sends anything of its own, so nothing would ever fail. Hence
the health check: every :data:`PING_INTERVAL` seconds the task sends PING on the
subscriber connection itself; when nothing at all (the PONG, or any message: a busy
connection is plainly alive) arrives within :data:`PING_TIMEOUT` seconds, the connection
is declared dead and closed, and the reconnect above follows. A dead link is thus noticed
within 1.5 s. (Over RESP3, redis-py hands the PONG of a subscribed connection on as a
malformed message; any message will do.)

Presence changes are published from a queue by a task of their own: :meth:`publish`
returns at once, and while Redis is unavailable the task retries with the same backoff
until they are out, in order, up to :data:`PUBLISH_BATCH` per round trip. Should the
queue grow past :data:`QUEUE_LIMIT` (a long outage under churn), it is compacted to the
latest state of each user: bounded by the number of users, still in order per user.

Logging: one WARNING when the subscriber connection is lost or declared dead, one when
publishing starts failing; retries log at DEBUG, recoveries at INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import OrderedDict, deque
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.backends.base import BusGap, BusHandler, BusMessage, FollowChange
from hub.backends.redis_append import change_from_json
from hub.backends.redis_link import UNAVAILABLE_ERRORS, Keys, connect, raise_if_cancelled
from hub.background import stop_task
from hub.names import FollowersKey, RouteKey
from hub.records import Change, PresenceChange, RelationChange, RelationKind

__all__ = ["RedisBus"]

log = logging.getLogger(__name__)

_BATCH = 1000
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0

PING_INTERVAL = 0.5
"""Seconds between the end of one subscriber health check and the next PING."""
PING_TIMEOUT = 1.0
"""Seconds the subscriber connection may stay silent after a PING before it is dead.

A PING's round trip is well under a millisecond; 1 s leaves room for a busy event loop
while a dead link is still noticed (and the node not ready) within 1.5 s."""
PUBLISH_BATCH = 500
"""Presence changes sent in one pipelined round trip."""
QUEUE_LIMIT = 100_000
"""Queued presence changes beyond which the queue keeps only each user's latest."""
FLUSH_TIMEOUT = 2.0
"""Seconds :meth:`RedisBus.close` waits for queued presence changes to go out."""


class RedisBus:
    """Bus implementation over Redis pub/sub (see the module docstring)."""

    def __init__(self, url: str, client: aioredis.Redis, keys: Keys) -> None:
        self._url = url
        self._client = client
        self._k = keys
        self._handlers: list[BusHandler] = []
        self._wanted: dict[str, int] = {}
        """The watched channels, each with the number of its watch (increasing)."""
        self._watches = 0
        self._sent: set[str] = set()
        self._confirmed: set[str] = set()
        self._unconfirmed: OrderedDict[str, int] = OrderedDict()
        """Watched channels not confirmed on the current connection, oldest watch first."""
        self._touched: set[str] = set()
        """Channels watched or unwatched since the subscriber last sent (un)subscriptions."""
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        """A heap of :meth:`settled` calls: (watches made before the call, tie, future)."""
        self._waiter_ids = itertools.count()
        self._dirty = asyncio.Event()
        self._heard = asyncio.Event()
        self._ever_connected = False
        self._down_since = 0.0
        self._outgoing: deque[PresenceChange] = deque()
        self._compact_at = QUEUE_LIMIT
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.connected = False
        self.last_seq = 0
        """The highest change sequence received."""
        self.reconnects = 0

    # -- the Bus seam -------------------------------------------------------------

    async def publish(self, message: BusMessage) -> None:
        """Queue a presence change for its user's channel (other messages: see module).

        It is sent by the publishing task, retried while Redis is unavailable (see the
        module docstring).
        """
        if not isinstance(message, PresenceChange):
            return
        self._outgoing.append(message)
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

    def subscribe(self, handler: BusHandler) -> None:
        """Call ``handler`` for every message received from now on."""
        self._handlers.append(handler)

    def watch(self, key: RouteKey) -> None:
        """Subscribe to the channel of route key ``key`` (asynchronously; see settled)."""
        channel = self._k.channel(key)
        if channel in self._wanted:
            return
        self._watches += 1
        self._wanted[channel] = self._watches
        if channel not in self._confirmed:  # else still subscribed: unwatched, not yet sent
            self._unconfirmed[channel] = self._watches
        self._touched.add(channel)
        self._dirty.set()

    def unwatch(self, key: RouteKey) -> None:
        """Unsubscribe from the channel of route key ``key``."""
        channel = self._k.channel(key)
        if self._wanted.pop(channel, None) is None:
            return
        self._touched.add(channel)
        self._dirty.set()
        if self._unconfirmed.pop(channel, None) is not None:
            self._release()

    async def settled(self) -> None:
        """Wait until connected and the subscription of every key watched *before this
        call* is confirmed (see the module docstring: not the ones watched later)."""
        if self.connected and not self._unconfirmed:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self._watches, next(self._waiter_ids), future))
        self._release()
        await future

    def _release(self) -> None:
        """Wake the :meth:`settled` calls whose watches are all confirmed."""
        if not self.connected:
            return
        oldest = next(iter(self._unconfirmed.values()), None)
        waiters = self._waiters
        while waiters and (oldest is None or waiters[0][0] < oldest):
            future = heapq.heappop(waiters)[2]
            if not future.done():  # not cancelled by a timeout meanwhile
                future.set_result(None)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the subscriber and the publishing tasks."""
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        self._publisher = loop.create_task(self._publish_forever())

    async def close(self) -> None:
        """Send what is queued (for up to :data:`FLUSH_TIMEOUT` s), then stop both tasks
        and their connections."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_TIMEOUT):
                await self._idle.wait()
        await stop_task(self._publisher)
        await stop_task(self._task)

    # -- the subscriber -----------------------------------------------------------

    async def _run(self) -> None:
        backoff = _BACKOFF_MIN
        while True:
            raise_if_cancelled()
            client = connect(self._url, retries=0)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._k.control_channel())
                await self._serve(pubsub)
            except UNAVAILABLE_ERRORS as exc:
                raise_if_cancelled()
                if self.connected:
                    backoff = _BACKOFF_MIN
                    self._down_since = asyncio.get_running_loop().time()
                    log.warning("bus connection to redis lost (%s); reconnecting", exc)
                else:
                    log.debug("bus reconnect failed (%s); retrying in %.2f s", exc, backoff)
            finally:
                self._set_connected(False)
                self._sent.clear()
                self._confirmed.clear()
                self._unconfirmed = OrderedDict(self._wanted)  # in watch order already
                self._touched = set(self._wanted)
                with contextlib.suppress(*UNAVAILABLE_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _serve(self, pubsub: PubSub) -> None:
        self._dirty.set()
        reader = asyncio.ensure_future(self._read(pubsub))
        syncer = asyncio.ensure_future(self._sync(pubsub))
        checker = asyncio.ensure_future(self._check(pubsub))
        tasks = {reader, syncer, checker}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, *UNAVAILABLE_ERRORS):
                    await task

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self._release()

    async def _sync(self, pubsub: PubSub) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE for the difference between wanted and sent."""
        while True:
            raise_if_cancelled()
            await self._dirty.wait()
            self._dirty.clear()
            touched, self._touched = self._touched, set()
            add = sorted(c for c in touched if c in self._wanted and c not in self._sent)
            drop = sorted(c for c in touched if c not in self._wanted and c in self._sent)
            self._sent.update(add)
            self._sent.difference_update(drop)
            self._confirmed.difference_update(drop)
            for start in range(0, len(add), _BATCH):
                await pubsub.subscribe(*add[start : start + _BATCH])
            for start in range(0, len(drop), _BATCH):
                await pubsub.unsubscribe(*drop[start : start + _BATCH])

    async def _check(self, pubsub: PubSub) -> None:
        """The health check (see the module docstring): raises when the link is dead."""
        while True:
            raise_if_cancelled()
            self._heard.clear()
            try:
                async with asyncio.timeout(PING_TIMEOUT):
                    await pubsub.ping()
                    await self._heard.wait()
            except TimeoutError:
                for _ in range(3):  # after a stalled loop the reply may be waiting: read it
                    await asyncio.sleep(0)
                if not self._heard.is_set():
                    raise RedisTimeoutError(f"no reply to PING within {PING_TIMEOUT:g} s") from None
            await asyncio.sleep(PING_INTERVAL)

    async def _read(self, pubsub: PubSub) -> None:
        control = self._k.control_channel()
        while True:
            raise_if_cancelled()
            message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            self._heard.set()
            kind = message["type"]
            if kind == "message":
                self._receive(message["data"])
            elif kind == "subscribe":
                channel = message["channel"]
                if channel == control:
                    self._reconnected()
                    self._set_connected(True)
                elif channel in self._sent:
                    self._confirmed.add(channel)
                    if self._unconfirmed.pop(channel, None) is not None:
                        self._release()

    def _reconnected(self) -> None:
        """The control channel is subscribed: after a loss, report the gap first."""
        if self._ever_connected:
            self.reconnects += 1
            down = asyncio.get_running_loop().time() - self._down_since
            log.info("bus reconnected after %.1f s; replaying after seq %d", down, self.last_seq)
            self._dispatch(BusGap(self.last_seq))
        self._ever_connected = True

    def _receive(self, data: str) -> None:
        fields = orjson.loads(data)
        kind = fields["t"]
        if kind == "c":
            seq = int(fields["seq"])
            if seq <= self.last_seq:
                return
            self.last_seq = seq
            message: BusMessage = change_from_json(seq, fields["c"])
        elif kind == "p":
            message = PresenceChange(fields["user"], bool(fields["online"]))
        elif kind == "f":
            message = FollowChange(
                fields["follower"], fields["followee"], bool(fields["on"]), int(fields["after"])
            )
        elif kind == "r":
            message = RelationChange(
                fields["actor"],
                fields["target"],
                RelationKind(fields["kind"]),
                bool(fields["on"]),
                fields.get("until"),
                fields["to"],
            )
        else:
            log.warning("ignoring an unknown bus message %r", data[:80])
            return
        self._dispatch(message)

    def _dispatch(self, message: BusMessage | Change) -> None:
        for handler in self._handlers:
            try:
                handler(message)
            except Exception:
                log.exception("bus handler %r failed on %r", handler, message)

    # -- the presence publisher ---------------------------------------------------

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

    async def _send(self, batch: list[PresenceChange]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for change in batch:
                payload = orjson.dumps({"t": "p", "user": change.user, "online": change.online})
                pipe.publish(self._k.channel(FollowersKey(change.user)), payload)
            await pipe.execute()
