"""One frozen dataclass per operation a client can request.

Each class carries its wire name in ``NAME`` and declares its arguments in
``ARGS``: the wire key of each field, in field order, with the reader from
:mod:`protocol.validate` that checks it. From that, every operation builds itself
from a request's ``args`` map with :meth:`from_args` (raising
:class:`~protocol.errors.ProtocolError` with ``bad_request`` or ``too_large``) and
turns back into ``args`` with :meth:`to_args` (absent optionals omitted, keys in
field order: the canonical order encoders write). Unknown argument keys are
ignored, so newer clients can talk to older hubs.

:data:`OPERATIONS` maps wire names to classes; :data:`Operation` is the union
of all of them, for exhaustive ``match`` statements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Self, cast

from protocol import limits
from protocol import validate as v

__all__ = [
    "OPERATIONS",
    "PAGE_ARGS",
    "Auth",
    "Block",
    "Blocks",
    "CreatePost",
    "DeletePost",
    "EditPost",
    "FeedHashtag",
    "FeedHome",
    "FeedPublic",
    "FeedReplies",
    "FeedUser",
    "Follow",
    "Followers",
    "Following",
    "GetProfile",
    "Like",
    "MarkRead",
    "Mute",
    "Mutes",
    "Notifications",
    "Operation",
    "Ping",
    "Presence",
    "Readers",
    "Resume",
    "Subscribe",
    "Unblock",
    "Unfollow",
    "Unlike",
    "Unmute",
    "Unsubscribe",
    "UpdateProfile",
]


Readers = tuple[tuple[str, Callable[[Mapping[str, object], str], object]], ...]
"""An operation's arguments: (wire key, reader taking ``(args, key)``), in field order."""


PAGE_ARGS: Readers = (("before", v.optional_cursor), ("limit", v.page_limit))
"""The arguments every page request ends with: ``before`` (a page cursor) and ``limit``."""


class _Operation:
    """What every operation shares: wire arguments in and out, driven by ``ARGS``."""

    __slots__ = ()
    NAME: ClassVar[str]
    ARGS: ClassVar[Readers]

    @classmethod
    def from_args(cls, args: Mapping[str, object]) -> Self:
        """Validate wire arguments into this operation; raises ProtocolError."""
        build = cast(Callable[..., Self], cls)
        return build(*(read(args, key) for key, read in cls.ARGS))

    def to_args(self) -> dict[str, object]:
        """The wire arguments in field order, without absent optionals."""
        wire: dict[str, object] = {}
        for key, _ in self.ARGS:
            value = getattr(self, key)
            if value is not None:
                wire[key] = list(value) if isinstance(value, tuple) else value
        return wire


@dataclass(frozen=True, slots=True)
class Auth(_Operation):
    """``auth``: Authenticate the connection; must be the first request.

    With ``cursor`` (and the ``streams`` to subscribe to first), a reconnecting client
    resumes atomically: the missed events are replayed before live delivery begins.
    """

    NAME: ClassVar[str] = "auth"
    ARGS: ClassVar[Readers] = (
        ("token", v.token),
        ("cursor", v.optional_cursor),
        ("streams", v.optional_streams),
    )
    token: str
    cursor: str | None = None
    streams: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class GetProfile(_Operation):
    """``profile.get``: Read one user's profile."""

    NAME: ClassVar[str] = "profile.get"
    ARGS: ClassVar[Readers] = (("user", v.user_id),)
    user: str


@dataclass(frozen=True, slots=True)
class UpdateProfile(_Operation):
    """``profile.update``: Change one's own display name and/or bio (absent fields stay)."""

    NAME: ClassVar[str] = "profile.update"
    ARGS: ClassVar[Readers] = (("name", v.optional_name), ("bio", v.optional_bio))
    name: str | None = None
    bio: str | None = None


@dataclass(frozen=True, slots=True)
class Follow(_Operation):
    """``follow``: Follow a user (idempotent)."""

    NAME: ClassVar[str] = "follow"
    ARGS: ClassVar[Readers] = (("user", v.user_id),)
    user: str


@dataclass(frozen=True, slots=True)
class Unfollow(_Operation):
    """``unfollow``: Stop following a user (idempotent)."""

    NAME: ClassVar[str] = "unfollow"
    ARGS: ClassVar[Readers] = (("user", v.user_id),)
    user: str


