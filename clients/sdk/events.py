"""Typed records and events: what the hub's plain maps become on the client side.

Records (:class:`Profile`, :class:`Post`, :class:`Notification`, :class:`Relation`,
:class:`Page`) are frozen dataclasses built from the wire maps of SPEC.md sections 1
and 4. Each pushed event
becomes one :class:`HubEvent` subclass (:func:`event_from_wire`); unknown event types
become :class:`UnknownEvent`, which clients ignore. :class:`Reconnected` is made by
the SDK itself after every successful reconnect.

Conversions raise ``KeyError``, ``TypeError`` or ``ValueError`` on a malformed map;
the connection turns those into :class:`~clients.sdk.errors.BadResponse` or a logged,
skipped event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from clients.sdk.errors import SdkError
from protocol import Event, EventType

__all__ = [
    "Closed",
    "FeedInsert",
    "HubEvent",
    "NewNotification",
    "Notice",
    "Notification",
    "Page",
    "Post",
    "PostDeleted",
    "PostUpdated",
    "PresenceChanged",
    "Profile",
    "Reconnected",
    "Relation",
    "RelationChanged",
    "Resync",
    "StreamInsert",
    "UnknownEvent",
    "event_from_wire",
]

T = TypeVar("T")


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an int, got {value!r}")
    return value


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)


def _str(value: object) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _bool(value: object) -> bool:
    if type(value) is not bool:
        raise TypeError(f"expected a bool, got {value!r}")
    return value


def _strs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {value!r}")
    return tuple(map(_str, value))


@dataclass(frozen=True, slots=True)
class Profile:
    """A user's public profile."""

    id: str
    name: str
    bio: str
    followers: int
    following: int
    posts: int
    created_at: int

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Profile:
        """The profile a wire map describes."""
        return cls(
            _str(data["id"]),
            _str(data["name"]),
            _str(data["bio"]),
            _int(data["followers"]),
            _int(data["following"]),
            _int(data["posts"]),
            _int(data["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class Post:
    """A post (or a reply: ``reply_to`` and ``root`` set) with its counters.

    ``liked`` is whether this user likes it, as of the page or reply it came in (posts
    from live events start unliked; this client's own likes update it).
    """

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
    liked: bool = False

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Post:
        """The post a wire map describes."""
        return cls(
            _int(data["id"]),
            _str(data["author"]),
            _str(data["text"]),
            _int(data["created_at"]),
            _opt_int(data.get("edited_at")),
            _opt_int(data.get("reply_to")),
            _opt_int(data.get("root")),
            _strs(data["tags"]),
            _strs(data["mentions"]),
            _int(data["likes"]),
            _int(data["replies"]),
            data.get("liked") is True,
        )


@dataclass(frozen=True, slots=True)
class Notification:
    """Something that happened to the user: a follow, like, reply or mention by ``actor``.

    A notification groups everyone who did ``kind`` to ``post`` (SPEC section 1):
    ``actor`` is the newest of them, ``actors`` the newest few (``actor`` first) and
    ``others`` how many besides ``actor`` ("alice and 3 others liked your post"). When
    someone joins, the group comes again under a new id: replace the one with the same
    ``kind`` and ``post``.
    """

    id: int
    kind: str
    actor: str
    post: int | None
    created_at: int
    read: bool
    actors: tuple[str, ...] = ()
    others: int = 0

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Notification:
        """The notification a wire map describes (a hub before groups: just ``actor``)."""
        read = _bool(data["read"])
        actor = _str(data["actor"])
        actors = data.get("actors")
        return cls(
            _int(data["id"]),
            _str(data["kind"]),
            actor,
            _opt_int(data.get("post")),
            _int(data["created_at"]),
            read,
            (actor,) if actors is None else _strs(actors),
            _opt_int(data.get("others")) or 0,
        )


@dataclass(frozen=True, slots=True)
class Relation:
    """One of one's blocks or mutes (the items of ``blocks`` and ``mutes`` pages).

    ``until`` is when a mute ends by itself (ms since the epoch); None for a mute until
    lifted, and always for a block.
    """

    user: str
    until: int | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Relation:
        """The relation a wire map describes."""
        return cls(_str(data["user"]), _opt_int(data.get("until")))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next`` as ``before`` for the following page."""

    items: tuple[T, ...]
    next: str | None
    unread: int | None = None
    """For notification pages: the number of unread notifications."""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], item: Callable[[Mapping[str, Any]], T]) -> Page[T]:
        """The page a wire map describes, converting each item with ``item``."""
        items = data["items"]
        if not isinstance(items, list):
            raise TypeError("page items must be a list")
        following = data.get("next")
        unread = data.get("unread")
        return cls(
            tuple(map(item, items)),
            None if following is None else _str(following),
            None if unread is None else _int(unread),
        )


@dataclass(frozen=True, slots=True)
class HubEvent:
    """Base of every event; ``cursor`` is set on durable events, None on ephemeral ones."""

    cursor: str | None


@dataclass(frozen=True, slots=True)
class FeedInsert(HubEvent):
    """A new post of a followee or of oneself (the home feed)."""

    post: Post


@dataclass(frozen=True, slots=True)
class StreamInsert(HubEvent):
    """A new post on a subscribed stream (``public``, ``tag:x``, ``thread:n``)."""

    stream: str
    post: Post


@dataclass(frozen=True, slots=True)
class PostUpdated(HubEvent):
    """Changed fields of a post (an edit or new counts); None means unchanged.

    The SDK makes one itself (no cursor) after this client's own ``like`` or ``unlike``,
    with ``liked`` set: the hub's count updates go to everyone and do not say who liked.
    """

    id: int
    text: str | None = None
    tags: tuple[str, ...] | None = None
    mentions: tuple[str, ...] | None = None
    edited_at: int | None = None
    likes: int | None = None
    replies: int | None = None
    liked: bool | None = None

    def apply(self, post: Post) -> Post:
        """``post`` with this update's fields applied."""
        changes = {
            name: value
            for name in ("text", "tags", "mentions", "edited_at", "likes", "replies", "liked")
            if (value := getattr(self, name)) is not None
        }
        return dataclasses.replace(post, **changes)


@dataclass(frozen=True, slots=True)
class PostDeleted(HubEvent):
    """A post was deleted."""

    id: int


@dataclass(frozen=True, slots=True)
class NewNotification(HubEvent):
    """A new notification and the unread count after it."""

    notification: Notification
    unread: int


@dataclass(frozen=True, slots=True)
class PresenceChanged(HubEvent):
    """A followee came online or went offline."""

    user: str
    online: bool


@dataclass(frozen=True, slots=True)
class RelationChanged(HubEvent):
    """One's own block or mute of ``user`` changed, on this device or another one.

    After a ``block`` / ``unblock`` ``blocked`` is set (``muted`` None); after a
    ``mute`` / ``unmute`` ``muted`` is set, with ``until`` when the mute ends by itself.
    Ephemeral: a client that was away reads :meth:`~clients.sdk.client.Client.blocks`
    and :meth:`~clients.sdk.client.Client.mutes` again.
    """

    user: str
    blocked: bool | None = None
    muted: bool | None = None
    until: int | None = None

    @property
    def hides(self) -> bool:
        """Whether ``user``'s posts are now hidden from this user (a block or mute made)."""
        return bool(self.blocked or self.muted)


@dataclass(frozen=True, slots=True)
class Resync(HubEvent):
    """The hub (or the SDK) could not resume exactly: reload views with fresh requests."""

    reason: str


@dataclass(frozen=True, slots=True)
class Notice(HubEvent):
    """A message from the hub, e.g. ``kind="draining"`` before a restart."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Reconnected(HubEvent):
    """Made by the SDK: the connection is back; ``resumed`` is False after a resync."""

    resumed: bool


@dataclass(frozen=True, slots=True)
class Closed(HubEvent):
    """Made by the SDK: the connection ended for good; ``error`` says why (None: closed)."""

    error: SdkError | None


@dataclass(frozen=True, slots=True)
class UnknownEvent(HubEvent):
    """An event type newer than this SDK; ignore it."""

    type: str
    data: Mapping[str, Any]


def _update(cursor: str | None, data: Mapping[str, Any]) -> PostUpdated:
    tags, mentions = data.get("tags"), data.get("mentions")
    text = data.get("text")
    return PostUpdated(
        cursor,
        _int(data["id"]),
        None if text is None else _str(text),
        None if tags is None else _strs(tags),
        None if mentions is None else _strs(mentions),
        _opt_int(data.get("edited_at")),
        _opt_int(data.get("likes")),
        _opt_int(data.get("replies")),
    )


def _presence(cursor: str | None, data: Mapping[str, Any]) -> PresenceChanged:
    return PresenceChanged(cursor, _str(data["user"]), _bool(data["online"]))


def _relation(cursor: str | None, data: Mapping[str, Any]) -> RelationChanged:
    blocked, muted = data.get("blocked"), data.get("muted")
    if blocked is None and muted is None:
        raise ValueError("a relation event says neither blocked nor muted")
    return RelationChanged(
        cursor,
        _str(data["user"]),
        None if blocked is None else _bool(blocked),
        None if muted is None else _bool(muted),
        _opt_int(data.get("until")),
    )


_CONVERTERS: dict[str, Callable[[str | None, Mapping[str, Any]], HubEvent]] = {
    EventType.FEED_INSERT: lambda c, d: FeedInsert(c, Post.from_wire(d)),
    EventType.STREAM_INSERT: lambda c, d: StreamInsert(
        c, _str(d["stream"]), Post.from_wire(d["post"])
    ),
    EventType.POST_UPDATE: _update,
    EventType.POST_DELETE: lambda c, d: PostDeleted(c, _int(d["id"])),
    EventType.NOTIFICATION: lambda c, d: NewNotification(
        c, Notification.from_wire(d["notification"]), _int(d["unread"])
    ),
    EventType.PRESENCE: _presence,
    EventType.RELATION: _relation,
    EventType.RESYNC: lambda c, d: Resync(c, str(d.get("reason", ""))),
    EventType.NOTICE: lambda c, d: Notice(c, _str(d["kind"]), str(d.get("message", ""))),
}


def event_from_wire(event: Event) -> HubEvent:
    """The typed event of a decoded protocol event; raises on malformed data."""
    convert = _CONVERTERS.get(event.type)
    if convert is None:
        return UnknownEvent(event.cursor, event.type, event.data)
    return convert(event.cursor, event.data)
