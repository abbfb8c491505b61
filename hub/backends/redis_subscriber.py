"""One subscriber connection to Redis: the channels a node wants, kept subscribed.

Theory of operation: :meth:`Subscriber.want` and :meth:`Subscriber.drop` change the set of
wanted channels at once; a background task owns one connection, sends the
(un)subscriptions in batches of the channels touched since its last round, reads messages
and hands each ``(channel, data)`` to ``on_message``. Plain channels use ``SUBSCRIBE``;
shard channels (``sharded``: Redis Cluster's ``SSUBSCRIBE``, docs/cluster.md) must all
hash to slots of the one master the connection reaches.

:meth:`settled` returns once the channels wanted *before the call* are subscribed (each
want is numbered; the call waits until no older want is unconfirmed), not every channel
wanted since: in a sign-in storm new channels keep coming, and a sign-in waits for its
own. Confirmations, wants and (un)subscriptions cost O(1) each, whatever the number of
channels wanted or of calls waiting.

When the connection breaks (Redis restarted, a failover, the network), the task
reconnects with exponential backoff (50 ms doubling up to 2 s; ``connect`` is called again,
so it may resolve a new address), resubscribes every wanted channel and, before handing on
any message of the new connection, calls ``on_gap``: messages may have been lost. An
unsubscription the subscriber did not ask for (a cluster moved a channel's slot to another
master) counts as a lost connection too.
:attr:`connected` is False while down. The first channel subscribed on every connection is
``control``, which nothing publishes on (or only the subscriber's owner): its confirmation
marks the connection live.

A connection can also die silently (a partition, a frozen peer: no FIN, no RST), and a
subscriber connection never sends anything of its own, so nothing would ever fail. Hence
the health check: every :data:`PING_INTERVAL` seconds the task sends PING on the
connection itself; when nothing at all (the PONG, or any message: a busy connection is
plainly alive) arrives within :data:`PING_TIMEOUT` seconds, the connection is declared
dead and closed, and the reconnect above follows. A dead link is thus noticed within
1.5 s. (Over RESP3, redis-py hands the PONG of a subscribed connection on as a malformed
message; any message will do.)

Logging (on the owner's logger): one WARNING when the connection is lost or declared
dead; retries at DEBUG, the recovery at INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.backends.redis_link import UNAVAILABLE_ERRORS, raise_if_cancelled
from hub.background import stop_task

__all__ = ["PING_INTERVAL", "PING_TIMEOUT", "Subscriber"]

_BATCH = 1000
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0

PING_INTERVAL = 0.5
"""Seconds between the end of one subscriber health check and the next PING."""
PING_TIMEOUT = 1.0
"""Seconds the subscriber connection may stay silent after a PING before it is dead.