@dataclass(frozen=True, slots=True)
class Block(_Operation):
    """``block``: Block a user (idempotent): follows both ways end, each stops seeing the
    other, and follows, replies and likes between them are refused."""

    NAME: ClassVar[str] = "block"
    ARGS: ClassVar[Readers] = (("user", v.user_id),)
    user: str


@dataclass(frozen=True, slots=True)
class Unblock(_Operation):
    """``unblock``: Lift a block (idempotent)."""

    NAME: ClassVar[str] = "unblock"
    ARGS: ClassVar[Readers] = (("user", v.user_id),)
    user: str


@dataclass(frozen=True, slots=True)
class Mute(_Operation):
    """``mute``: Hide a user's posts and notifications from oneself, without telling
    them; until ``until`` (ms since the epoch) when given."""

    NAME: ClassVar[str] = "mute"
    ARGS: ClassVar[Readers] = (("user", v.user_id), ("until", v.optional_timestamp))
    user: str
    until: int | None = None


@dataclass(frozen=True, slots=True)
class Unmute(_Operation):
    """``unmute``: Lift a mute (idempotent)."""

    NAME: ClassVar[str] = "unmute"
    ARGS: ClassVar[Readers] = (("user", v.user_id),)
    user: str


@dataclass(frozen=True, slots=True)
class Blocks(_Operation):
    """``blocks``: A page of the users one blocked, most recent first."""

    NAME: ClassVar[str] = "blocks"
    ARGS: ClassVar[Readers] = PAGE_ARGS
    before: str | None = None
    limit: int = limits.DEFAULT_PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class Mutes(_Operation):
    """``mutes``: A page of the users one muted (mutes still in effect), most recent first."""

    NAME: ClassVar[str] = "mutes"
    ARGS: ClassVar[Readers] = PAGE_ARGS
    before: str | None = None
    limit: int = limits.DEFAULT_PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class Followers(_Operation):
    """``followers``: A page of the profiles following a user."""

    NAME: ClassVar[str] = "followers"
    ARGS: ClassVar[Readers] = (("user", v.user_id), *PAGE_ARGS)
    user: str
    before: str | None = None
    limit: int = limits.DEFAULT_PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class Following(_Operation):
    """``following``: A page of the profiles a user follows."""

    NAME: ClassVar[str] = "following"
    ARGS: ClassVar[Readers] = (("user", v.user_id), *PAGE_ARGS)
    user: str
    before: str | None = None
    limit: int = limits.DEFAULT_PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class CreatePost(_Operation):
    """``post``: Publish a post, optionally as a reply to another post."""

    NAME: ClassVar[str] = "post"
    ARGS: ClassVar[Readers] = (("text", v.post_text), ("reply_to", v.optional_post_id))
    text: str
    reply_to: int | None = None


@dataclass(frozen=True, slots=True)
class EditPost(_Operation):
    """``edit``: Replace the text of one's own post."""

    NAME: ClassVar[str] = "edit"
    ARGS: ClassVar[Readers] = (("post", v.post_id), ("text", v.post_text))
    post: int
    text: str


@dataclass(frozen=True, slots=True)
class DeletePost(_Operation):
    """``delete``: Delete one's own post."""

    NAME: ClassVar[str] = "delete"
    ARGS: ClassVar[Readers] = (("post", v.post_id),)
    post: int


@dataclass(frozen=True, slots=True)
class GetPost(_Operation):
    """``post.get``: One post by id (``not_found`` when unknown or deleted)."""

    NAME: ClassVar[str] = "post.get"
    ARGS: ClassVar[Readers] = (("post", v.post_id),)
    post: int


@dataclass(frozen=True, slots=True)
class Like(_Operation):
    """``like``: Like a post (idempotent)."""

    NAME: ClassVar[str] = "like"
    ARGS: ClassVar[Readers] = (("post", v.post_id),)
    post: int


@dataclass(frozen=True, slots=True)
class Unlike(_Operation):
    """``unlike``: Take back a like (idempotent)."""

    NAME: ClassVar[str] = "unlike"
    ARGS: ClassVar[Readers] = (("post", v.post_id),)
    post: int


