"""The seams the domain and the fan-out run on: Store, ChangeLog, Bus and Presence.

Each seam is a :class:`typing.Protocol`; the embedded implementations live in
``hub.backends.sqlite`` (Store, ChangeLog) and ``hub.backends.memory`` (Bus, Presence),
the shared ones in ``hub.backends.redis_*``. The per-user limits seam (``UserLimits``)
lives with its in-process implementation in ``hub.backends.limits``.

**One write, one commit.** Every write method of :class:`Store` commits the record,
every change and notification it produces, their sequence numbers *and their
publication* as one unit (one SQLite transaction followed by in-process delivery; one
Lua script that also PUBLISHes on Redis) and returns them as a
:class:`~hub.records.Committed`. A write either happened with its cursor or did not
happen: no page can show what the change log lacks. The change log is thus the one
publisher of changes on both backends (follows publish a :class:`FollowChange` the same
way); :meth:`Bus.publish` carries only ephemeral presence.

Page cursors are opaque strings produced by a store; a store handed a cursor it cannot
read raises :class:`CursorError`. Methods that name a post or user that must exist raise
:class:`MissingRecord` when it does not (the domain checks first, so this is a guard).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.names import RouteKey
from hub.records import (
    Barriers,
    Change,
    Committed,
    Interest,
    NewChange,
    Notice,
    Notification,
    Page,
    Post,
    PresenceChange,
    Profile,
    Relation,
    RelationChange,
    RelationKind,
    Relations,
)

__all__ = [
    "MAX_EXAMINED",
    "BackendUnavailable",
    "BlockedWrite",
    "Bus",
    "BusGap",
    "BusHandler",
    "BusMessage",
    "ChangeLog",
    "CursorError",
    "FollowChange",
    "MissingRecord",
    "Presence",
    "RouteKeys",
    "Store",
    "cursor_id",
]


@dataclass(frozen=True, slots=True)
class FollowChange:
    """``follower`` started (``following``) or stopped following ``followee``.

    Every backend publishes it with the follow's commit, so that the follower's
    sessions on every node update their route keys; ``after`` is the change sequence
    head right after the follow was committed (the sessions replay from there).
    """

    follower: str
    followee: str
    following: bool
    after: int


@dataclass(frozen=True, slots=True)
class BusGap:
    """The bus may have lost messages after sequence ``after`` (it reconnected).

    Delivered before any message received after the gap: sessions replay from the log.
    """

    after: int


BusMessage = Change | PresenceChange | FollowChange | RelationChange | BusGap
"""What subscribers receive: durable changes, follow and relation updates (published by
the writes that commit them), ephemeral presence changes, and gap notices (only from a
shared bus that reconnected)."""
BusHandler = Callable[[BusMessage], None]
"""A bus subscriber: called synchronously for every published message."""


MAX_EXAMINED = 20_000
"""Most log entries one :meth:`ChangeLog.read_since` may examine: four times
``protocol.limits.MAX_RESUME_EVENTS``. A read that would need more answers None (the
client resyncs); it reads one entry past the cap to know. Every entry read is a change
the interest matches on the embedded store (through its indexes); a Redis stream resume
(tags, threads) filters the shared post log, so there the cap counts entries filtered.
"""

RouteKeys = Callable[[Change], Iterable[RouteKey]]
"""The route keys a change is delivered under (the node's routing rule), handed to a
shared backend that publishes changes once per key."""


class CursorError(ValueError):
    """A page cursor this store did not produce (or cannot read)."""


def cursor_id(cursor: str | None, default: int) -> int:
    """The id a page cursor stands for (``default`` when there is no cursor): both stores'
    page cursors are ``str(id)`` of the last item's key."""
    if cursor is None:
        return default
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
        raise CursorError(f"not a page cursor of this store: {cursor!r}")
    return int(cursor)


class MissingRecord(LookupError):
    """A write named a user or post that does not exist (or is deleted)."""


class BlockedWrite(PermissionError):
    """A write between two users whom a block separates (a follow, a reply, a like),
    refused by the store itself when the block landed after the domain's check."""


class BackendUnavailable(ConnectionError):
    """The backend cannot be reached right now (the client gets ``unavailable``)."""


class Store(Protocol):
    """Durable social data: profiles, follows, posts, likes and notifications."""

    async def ensure_profile(self, user: str, now: int) -> Profile:
        """Return the user's profile, creating it (name = user id) on first sight."""
        ...

    async def get_profile(self, user: str) -> Profile | None:
        """Return the user's profile, or None when the user is unknown."""
        ...

    async def update_profile(self, user: str, name: str | None, bio: str | None) -> Profile:
        """Change the name and/or bio (None keeps the current value); return the profile."""
        ...

    async def follow(self, follower: str, followee: str, now: int) -> Committed[bool]:
        """Make ``follower`` follow ``followee``; value: True when newly following.

        A new follow commits a ``follow`` notification for the followee (unless the
        follower is in its follow group already: :meth:`notifications_page`) and publishes
        a :class:`FollowChange`; an existing one commits nothing.
        """
        ...

    async def unfollow(self, follower: str, followee: str) -> Committed[bool]:
        """Stop following; value: True when ``follower`` was following ``followee``.

        A removed follow publishes a :class:`FollowChange` (no change is logged).
        """
        ...

    async def followee_ids(self, user: str) -> list[str]:
        """The ids of everyone ``user`` follows."""
        ...

    async def followers_page(self, user: str, before: str | None, limit: int) -> Page[Profile]:
        """The profiles following ``user``, most recent follow first."""
        ...

    async def following_page(self, user: str, before: str | None, limit: int) -> Page[Profile]:
        """The profiles ``user`` follows, most recent follow first."""
        ...

    async def create_post(  # noqa: PLR0917 - the contract's positional signature
        self,
        author: str,
        text: str,
        reply_to: int | None,
        root: int | None,
        tags: Sequence[str],
        mentions: Sequence[str],
        notices: Sequence[Notice],
        now: int,
    ) -> Committed[Post]:
        """Store a new post (bumping the parent's reply count for a reply).

        Commits, in this order: ``post.created``; for a reply, the parent's
        ``post.counts``; one notification per notice (about the new post).
        """
        ...

    async def get_post(self, post_id: int) -> Post | None:
        """The post, or None when it does not exist or was deleted."""
        ...

    async def edit_post(
        self, post_id: int, text: str, tags: Sequence[str], mentions: Sequence[str], now: int
    ) -> Committed[Post]:
        """Replace the text, tags and mentions of a post; value: the edited post.

        Commits ``post.edited`` (the whole post; stored with the new tags, routed live by
        the old ones too) and removes the post's earlier changes from the logs.
        """
        ...

    async def delete_post(self, post_id: int, now: int) -> Committed[Post]:
        """Soft-delete a post (its id is never reused); value: it with ``deleted`` set.

        The stored post keeps no text, tags or mentions, and its earlier changes are
        removed from the logs. Commits ``post.deleted`` (no tag stored; routed live by
        the post's tags) and, for a reply, the parent's ``post.counts``.
        """
        ...

    async def like(
        self, user: str, post_id: int, notify: str | None, now: int
    ) -> Committed[tuple[bool, int]]:
        """Like a post (idempotent); value: (changed?, like count now).

        A new like commits a ``like`` notification for ``notify`` (the post's author;
        None for nobody), unless ``user`` is in that like group already.
        """
        ...

    async def unlike(self, user: str, post_id: int, now: int) -> Committed[tuple[bool, int]]:
        """Withdraw a like (idempotent); value: (changed?, like count now). Commits no
        change: the coalesced ``post.counts`` follows (:meth:`record_counts`).

        A like or unlike that changed the counter marks the post *pending* in the same
        commit, until :meth:`record_counts` logs the counter (see :meth:`pending_counts`).
        """
        ...

    async def block(self, blocker: str, target: str, now: int) -> Committed[bool]:
        """Make ``blocker`` block ``target``; value: True when newly blocked.

        In the same commit, the follows between them (both ways) are removed, and a
        :class:`FollowChange` for each and a :class:`RelationChange` are published.
        """
        ...

    async def unblock(self, blocker: str, target: str) -> Committed[bool]:
        """Lift a block; value: True when there was one (publishes a RelationChange)."""
        ...

    async def mute(self, muter: str, target: str, until: int | None, now: int) -> Committed[bool]:
        """Mute ``target`` for ``muter`` until ``until`` (ms; None: until unmuted),
        replacing an earlier mute's end (and moving it to the top of the list); value:
        True. Publishes a RelationChange."""
        ...

    async def unmute(self, muter: str, target: str) -> Committed[bool]:
        """Lift a mute; value: True when there was one (publishes a RelationChange)."""
        ...

    async def prune_mutes(self, now: int) -> int:
        """Delete the mutes that ran out at or before ``now``; return how many (the prune
        round calls it: a mute that ran out has no effect before, see Shield)."""
        ...

    async def relations(self, user: str, now: int) -> Relations:
        """Whom ``user`` blocked, who blocked them, and their mutes in effect at ``now``."""
        ...

    async def barriers(self, actor: str, others: Sequence[str], now: int) -> Barriers:
        """Which of ``others`` have a block with ``actor`` (either way), and which mute
        ``actor`` at ``now``."""
        ...

    async def relations_page(
        self, user: str, kind: RelationKind, now: int, before: str | None, limit: int
    ) -> Page[Relation]:
        """Whom ``user`` blocked (or muted, mutes in effect at ``now``), newest first."""
        ...

    async def liked_among(self, user: str, post_ids: Sequence[int]) -> set[int]:
        """Which of ``post_ids`` ``user`` likes (unknown ids are simply not in the set)."""
        ...

    async def home_page(self, user: str, before: str | None, limit: int) -> Page[Post]:
        """Posts of ``user`` and their followees, newest first."""
        ...

    async def user_page(self, user: str, before: str | None, limit: int) -> Page[Post]:
        """Posts of ``user``, newest first."""
        ...

    async def public_page(self, before: str | None, limit: int) -> Page[Post]:
        """All posts, newest first."""
        ...

    async def hashtag_page(self, tag: str, before: str | None, limit: int) -> Page[Post]:
        """Posts carrying ``tag``, newest first."""
        ...

    async def replies_page(self, post_id: int, before: str | None, limit: int) -> Page[Post]:
        """Direct replies to ``post_id``, oldest first."""
        ...

    async def record_counts(self, post_id: int, now: int) -> Committed[None]:
        """Commit one ``post.counts`` change with the post's current counters (none for
        a deleted or missing post), and clear the post's pending mark with it."""
        ...

    async def pending_counts(self, marked_before: int, limit: int) -> list[int]:
        """Posts (at most ``limit``) whose counter a like or unlike changed at or before
        ``marked_before`` (ms) and no ``post.counts`` change has logged since: what a node
        that died inside its coalescing window left to log."""
        ...

    async def notifications_page(
        self, user: str, before: str | None, limit: int
    ) -> Page[Notification]:
        """The user's notifications, newest first (by id).

        Notifications are groups: at most one per (user, kind, post), joined at most once
        by each actor. A write whose actor is new to the group replaces the group with
        one under a new, higher id (unread, naming the actor first, counting one more)
        and commits its ``notification`` change; an actor already in it commits nothing.
        So ids order the page, no group appears on two pages, and ``mark_read(up_to)``
        covers exactly the groups shown up to that id. A pruned group is forgotten with
        its actors (:meth:`prune_notifications`): an actor may start a new one.
        """
        ...

    async def prune_notifications(self, older_than: int, keep: int) -> int:
        """Remove the notification groups whose newest actor came before ``older_than``
        (ms), and all but the newest ``keep`` groups of each user; return how many were
        removed. Idempotent; cost bounded by what it removes and the users who got a new
        group since the last prune."""
        ...

    async def unread_count(self, user: str) -> int:
        """How many of the user's notifications are unread."""
        ...

    async def mark_read(self, user: str, up_to: int | None) -> int:
        """Mark notifications with id <= ``up_to`` (all when None) read; return unread count."""
        ...

    async def close(self) -> None:
        """Release the store's resources; no method may be called afterwards."""
        ...


class ChangeLog(Protocol):
    """The durable, sequenced change logs that cursors and resume are built on.

    Retention: a change is kept while younger than ``retention_seconds`` OR among the
    newest ``retention_per_log`` changes of its log, and never once older than
    ``retention_max_seconds`` (the hard bound).

    Deleted means gone: a store's edit or deletion of a post removes every earlier
    change about it (not the notifications) from the logs in its own commit, and the
    new change (``origin``: the post's creation sequence) restates the post on replay
    (``hub.routing.replay_routes``). A read never answers with a change a scrub removed
    while it ran. An edit's or deletion's ``route_tags`` are never stored.
    """

    async def append(self, changes: Sequence[NewChange]) -> list[Change]:
        """Durably append ``changes`` in order, assigning increasing sequence numbers,
        and publish them with the same commit (for changes that go with no record)."""
        ...

    async def head(self) -> int:
        """The highest sequence number ever assigned (0 when nothing was appended)."""
        ...

    async def scrub_mark(self) -> int:
        """A number that changes whenever an edit or a deletion scrubs changes from the
        log: a replay up to a head read earlier compares it, since a post created
        before that head and scrubbed after it is restated only past the head."""
        ...

    async def read_since(self, after: int, interest: Interest, limit: int) -> list[Change] | None:
        """Changes with seq > ``after`` that ``interest`` matches, in seq order.

        None when a change the interest could match was pruned after ``after``, when
        ``after`` lies beyond the head, when more than ``limit`` changes match, or when
        finding them would examine more than the backend's ``MAX_EXAMINED`` entries: the
        client must resync. The cost is bounded: indexed reads in chunks that yield to
        the event loop, never a scan of a whole log.
        """
        ...

    async def prune(self, now: int) -> int:
        """Apply the retention rule at time ``now`` (ms); return how many changes were removed.

        Nothing older than the hard bound survives it."""
        ...


class Bus(Protocol):
    """Delivers what the writes publish, and presence, to every node's subscribers."""

    async def publish(self, message: PresenceChange) -> None:
        """Deliver an ephemeral presence change to every subscriber (on every node).

        Changes and follow updates are never handed to this: the writes that commit
        them publish them (see the module docstring).
        """
        ...

    def subscribe(self, handler: BusHandler) -> None:
        """Call ``handler`` for every message published from now on."""
        ...

    def watch(self, key: RouteKey) -> None:
        """Receive messages routed under ``key`` from now on (the fan-out calls it for
        the first local member of a key; an in-process bus receives everything)."""
        ...

    def unwatch(self, key: RouteKey) -> None:
        """Stop receiving messages routed under ``key`` (its last local member left)."""
        ...

    async def settled(self) -> None:
        """Return once every :meth:`watch` so far is in effect."""
        ...


class Presence(Protocol):
    """Counts each user's open connections (across nodes, for shared implementations)."""

    async def connect(self, user: str) -> bool:
        """Count one more connection; True when the user went from none to one."""
        ...

    async def disconnect(self, user: str) -> bool:
        """Count one connection less; True when the user now has none."""
        ...

    async def online(self, users: Iterable[str]) -> set[str]:
        """The subset of ``users`` with at least one connection."""
        ...