A PING's round trip is well under a millisecond; 1 s leaves room for a busy event loop
while a dead link is still noticed (and the node not ready) within 1.5 s."""


class Subscriber:
    """Keeps one connection subscribed to the wanted channels (see the module docstring)."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[aioredis.Redis]],
        control: str,
        on_message: Callable[[str, str], None],
        on_gap: Callable[[], None],
        *,
        sharded: bool = False,
        logger: logging.Logger,
    ) -> None:
        self._connect = connect
        self._control = control
        self._on_message = on_message
        self._on_gap = on_gap
        self._sharded = sharded
        self._lost_on = (*UNAVAILABLE_ERRORS, ResponseError) if sharded else UNAVAILABLE_ERRORS
        """What ends a connection: on a cluster also an error reply (``MOVED``,
        ``CLUSTERDOWN``) to a subscription."""
        self._log = logger
        self._wanted: dict[str, int] = {}
        """The wanted channels, each with the number of its want (increasing)."""
        self._wants = 0
        self._sent: set[str] = set()
        self._confirmed: set[str] = set()
        self._leaving: set[str] = set()
        """Channels with an unsubscription sent and not yet confirmed."""
        self._unconfirmed: OrderedDict[str, int] = OrderedDict()
        """Wanted channels not confirmed on the current connection, oldest want first."""
        self._touched: set[str] = set()
        """Channels wanted or dropped since the task last sent (un)subscriptions."""
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        """A heap of :meth:`settled` calls: (wants made before the call, tie, future)."""
        self._waiter_ids = itertools.count()
        self._dirty = asyncio.Event()
        self._heard = asyncio.Event()
        self._ever_connected = False
        self._down_since = 0.0
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.reconnects = 0
        """How many times the connection was lost and made again."""

    def want(self, channel: str) -> None:
        """Subscribe to ``channel`` (asynchronously; see :meth:`settled`)."""
        if channel in self._wanted:
            return
        self._wants += 1
        self._wanted[channel] = self._wants
        if channel not in self._confirmed:  # else still subscribed: dropped, not yet sent
            self._unconfirmed[channel] = self._wants
        self._touched.add(channel)
        self._dirty.set()

    def drop(self, channel: str) -> None:
        """Unsubscribe from ``channel``."""
        if self._wanted.pop(channel, None) is None:
            return
        self._touched.add(channel)
        self._dirty.set()
        if self._unconfirmed.pop(channel, None) is not None:
            self._release()

    async def settled(self) -> None:
        """Wait until connected and the subscription of every channel wanted *before this
        call* is confirmed (see the module docstring: not the ones wanted later)."""
        if self.connected and not self._unconfirmed:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self._wants, next(self._waiter_ids), future))
        self._release()
        await future

    def _release(self) -> None:
        """Wake the :meth:`settled` calls whose wants are all confirmed."""
        if not self.connected:
            return
        oldest = next(iter(self._unconfirmed.values()), None)
        waiters = self._waiters
        while waiters and (oldest is None or waiters[0][0] < oldest):
            future = heapq.heappop(waiters)[2]
            if not future.done():  # not cancelled by a timeout meanwhile
                future.set_result(None)

    def start(self) -> None:
        """Start the subscribing task."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop the task and close its connection."""
        await stop_task(self._task)

    async def _run(self) -> None:
        backoff = _BACKOFF_MIN
        while True:
            raise_if_cancelled()
            client: aioredis.Redis | None = None
            pubsub: PubSub | None = None
            try:
                client = await self._connect()
                pubsub = client.pubsub()
                await self._subscribe(pubsub, [self._control])
                await self._serve(pubsub)
            except self._lost_on as exc:
                raise_if_cancelled()
                if self.connected:
                    backoff = _BACKOFF_MIN
                    self._down_since = asyncio.get_running_loop().time()
                    self._log.warning("bus connection to redis lost (%s); reconnecting", exc)
                else:
                    self._log.debug("bus reconnect failed (%s); retrying in %.2f s", exc, backoff)
            finally:
                self._set_connected(False)
                self._sent.clear()
                self._confirmed.clear()
                self._leaving.clear()
                self._unconfirmed = OrderedDict(self._wanted)  # in want order already
                self._touched = set(self._wanted)
                if pubsub is not None:
                    with contextlib.suppress(*UNAVAILABLE_ERRORS):
                        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                if client is not None:
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _subscribe(self, pubsub: PubSub, channels: list[str]) -> None:
        if self._sharded:
            await pubsub.ssubscribe(*channels)
        else:
            await pubsub.subscribe(*channels)

    async def _unsubscribe(self, pubsub: PubSub, channels: list[str]) -> None:
        if self._sharded:
            await pubsub.sunsubscribe(*channels)
        else:
            await pubsub.unsubscribe(*channels)

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
                with contextlib.suppress(asyncio.CancelledError, *self._lost_on):
                    await task

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self._release()

    async def _sync(self, pubsub: PubSub) -> None:
        """Send (S)SUBSCRIBE/(S)UNSUBSCRIBE for the difference between wanted and sent."""
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
            self._leaving.update(drop)
            for start in range(0, len(add), _BATCH):
                await self._subscribe(pubsub, add[start : start + _BATCH])
            for start in range(0, len(drop), _BATCH):
                await self._unsubscribe(pubsub, drop[start : start + _BATCH])

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
        while True:
            raise_if_cancelled()
            message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            self._heard.set()
            kind = message["type"]
            if kind in {"message", "smessage"}:
                self._on_message(message["channel"], message["data"])
            elif kind in {"unsubscribe", "sunsubscribe"}:
                self._unsubscribed(message["channel"])
            elif kind in {"subscribe", "ssubscribe"}:
                channel = message["channel"]
                if channel == self._control:
                    self._reconnected()
                    self._set_connected(True)
                elif channel in self._sent:
                    self._confirmed.add(channel)
                    if self._unconfirmed.pop(channel, None) is not None:
                        self._release()

    def _unsubscribed(self, channel: str) -> None:
        """An unsubscription arrived: ours, or the server's (a cluster moved the channel's
        slot to another master), which makes the connection useless: reconnect."""
        if channel in self._leaving:
            self._leaving.discard(channel)
        elif channel == self._control or channel in self._sent:
            raise ConnectionError(f"redis unsubscribed {channel!r} (its slot moved)")

    def _reconnected(self) -> None:
        """The control channel is subscribed: after a loss, report the gap first."""
        if self._ever_connected:
            self.reconnects += 1
            down = asyncio.get_running_loop().time() - self._down_since
            self._log.info("bus reconnected after %.1f s", down)
            self._on_gap()
        self._ever_connected = True
