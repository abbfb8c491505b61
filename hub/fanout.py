"""The local fan-out index: route key -> the sessions on this node under that key.

The bus listener hands every change to :meth:`LocalFanout.deliver`, which asks
:mod:`hub.routing` for the change's events, encodes each event once per codec (via
:class:`protocol.PreparedEvent`) and queues a reference to the same bytes on every
recipient's outbox, except those whose shield hides the change's author (a block or a
mute, ``hub.shield``). Nothing here awaits: a delivery costs two set lookups and a list
append per recipient.

The index also reference-counts route keys for a shared bus: the first local session
under a key calls ``watch(key)``, the last one to leave calls ``unwatch(key)``, so a node
subscribes only to what its connected users need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from hub.names import RouteKey
from hub.records import Change, PresenceChange
from hub.routing import presence_route, routes_for
from hub.shield import Shield
from protocol import PreparedEvent

__all__ = ["LocalFanout", "Recipient"]


class Recipient(Protocol):
    """What the fan-out needs of a session."""

    @property
    def user(self) -> str:
        """The recipient's user id."""

    @property
    def shield(self) -> Shield:
        """Whose events the recipient does not get (blocks and mutes)."""

    def send_event(self, seq: int | None, event: PreparedEvent) -> None:
        """Queue a live event (``seq`` is its change's sequence, None when ephemeral)."""


class LocalFanout:
    """Indexes this node's sessions by route key and delivers changes to them."""

    def __init__(
        self,
        watch: Callable[[RouteKey], None] = lambda key: None,
        unwatch: Callable[[RouteKey], None] = lambda key: None,
    ) -> None:
        self._index: dict[RouteKey, set[Recipient]] = {}
        self._watch = watch
        self._unwatch = unwatch

    def add(self, recipient: Recipient, keys: Iterable[RouteKey]) -> None:
        """File ``recipient`` under each of ``keys`` (watching keys new to this node)."""
        for key in keys:
            members = self._index.get(key)
            if members is None:
                members = self._index[key] = set()
                self._watch(key)
            members.add(recipient)

    def remove(self, recipient: Recipient, keys: Iterable[RouteKey]) -> None:
        """Take ``recipient`` out from under each of ``keys``."""
        for key in keys:
            members = self._index.get(key)
            if members is not None:
                members.discard(recipient)
                if not members:
                    del self._index[key]
                    self._unwatch(key)

    def deliver(self, change: Change) -> int:
        """Queue ``change``'s events on every interested local session; return deliveries."""
        delivered = 0
        author = change.author
        for keys, event in routes_for(change):
            recipients = self._recipients(keys)
            if not recipients:
                continue
            prepared = PreparedEvent(event)
            for recipient in recipients:
                shield = recipient.shield
                if author in shield.hidden and shield.hides(author):
                    continue
                recipient.send_event(change.seq, prepared)
                delivered += 1
        return delivered

    def deliver_presence(self, change: PresenceChange) -> int:
        """Queue a presence event on the local sessions of the user's followers."""
        keys, event = presence_route(change)
        recipients = [r for r in self._recipients(keys) if r.user != change.user]
        if recipients:
            prepared = PreparedEvent(event)
            for recipient in recipients:
                recipient.send_event(None, prepared)
        return len(recipients)

    def _recipients(self, keys: tuple[RouteKey, ...]) -> set[Recipient]:
        if len(keys) == 1:
            return self._index.get(keys[0], set())
        found: set[Recipient] = set()
        for key in keys:
            members = self._index.get(key)
            if members:
                found |= members
        return found
