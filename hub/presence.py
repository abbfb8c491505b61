"""Online/offline announcements with a grace period, so a quick reconnect does not flap.

A user goes online when their first connection authenticates and is announced at once.
When their last connection ends, the offline announcement waits ``grace`` seconds and is
cancelled if any connection of theirs comes back meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from hub.backends.base import Presence
from hub.background import Background
from hub.records import PresenceChange

__all__ = ["PresenceAnnouncer"]


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
        self._pending_offline: dict[str, asyncio.TimerHandle] = {}
        self._background = Background()

    async def connected(self, user: str) -> None:
        """Record a new connection of ``user``; announce online if they were offline."""
        became_online = await self._presence.connect(user)
        pending = self._pending_offline.pop(user, None)
        if pending is not None:
            pending.cancel()
        elif became_online:
            await self._publish(PresenceChange(user, True))

    async def disconnected(self, user: str) -> None:
        """Record the end of a connection; announce offline after the grace period."""
        if await self._presence.disconnect(user):
            loop = asyncio.get_running_loop()
            self._pending_offline[user] = loop.call_later(self._grace, self._expire, user)

    def _expire(self, user: str) -> None:
        self._pending_offline.pop(user, None)
        self._background.spawn(self._publish(PresenceChange(user, False)))

    async def online(self, users: list[str]) -> set[str]:
        """Which of ``users`` count as online (including those inside their grace period)."""
        return await self._presence.online(users) | (set(users) & set(self._pending_offline))

    async def flush(self) -> None:
        """Announce every pending offline now (used when the node drains)."""
        for user, handle in list(self._pending_offline.items()):
            handle.cancel()
            del self._pending_offline[user]
            await self._publish(PresenceChange(user, False))
        await self._background.wait()