@dataclass(frozen=True, slots=True)
class FeedHome(_Operation):
    """``feed.home``: A page of the home feed: one's own posts and followees', newest first."""

    NAME: ClassVar[str] = "feed.home"
    ARGS: ClassVar[Readers] = PAGE_ARGS
    before: str | None = None
    limit: int = limits.DEFAULT_PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class FeedUser(_Operation):
    """``feed.user``: A page of one user's posts, newest first."""

    NAME: ClassVar[str] = "feed.user"
    ARGS: ClassVar[Readers] = (("user", v.user_id), *PAGE_ARGS)
    user: str
    before: str | None = None
    limit: int = limits.DEFAULT_PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class FeedPublic(_Operation):
    """``feed.public``: A page of all posts, newest first."""

    NAME: ClassVar[str] = "feed.public"
    ARGS: ClassVar[Readers] = PAGE_ARGS
    before: str | None = None
    limit: int = limits.DEFAULT_PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class FeedHashtag(_Operation):
    """``feed.hashtag``: A page of the posts carrying a hashtag, newest first."""

    NAME: ClassVar[str] = "feed.hashtag"
    ARGS: ClassVar[Readers] = (("tag", v.tag), *PAGE_ARGS)
    tag: str
    before: str | None = None
    limit: int = limits.DEFAULT_PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class FeedReplies(_Operation):
    """``feed.replies``: A page of the replies to a post, oldest first."""

    NAME: ClassVar[str] = "feed.replies"
    ARGS: ClassVar[Readers] = (("post", v.post_id), *PAGE_ARGS)
    post: int
    before: str | None = None
    limit: int = limits.DEFAULT_PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class Notifications(_Operation):
    """``notifications``: A page of one's notifications, newest first, with the unread count."""

    NAME: ClassVar[str] = "notifications"
    ARGS: ClassVar[Readers] = PAGE_ARGS
    before: str | None = None
    limit: int = limits.DEFAULT_PAGE_LIMIT


@dataclass(frozen=True, slots=True)
class MarkRead(_Operation):
    """``notifications.read``: Mark notifications read up to an id (all when absent)."""

    NAME: ClassVar[str] = "notifications.read"
    ARGS: ClassVar[Readers] = (("up_to", v.optional_post_id),)
    up_to: int | None = None


@dataclass(frozen=True, slots=True)
class Presence(_Operation):
    """``presence``: Ask which of up to 100 users are online."""

    NAME: ClassVar[str] = "presence"
    ARGS: ClassVar[Readers] = (("users", v.user_ids),)
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Subscribe(_Operation):
    """``subscribe``: Receive live ``stream.insert`` events of a stream."""

    NAME: ClassVar[str] = "subscribe"
    ARGS: ClassVar[Readers] = (("stream", v.stream),)
    stream: str


@dataclass(frozen=True, slots=True)
class Unsubscribe(_Operation):
    """``unsubscribe``: Stop receiving a stream's events."""

    NAME: ClassVar[str] = "unsubscribe"
    ARGS: ClassVar[Readers] = (("stream", v.stream),)
    stream: str


@dataclass(frozen=True, slots=True)
class Resume(_Operation):
    """``resume``: Replay the durable events missed since a cursor, then continue live."""

    NAME: ClassVar[str] = "resume"
    ARGS: ClassVar[Readers] = (("cursor", v.cursor),)
    cursor: str


@dataclass(frozen=True, slots=True)
class Ping(_Operation):
    """``ping``: Ask for the hub's clock; keeps idle connections alive."""

    NAME: ClassVar[str] = "ping"
    ARGS: ClassVar[Readers] = ()


Operation = (
    Auth
    | GetProfile
    | UpdateProfile
    | Follow
    | Unfollow
    | Block
    | Unblock
    | Mute
    | Unmute
    | Blocks
    | Mutes
    | Followers
    | Following
    | CreatePost
    | EditPost
    | DeletePost
    | GetPost
    | Like
    | Unlike
    | FeedHome
    | FeedUser
    | FeedPublic
    | FeedHashtag
    | FeedReplies
    | Notifications
    | MarkRead
    | Presence
    | Subscribe
    | Unsubscribe
    | Resume
    | Ping
)
"""Any operation: the type of :attr:`protocol.messages.Request.op`."""

OPERATIONS: dict[str, type[Operation]] = {
    op.NAME: op
    for op in (
        Auth,
        GetProfile,
        UpdateProfile,
        Follow,
        Unfollow,
        Block,
        Unblock,
        Mute,
        Unmute,
        Blocks,
        Mutes,
        Followers,
        Following,
        CreatePost,
        EditPost,
        DeletePost,
        GetPost,
        Like,
        Unlike,
        FeedHome,
        FeedUser,
        FeedPublic,
        FeedHashtag,
        FeedReplies,
        Notifications,
        MarkRead,
        Presence,
        Subscribe,
        Unsubscribe,
        Resume,
        Ping,
    )
}
"""Operation classes by wire name (the ``op`` of a request)."""
