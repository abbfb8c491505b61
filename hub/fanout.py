"""The local fan-out index: route key -> the sessions on this node under that key.

The bus listener hands every change to :meth:`LocalFanout.deliver`, which asks
:mod:`hub.routing` for the change's events, encodes each event once per codec (via
:class:`protocol.PreparedEvent`) and queues a reference to the same bytes on every
recipient's outbox, except those whose shield hides the change's author (a block or a
mute, ``hub.shield``): the index keeps, per author, the local sessions that hide them, so
a change whose author nobody here hides is delivered with no per-recipient test.
Nothing here awaits: a delivery costs a set lookup and a list append per recipient.
:meth:`LocalFanout.deliver_all` takes the changes of one loop tick: a *run* of changes
by one author to the same route keys (a burst of posts) whose events reach the
sessions of only one of those routes is pushed as one batch per recipient, so a burst
costs one push per recipient per tick, not per post.

The index also reference-counts route keys for a shared bus: the first local session
under a key calls ``watch(key)``, the last one to leave calls ``unwatch(key)``, so a node
subscribes only to what its connected users need.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol

from hub.names import RouteKey
from hub.records import Change, ChangeKind, PresenceChange
from hub.routing import Route, presence_route, routes_for
from hub.shield import Shield, shielded
from protocol import Codec, Event, PreparedEvent

__all__ = ["EventBatch", "LocalFanout", "Recipient"]


class EventBatch:
    """Consecutive events for the same recipients: their sequences, and their bytes
    per codec, encoded once and joined in one list for every recipient."""

    __slots__ = ("_encoded", "events", "seqs")

    def __init__(self, seqs: list[int], events: list[PreparedEvent]) -> None:
        self.seqs = seqs
        """The change sequences, increasing."""
        self.events = events
        """The events, in the same order."""
        self._encoded: dict[Codec, tuple[list[bytes], int]] = {}

    def bytes_for(self, codec: Codec) -> tuple[list[bytes], int]:
        """The events encoded by ``codec`` and their total size (cached)."""
        found = self._encoded.get(codec)
        if found is None:
            messages = [event.bytes_for(codec) for event in self.events]
            found = self._encoded[codec] = (messages, sum(map(len, messages)))
        return found


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

    def send_batch(self, batch: EventBatch) -> None:
        """Queue consecutive live events, as :meth:`send_event` would one by one."""


class LocalFanout:
    """Indexes this node's sessions by route key and delivers changes to them."""

    def __init__(
        self,
        watch: Callable[[RouteKey], None] = lambda key: None,
        unwatch: Callable[[RouteKey], None] = lambda key: None,
    ) -> None:
        self._index: dict[RouteKey, set[Recipient]] = {}
        self._hiders: dict[str, set[Recipient]] = {}
        """Author -> the local sessions whose shield hides them (the reverse of each
        shield's ``hidden``), so that a change whose author nobody here hides costs no
        per-recipient test at all."""
        self._filed_hidden: dict[Recipient, frozenset[str]] = {}
        """What each session is filed under in ``_hiders`` (so that it is unfiled in
        full, whatever its shield has forgotten meanwhile)."""
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

    def reshield(self, recipient: Recipient, hidden: Collection[str]) -> None:
        """File ``recipient`` as hiding exactly the users in ``hidden`` (its shield's
        ``hidden``; empty when the session ends)."""
        before = self._filed_hidden.pop(recipient, frozenset())
        after = frozenset(hidden)
        for author in before - after:
            hiders = self._hiders[author]
            hiders.discard(recipient)
            if not hiders:
                del self._hiders[author]
        for author in after - before:
            self._hiders.setdefault(author, set()).add(recipient)
        if after:
            self._filed_hidden[recipient] = after

    def hiding(self, author: str) -> frozenset[Recipient]:
        """The local sessions filed as hiding ``author``."""
        return frozenset(self._hiders.get(author, ()))

    def deliver_all(self, changes: Sequence[tuple[Change, list[Route]]]) -> int:
        """Queue the events of ``changes`` (each with its ``routes_for``, in order) on
        every interested local session, runs of one author's changes as batches; return
        deliveries."""
        delivered = 0
        run: list[tuple[Change, list[Route]]] = []
        for change, routes in changes:
            if run and not _same_run(run[0], change, routes):
                delivered += self._deliver_run(run)
                run = []
            run.append((change, routes))
        if run:
            delivered += self._deliver_run(run)
        return delivered

    def _deliver_run(self, run: list[tuple[Change, list[Route]]]) -> int:
        """One author's changes to the same keys: one batch per recipient when only one
        of their routes reaches anyone here, else change by change."""
        first, routes = run[0]
        if len(run) > 1:
            hidden = self._hidden_from(first.author)
            reached = []
            for position, (keys, _) in enumerate(routes):
                recipients = self._recipients(keys)
                if hidden and recipients:
                    recipients = recipients - hidden
                if recipients:
                    reached.append((position, recipients))
            if len(reached) == 1:
                position, recipients = reached[0]
                batch = EventBatch(
                    [change.seq for change, _ in run],
                    [PreparedEvent(change_routes[position][1]) for _, change_routes in run],
                )
                for recipient in recipients:
                    recipient.send_batch(batch)
                return len(recipients) * len(run)
        return sum(self._deliver_routes(change, routes) for change, routes in run)

    def deliver(self, change: Change) -> int:
        """Queue ``change``'s events on every interested local session; return deliveries."""
        return self._deliver_routes(change, routes_for(change))

    def _deliver_routes(self, change: Change, routes: list[Route]) -> int:
        delivered = 0
        notification = change.kind == ChangeKind.NOTIFICATION
        hidden = set() if notification else self._hidden_from(change.author)
        for keys, event in routes:
            recipients = self._recipients(keys)
            if hidden and recipients:
                recipients = recipients - hidden
            if not recipients:
                continue
            if notification:
                delivered += self._deliver_shielded(change.seq, event, recipients)
                continue
            prepared = PreparedEvent(event)
            for recipient in recipients:
                recipient.send_event(change.seq, prepared)
            delivered += len(recipients)
        return delivered

    @staticmethod
    def _deliver_shielded(seq: int, event: Event, recipients: set[Recipient]) -> int:
        """Queue a notification on its recipient's sessions (a handful), each naming
        only the actors that session's shield lets it see."""
        prepared = PreparedEvent(event)
        delivered = 0
        for recipient in recipients:
            seen = shielded(event, recipient.shield)
            if seen is not None:
                recipient.send_event(seq, prepared if seen is event else PreparedEvent(seen))
                delivered += 1
        return delivered

    def _hidden_from(self, author: str) -> set[Recipient]:
        """The local sessions that hide ``author`` now; a mute that ran out takes its
        session off the author's hiders."""
        hiders = self._hiders.get(author)
        if hiders is None:
            return set()
        hidden = {recipient for recipient in hiders if recipient.shield.hides(author)}
        if len(hidden) < len(hiders):
            self._unhide(author, hiders - hidden)
        return hidden

    def _unhide(self, author: str, recipients: set[Recipient]) -> None:
        """``recipients`` no longer hide ``author`` (their mute ran out)."""
        for recipient in recipients:
            self.reshield(recipient, self._filed_hidden[recipient] - {author})

    def deliver_presence(self, change: PresenceChange) -> int:
        """Queue a presence event on the local sessions of the user's followers (not on
        those a block separates from the user)."""
        keys, event = presence_route(change)
        hiders = self._hiders.get(change.user, ())
        recipients = [
            r
            for r in self._recipients(keys)
            if r.user != change.user and not (r in hiders and r.shield.blocks(change.user))
        ]
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


def _same_run(first: tuple[Change, list[Route]], change: Change, routes: list[Route]) -> bool:
    """Whether ``change`` continues the run that began with ``first``: not a
    notification, the same author, the same route keys."""
    head, head_routes = first
    return (
        ChangeKind.NOTIFICATION not in (change.kind, head.kind)
        and change.author == head.author
        and len(routes) == len(head_routes)
        and all(keys == other for (keys, _), (other, _) in zip(routes, head_routes, strict=True))
    )
