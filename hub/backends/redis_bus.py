"""The Redis Bus: each node subscribes only to the channels its sessions need.

Theory of operation: changes are published by ``redis_changelog``'s append script, once
per route key of the change (``<ns>c:f:<author>``, ``<ns>c:s:public``, ...), atomically
with their sequence number; presence changes are published here on the user's ``f:``
channel, follow updates by ``redis_store`` on the follower's ``u:`` channel. So
:meth:`RedisBus.publish` only sends presence; a :class:`~hub.records.Change` handed to
it was already published by the change log and is ignored.

The node's fan-out calls :meth:`watch` when a route key gets its first local session and
:meth:`unwatch` when its last one leaves (reference counting lives in the fan-out). A
background task owns one subscriber connection: it sends the (un)subscriptions in batches,
reads messages and calls the handlers. Because Redis delivers to one connection in publish
order and the append script publishes in sequence order, changes arrive in increasing
``seq``; one change published on several channels this node watches arrives several
times in a row, and every copy with ``seq <= last_seq`` is dropped.

When the connection breaks (Redis restarted, network), the task reconnects with
exponential backoff (50 ms doubling up to 2 s), resubscribes every watched key and, before
handing on any message of the new connection, calls the handlers with
:class:`~hub.backends.base.BusGap` ``(after=last_seq)``: the node then makes each session
replay what it may have missed from the change log. :attr:`connected` is False while
down (the node reports not ready).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from hub.backends.base import BusGap, BusHandler, BusMessage, FollowChange
from hub.backends.redis_changelog import change_from_json
from hub.backends.redis_link import UNAVAILABLE_ERRORS, Keys, connect, raise_if_cancelled
from hub.background import stop_task
from hub.records import Change, PresenceChange

__all__ = ["RedisBus"]

log = logging.getLogger(__name__)

_BATCH = 1000
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0
_CONTROL = "_"  # a channel every connection subscribes to, so that it always has one


class RedisBus:
    """Bus implementation over Redis pub/sub (see the module docstring)."""

    def __init__(self, url: str, client: aioredis.Redis, keys: Keys) -> None:
        self._url = url
        self._client = client
        self._k = keys
        self._handlers: list[BusHandler] = []
        self._wanted: set[str] = set()
        self._sent: set[str] = set()
        self._confirmed: set[str] = set()
        self._dirty = asyncio.Event()
        self._state = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.last_seq = 0
        """The highest change sequence received."""
        self.reconnects = 0

    # -- the Bus seam -------------------------------------------------------------

    async def publish(self, message: BusMessage) -> None:
        """Publish a presence change on the user's channel (other messages: see module)."""
        if not isinstance(message, PresenceChange):
            return
        payload = orjson.dumps({"t": "p", "user": message.user, "online": message.online})
        try:
            await self._client.publish(self._k.channel("f:" + message.user), payload)
        except UNAVAILABLE_ERRORS:
            log.warning("presence of %s not published: redis unavailable", message.user)

    def subscribe(self, handler: BusHandler) -> None:
        """Call ``handler`` for every message received from now on."""
        self._handlers.append(handler)

    def watch(self, key: str) -> None:
        """Subscribe to the channel of route key ``key`` (asynchronously; see settled)."""
        self._wanted.add(key)
        self._dirty.set()

    def unwatch(self, key: str) -> None:
        """Unsubscribe from the channel of route key ``key``."""
        self._wanted.discard(key)
        self._dirty.set()

    async def settled(self) -> None:
        """Wait until connected and every watched key's subscription is confirmed."""
        async with self._state:
            await self._state.wait_for(lambda: self.connected and self._wanted <= self._confirmed)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the subscriber task."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop the subscriber task and its connection."""
        await stop_task(self._task)

    async def _run(self) -> None:
        backoff = _BACKOFF_MIN
        first = True
        while True:
            client = connect(self._url, retries=0)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._k.channel(_CONTROL))
                if not first:
                    self.reconnects += 1
                    log.warning("bus reconnected; replaying after seq %d", self.last_seq)
                    self._dispatch(BusGap(self.last_seq))
                first = False
                backoff = _BACKOFF_MIN
                await self._serve(pubsub)
            except UNAVAILABLE_ERRORS as exc:
                raise_if_cancelled()
                log.warning("bus connection lost (%s); retrying in %.2f s", exc, backoff)
            finally:
                await self._set_connected(False)
                self._sent.clear()
                self._confirmed.clear()
                with contextlib.suppress(*UNAVAILABLE_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _serve(self, pubsub: PubSub) -> None:
        self._dirty.set()
        reader = asyncio.ensure_future(self._read(pubsub))
        syncer = asyncio.ensure_future(self._sync(pubsub))
        try:
            done, _ = await asyncio.wait({reader, syncer}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in (reader, syncer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, *UNAVAILABLE_ERRORS):
                    await task

    async def _set_connected(self, connected: bool) -> None:
        async with self._state:
            self.connected = connected
            self._state.notify_all()

    async def _sync(self, pubsub: PubSub) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE for the difference between wanted and sent."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            add = sorted(self._wanted - self._sent)
            drop = sorted(self._sent - self._wanted)
            self._sent.update(add)
            self._sent.difference_update(drop)
            self._confirmed.difference_update(drop)
            for start in range(0, len(add), _BATCH):
                await pubsub.subscribe(*map(self._k.channel, add[start : start + _BATCH]))
            for start in range(0, len(drop), _BATCH):
                await pubsub.unsubscribe(*map(self._k.channel, drop[start : start + _BATCH]))

    async def _read(self, pubsub: PubSub) -> None:
        prefix = len(self._k.channel(""))
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                self._receive(message["data"])
            elif kind == "subscribe":
                key = message["channel"][prefix:]
                if key == _CONTROL:
                    await self._set_connected(True)
                elif key in self._sent:
                    self._confirmed.add(key)
                    async with self._state:
                        self._state.notify_all()

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
