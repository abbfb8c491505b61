"""Records shared by the domain (``hub.social``) and the backends (``hub.backends``).

Plain frozen dataclasses: stores return them, the domain reasons about them and
``hub.wire`` turns them into wire maps. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

__all__ = [
    "RESTATING",
    "SHOWN_ACTORS",
    "Barriers",
    "Change",
    "ChangeKind",
    "Committed",
    "Interest",
    "NewChange",
    "Notice",
    "Notification",
    "Page",
    "Post",
    "PresenceChange",
    "Profile",
    "Relation",
    "RelationChange",
    "RelationKind",
    "Relations",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Profile:
    """A user's public profile with its counters."""

    id: str
    name: str
    bio: str
    created_at: int
    followers: int
    following: int
    posts: int


@dataclass(frozen=True, slots=True)
class Post:
    """A post or a reply; ``root`` is the first post of its thread (None for a top post)."""

    id: int
    author: str
    text: str
    created_at: int
    edited_at: int | None
    reply_to: int | None
    root: int | None
    tags: tuple[str, ...]
    mentions: tuple[str, ...]
    likes: int
    replies: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class Notification:
    """Something that happened to ``user``: a follow, like, reply or mention by ``actor``.

    A notification is the *group* of everyone who did ``kind`` to ``post`` (``None`` for
    a follow): at most one exists per (user, kind, post), and each actor joins it once
    (docs/architecture.md, "Notifications"). ``actor`` and ``created_at`` are those of
    the newest actor; ``actors`` holds the newest few (at most :data:`SHOWN_ACTORS`,
    newest first, ``actor`` first; empty means just ``actor``) and ``others`` counts the
    actors besides ``actor``.
    """

    id: int
    user: str
    kind: str
    actor: str
    post: int | None
    created_at: int
    read: bool
    actors: tuple[str, ...] = ()
    others: int = 0


SHOWN_ACTORS = 3
"""How many of a notification's newest actors it names (``Notification.actors``)."""


class ChangeKind(StrEnum):
    """The kinds of change a change log holds."""

    POST_CREATED = "post.created"
    """A new post or reply; data is the full Post wire map."""
    POST_EDITED = "post.edited"
    """An edit; data is the full Post wire map after it (its live event carries
    ``{id, text, tags, mentions, edited_at}``; see ``hub.routing``)."""
    POST_DELETED = "post.deleted"
    """A deletion; data is ``{id}``."""

    POST_COUNTS = "post.counts"
    """New like/reply counters; data is ``{id, likes, replies}``."""
    NOTIFICATION = "notification"
    """A notification for ``recipient``; data is ``{notification, unread}``."""


RESTATING = frozenset({ChangeKind.POST_EDITED, ChangeKind.POST_DELETED})
"""The kinds that scrub a post's earlier changes from the logs and restate it: a replay
shows the post's current state at their cursor (``hub.routing.replay_routes``)."""


