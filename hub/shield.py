"""Whom one connected user must not hear from: the node's in-memory view of their blocks
and mutes, so that the live path filters with a set lookup and no store read.

A session holds a :class:`Shield`: built from the store's :class:`~hub.records.Relations`
when the user signs in, then kept current by the :class:`~hub.records.RelationChange`
updates every write publishes (``hub.node``). :attr:`Shield.hidden` is the set the
fan-out tests each event's author against (empty for almost everyone, so that test
costs one lookup in an empty set); :meth:`Shield.hides` then settles the rare hit, since
a mute may have run out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hub.clock import now_ms
from hub.records import RelationChange, RelationKind, Relations
from protocol import Event, EventType

__all__ = ["NO_SHIELD", "Shield", "shielded", "visible_group"]


class Shield:
    """The blocks (both ways) and mutes in effect for one signed-in ``user``."""

    __slots__ = ("blocked", "blocked_by", "hidden", "muted", "user")

    def __init__(self, user: str, relations: Relations | None = None) -> None:
        relations = relations or Relations()
        self.user = user
        """Whose shield this is."""
        self.blocked = set(relations.blocked)
        """Users ``user`` blocked."""
        self.blocked_by = set(relations.blocked_by)
        """Users who blocked ``user``."""
        self.muted = dict(relations.muted)
        """Users ``user`` muted, with each mute's end (ms; None: until lifted)."""
        self.hidden: set[str] = set()
        """Everyone above: the authors whose events ``user`` does not get."""
        self._rebuild()

    def _rebuild(self) -> None:
        self.hidden = self.blocked | self.blocked_by | self.muted.keys()

    def blocks(self, other: str) -> bool:
        """Whether a block (either way) stands between ``user`` and ``other``."""
        return other in self.blocked or other in self.blocked_by

    def hides(self, author: str, now: int | None = None) -> bool:
        """Whether ``author``'s posts, events and notifications are kept from ``user``
        (at ``now``, ms; by default the current time)."""
        if author not in self.hidden:
            return False
        if author in self.blocked or author in self.blocked_by:
            return True
        until = self.muted.get(author)
        if until is None or until > (now_ms() if now is None else now):
            return True
        del self.muted[author]  # the mute ran out
        self._rebuild()
        return False

    def apply(self, change: RelationChange) -> None:
        """Take in a block or mute made or lifted (by ``user`` or, for a block, against
        them)."""
        if change.kind is RelationKind.BLOCK:
            if change.actor == self.user:
                _toggle(self.blocked, change.target, on=change.on)
            elif change.target == self.user:
                _toggle(self.blocked_by, change.actor, on=change.on)
        elif change.actor == self.user:
            if change.on:
                self.muted[change.target] = change.until
            else:
                self.muted.pop(change.target, None)
        self._rebuild()


def _toggle(members: set[str], user: str, *, on: bool) -> None:
    if on:
        members.add(user)
    else:
        members.discard(user)


NO_SHIELD = Shield("")
"""The shared shield of every session without blocks or mutes (never changed: a session
gets its own :class:`Shield` before its first relation is applied)."""


def visible_group(
    actors: Sequence[str], others: int, hides: Callable[[str], bool]
) -> tuple[tuple[str, ...], int] | None:
    """A notification group's named ``actors`` (newest first) and ``others`` count as a
    viewer who ``hides`` some users sees it: without them (their count taken off
    ``others``), or None when none of the named actors is left."""
    kept = tuple(user for user in actors if not hides(user))
    if len(kept) == len(actors):
        return tuple(actors), others
    if not kept:
        return None
    return kept, max(0, others - (len(actors) - len(kept)))


def shielded(event: Event, shield: Shield) -> Event | None:
    """``event`` as the shield's user may see it: a ``notification`` event names no
    hidden actor (None when it would name nobody); any other event is unchanged."""
    if event.type != EventType.NOTIFICATION or not shield.hidden:
        return event
    note = event.data["notification"]
    group = visible_group(note["actors"], note["others"], shield.hides)
    if group is None:
        return None
    actors, others = group
    if actors == tuple(note["actors"]):
        return event
    seen = {**note, "actor": actors[0], "actors": list(actors), "others": others}
    return Event(event.type, event.cursor, {**event.data, "notification": seen})
