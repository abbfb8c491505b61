"""The seams the domain and the fan-out run on: Store, ChangeLog, Bus and Presence.

Each seam is a :class:`typing.Protocol`; the embedded implementations live in
``hub.backends.sqlite`` (Store, ChangeLog) and ``hub.backends.memory`` (Bus, Presence).
Every write method of Store and ChangeLog is durable before it returns.

Page cursors are opaque strings produced by a store; a store handed a cursor it cannot
read raises :class:`CursorError`. Methods that name a post or user that must exist raise
:class:`MissingRecord` when it does not (the domain checks first, so this is a guard).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.records import (
    Change,
    Interest,
    NewChange,
    Notification,
    Page,
    Post,
    PresenceChange,
    Profile,
)

__all__ = [
    "BackendUnavailable",
    "Bus",
    "BusGap",
    "BusHandler",
    "BusMessage",
    "ChangeLog",
    "CursorError",
    "FollowChange",
    "MissingRecord",
    "Presence",
    "Store",
]


@dataclass(frozen=True, slots=True)
class FollowChange:
    """``follower`` started (``following``) or stopped following ``followee``.

    Shared backends publish it so that the follower's sessions on every node update
    their route keys; ``after`` is the change sequence head when the follow was written.
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


BusMessage = Change | PresenceChange | FollowChange | BusGap
"""What travels on the bus: durable changes, ephemeral presence changes, follow
updates and gap notices (the last two only from shared backends)."""
BusHandler = Callable[[BusMessage], None]
"""A bus subscriber: called synchronously for every published message."""


class CursorError(ValueError):
    """A page cursor this store did not produce (or cannot read)."""


class MissingRecord(LookupError):
    """A write named a user or post that does not exist (or is deleted)."""


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

    async def follow(self, follower: str, followee: str, now: int) -> bool:
        """Make ``follower`` follow ``followee``; True when newly following."""
        ...

    async def unfollow(self, follower: str, followee: str) -> bool:
        """Stop following; True when ``follower`` was following ``followee``."""
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
        now: int,
    ) -> Post:
        """Store a new post (bumping the parent's reply count for a reply); return it."""
        ...

    async def get_post(self, post_id: int) -> Post | None:
        """The post, or None when it does not exist or was deleted."""
        ...

    async def edit_post(
        self, post_id: int, text: str, tags: Sequence[str], mentions: Sequence[str], now: int
    ) -> Post:
        """Replace the text, tags and mentions of a post; return the edited post."""
        ...

    async def delete_post(self, post_id: int) -> Post:
        """Soft-delete a post (its id is never reused); return it with ``deleted`` set."""
        ...

    async def like(self, user: str, post_id: int) -> tuple[bool, int]:
        """Like a post (idempotent); return (changed?, like count now)."""
        ...

    async def unlike(self, user: str, post_id: int) -> tuple[bool, int]:
        """Withdraw a like (idempotent); return (changed?, like count now)."""
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

    async def add_notification(
        self, user: str, kind: str, actor: str, post: int | None, now: int
    ) -> Notification:
        """Store an unread notification for ``user``; return it."""
        ...

    async def notifications_page(
        self, user: str, before: str | None, limit: int
    ) -> Page[Notification]:
        """The user's notifications, newest first."""
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
    newest ``retention_per_log`` changes of its log.
    """

    async def append(self, changes: Sequence[NewChange]) -> list[Change]:
        """Durably append ``changes`` in order, assigning increasing sequence numbers."""
        ...

    async def head(self) -> int:
        """The highest sequence number ever assigned (0 when nothing was appended)."""
        ...

    async def read_since(self, after: int, interest: Interest, limit: int) -> list[Change] | None:
        """Changes with seq > ``after`` that ``interest`` matches, in seq order.

        None when a change the interest could match was pruned after ``after``, when
        ``after`` lies beyond the head, or when more than ``limit`` changes match: the
        client must resync.
        """
        ...

    async def prune(self, now: int) -> int:
        """Apply the retention rule at time ``now`` (ms); return how many changes were removed."""
        ...


class Bus(Protocol):
    """Carries changes and presence between nodes (or within one)."""

    async def publish(self, message: BusMessage) -> None:
        """Deliver ``message`` to every subscriber (on every node)."""
        ...

    def subscribe(self, handler: BusHandler) -> None:
        """Call ``handler`` for every message published from now on."""
        ...

    def watch(self, key: str) -> None:
        """Receive messages routed under ``key`` from now on (the fan-out calls it for
        the first local member of a key; an in-process bus receives everything)."""
        ...

    def unwatch(self, key: str) -> None:
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