@dataclass(frozen=True, slots=True)
class NewChange:
    """A change before the change log assigned its sequence number (see :class:`Change`)."""

    log: str
    kind: ChangeKind
    created_at: int
    author: str
    post: int | None
    root: int | None
    reply_to: int | None
    tags: tuple[str, ...]
    recipient: str | None
    data: Mapping[str, Any]
    origin: int | None = None
    """For a restating change (:data:`RESTATING`): the sequence of the post's creation,
    when the logs still knew it (its creation change was removed with the scrub)."""
    route_tags: tuple[str, ...] = ()
    """Tags the live event is routed by besides ``tags`` and that are never stored: an
    edit's removed tags, a deleted post's tags."""

    def sequenced(self, seq: int) -> Change:
        """This change with its global sequence number ``seq``."""
        return Change(
            seq=seq,
            log=self.log,
            kind=self.kind,
            created_at=self.created_at,
            author=self.author,
            post=self.post,
            root=self.root,
            reply_to=self.reply_to,
            tags=self.tags,
            recipient=self.recipient,
            data=self.data,
            origin=self.origin,
            route_tags=self.route_tags,
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A durable change, as appended to a change log.

    ``seq`` is the global increasing sequence (the wire cursor is ``str(seq)``); ``log`` is
    the stored name of a :class:`hub.names.LogName` (the author's post log or the
    recipient's notification log); ``data`` is the
    wire payload of the event(s) the change yields. ``origin`` and ``route_tags`` are
    those of :class:`NewChange`; a change read back from a log has no ``route_tags``.
    """

    seq: int
    log: str
    kind: ChangeKind
    created_at: int
    author: str
    post: int | None
    root: int | None
    reply_to: int | None
    tags: tuple[str, ...]
    recipient: str | None
    data: Mapping[str, Any]
    origin: int | None = None
    route_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Committed(Generic[T]):
    """The result of one write: its ``value`` and the ``changes`` committed with it.

    The record, every change and notification it produced and their sequence numbers
    were committed together (one SQLite transaction, one Redis script) and published
    by that same commit; ``changes`` is empty when the write changed nothing.
    """

    value: T
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification a write must create for ``user``: ``kind`` is ``follow``, ``like``,
    ``reply`` or ``mention``; the actor, post and time are the write's own."""

    user: str
    kind: str


class RelationKind(StrEnum):
    """The two ways a user keeps another away."""

    BLOCK = "block"
    """Both ways: neither sees the other, follows end, interactions are refused."""
    MUTE = "mute"
    """One way, silently: the muter does not see the muted user's posts or notifications."""


@dataclass(frozen=True, slots=True)
class Relation:
    """One entry of a user's block or mute list: the other ``user`` and, for a mute, when
    it ends (``until``, ms since the epoch; None until lifted)."""

    user: str
    until: int | None = None


@dataclass(frozen=True, slots=True)
class Relations:
    """Everything that keeps other users away from one user: whom they ``blocked``, who
    ``blocked_by`` them, and whom they ``muted`` (with each mute's end, None for none)."""

    blocked: frozenset[str] = frozenset()
    blocked_by: frozenset[str] = frozenset()
    muted: Mapping[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Barriers:
    """What stands between an actor and some other users right now: ``blocked`` holds
    those with a block either way, ``muting`` those who mute the actor."""

    blocked: frozenset[str] = frozenset()
    muting: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RelationChange:
    """``actor`` started (``on``) or stopped blocking or muting ``target``; a mute may end
    at ``until`` (ms). Published with the write's commit (never logged), so that every
    node updates the relations of both users' sessions."""

    actor: str
    target: str
    kind: RelationKind
    on: bool
    until: int | None = None
    to: str | None = None
    """Whose sessions this copy is for (the actor or the target), when a shared bus
    carries one copy on each user's channel; None: both users'."""


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A user came online or went offline (ephemeral; never logged)."""

    user: str
    online: bool


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; ``next`` is the opaque cursor of the following page, or None."""

    items: tuple[T, ...]
    next: str | None


@dataclass(frozen=True, slots=True)
class Interest:
    """What one connection wants to hear about.

    ``authors`` holds the user's followees and the user; ``public`` asks for every post;
    ``tags`` and ``threads`` are the subscribed hashtag and thread (post id) streams.
    """

    user: str
    authors: frozenset[str]
    public: bool
    tags: frozenset[str]
    threads: frozenset[int]

    @property
    def broad(self) -> bool:
        """Whether the interest may match a post change of any author (a stream)."""
        return self.public or bool(self.tags) or bool(self.threads)

    def matches(self, change: Change) -> bool:
        """Whether ``change`` concerns this connection. An edit or a deletion concerns
        every connection with a tag stream: the tags it removed are not stored, so a
        replay cannot tell which tag streams showed the post."""
        if change.kind == ChangeKind.NOTIFICATION:
            return change.recipient == self.user
        if self.public or change.author in self.authors:
            return True
        if not self.tags.isdisjoint(change.tags):
            return True
        if self.tags and change.kind in RESTATING:
            return True  # its removed tags are gone: replayed to every tag stream
        return any(
            ref is not None and ref in self.threads
            for ref in (change.root, change.reply_to, change.post)
        )
