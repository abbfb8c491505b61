"""Online/offline announcements with a grace period, so a quick reconnect does not flap.

A user goes online when their first connection authenticates and is announced at once
(if they were offline everywhere). When their last connection on this node ends, the
node keeps holding the user in the Presence backend for ``grace`` seconds: the user
still counts as online, here and on every other node. A connection of theirs coming back
here meanwhile simply takes the hold over. When the grace period expires, the hold is
released (:meth:`~hub.backends.base.Presence.disconnect`), and the backend answers
whether the user is now offline *everywhere*: only then is offline announced. So a user
who moved to another node within the grace period is never announced offline, and is
not announced online again either (the hold kept them online throughout).

When the node drains, the pending holds are not released at once (that announced every
user who was about to reconnect elsewhere as offline). A backend that can hand them off
(:class:`HandOff`, the Redis one) keeps them for the grace period after the node is gone
and lets the remaining nodes announce offline whoever did not come back; an in-process
backend has nobody left to tell.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, runtime_checkable

from hub.backends.base import Presence
from hub.background import Background
from hub.records import PresenceChange

__all__ = ["HandOff", "PresenceAnnouncer"]

log = logging.getLogger(__name__)


@runtime_checkable
class HandOff(Protocol):
    """A shared Presence backend that can outlive this node's holds (see the module)."""

    async def hand_off(self, grace: float) -> None:
        """Keep every user this node still holds online for ``grace`` seconds, then let
        the other nodes announce offline those connected nowhere."""
        ...


class PresenceAnnouncer:
    """Turns connection counts into debounced :class:`PresenceChange` publications."""

    def __init__(
        self,
        presence: Presence,
        publish: Callable[[PresenceChange], Coroutine[Any, Any, None]],
        grace: float,
    ) -> None:
        self._presence = presence
        self._publish = publish
        self._grace = grace
        self._connections: Counter[str] = Counter()
        """Connections per user counted in the backend (a user in grace holds one)."""
        self._failed: Counter[str] = Counter()
        """Connections whose count failed (backend unavailable): their end is no leave."""
        self._pending_offline: dict[str, asyncio.TimerHandle] = {}
        self._background = Background()
        self._drained = False

    async def connected(self, user: str) -> None:
        """Record a new connection of ``user``; announce online if they were offline."""
        pending = self._pending_offline.pop(user, None)
        if pending is not None:  # take the hold over: nothing changed for anyone
            pending.cancel()
            self._connections[user] += 1
            return
        try:
            became_online = await self._presence.connect(user)
        except BaseException:
            self._failed[user] += 1
            raise
        self._connections[user] += 1
        pending = self._pending_offline.pop(user, None)
        if pending is not None:  # the last other connection ended meanwhile: drop its hold
            pending.cancel()
            await self._presence.disconnect(user)
        elif became_online:
            await self._publish(PresenceChange(user, True))

    async def disconnected(self, user: str) -> None:
        """Record the end of a connection; after the last one here, hold the user for the
        grace period, then announce offline if they are connected nowhere."""
        if self._drained:  # handed off already
            return
        if self._failed[user] > 0:
            self._failed[user] -= 1
            if not self._failed[user]:
                del self._failed[user]
            return
        if self._connections[user] > 1:
            self._connections[user] -= 1
            await self._presence.disconnect(user)
            return
        self._connections.pop(user, None)
        loop = asyncio.get_running_loop()
        self._pending_offline[user] = loop.call_later(self._grace, self._expire, user)

    def _expire(self, user: str) -> None:
        self._pending_offline.pop(user, None)
        self._background.spawn(self._release(user))

    async def _release(self, user: str) -> None:
        try:
            if await self._presence.disconnect(user):
                await self._publish(PresenceChange(user, False))
        except Exception:
            log.exception("announcing %s offline failed", user)

    async def online(self, users: list[str]) -> set[str]:
        """Which of ``users`` count as online (including those inside their grace period)."""
        return await self._presence.online(users)

    async def drain(self) -> None:
        """The node shuts down: hand the users inside their grace period over (see the
        module docstring) instead of announcing them offline now."""
        self._drained = True
        for handle in self._pending_offline.values():
            handle.cancel()
        self._pending_offline.clear()
        await self._background.wait()
        if isinstance(self._presence, HandOff):
            await self._presence.hand_off(self._grace)
