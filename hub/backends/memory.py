"""In-process Bus and Presence: the single-node implementations of those seams."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from hub.backends.base import BusHandler, BusMessage
from hub.names import RouteKey
from hub.records import PresenceChange

__all__ = ["MemoryBus", "MemoryPresence"]

logger = logging.getLogger(__name__)


class MemoryBus:
    """Delivers every message to every handler, synchronously, in the order handed in.

    The embedded change log hands it what each write committed (:meth:`deliver`);
    presence comes through :meth:`publish`. A handler that raises is logged and
    skipped; the publisher never sees the exception.
    """

    def __init__(self) -> None:
        self._handlers: list[BusHandler] = []

    async def publish(self, message: PresenceChange) -> None:
        """Call each subscribed handler with a presence change."""
        self.deliver(message)

    def deliver(self, message: BusMessage) -> None:
        """Call each subscribed handler with ``message`` (a committed change, a follow
        update or a presence change)."""
        for handler in self._handlers:
            try:
                handler(message)
            except Exception:
                logger.exception("bus handler %r failed on %r", handler, message)

    def subscribe(self, handler: BusHandler) -> None:
        """Add ``handler``; it receives every message published from now on."""
        self._handlers.append(handler)

    def watch(self, key: RouteKey) -> None:
        """Nothing to do: this bus delivers every message in the process."""

    def unwatch(self, key: RouteKey) -> None:
        """Nothing to do: this bus delivers every message in the process."""

    async def settled(self) -> None:
        """Watching is always in effect here."""


class MemoryPresence:
    """Counts open connections per user within this process."""

    def __init__(self) -> None:
        self._connections: Counter[str] = Counter()

    async def connect(self, user: str) -> bool:
        """Count a connection; True when it is the user's first."""
        self._connections[user] += 1
        return self._connections[user] == 1

    async def disconnect(self, user: str) -> bool:
        """Count a closed connection; True when the user has none left."""
        count = self._connections[user] - 1
        if count > 0:
            self._connections[user] = count
            return False
        del self._connections[user]
        return True

    async def online(self, users: Iterable[str]) -> set[str]:
        """The users among ``users`` with at least one connection."""
        return {user for user in users if self._connections[user] > 0}
