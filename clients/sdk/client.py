"""The typed client: one coroutine per protocol operation, and the events as an iterator.

::

    async with connect("ws://127.0.0.1:8765/", token=token) as client:
        await client.post("hello #world")
        async for event in client.events():
            ...

The :class:`Client` converts arguments to protocol operations and results to
records (:mod:`clients.sdk.events`); the :class:`~clients.sdk.connection.Connection`
under it does the talking, reconnecting and resuming.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from clients.sdk.connection import Connection, Options
from clients.sdk.errors import BadResponse
from clients.sdk.events import (
    Closed,
    HubEvent,
    Notification,
    Page,
    Post,
    PostUpdated,
    Profile,
    Relation,
)
from protocol import Operation, ops
from protocol.limits import DEFAULT_PAGE_LIMIT

__all__ = ["Client", "collect", "connect"]

T = TypeVar("T")


class Client:
    """An authenticated, self-reconnecting client; make one with :func:`connect`."""

    def __init__(self, connection: Connection, event_buffer: int = 10_000) -> None:
        self.connection = connection
        self._buffer: asyncio.Queue[HubEvent] = asyncio.Queue(maxsize=event_buffer)
        connection.add_listener(self._buffer_event)

    def _buffer_event(self, event: HubEvent) -> None:
        if self._buffer.full():  # nobody reads events(): keep the newest
            self._buffer.get_nowait()
        self._buffer.put_nowait(event)

    @property
    def me(self) -> Profile:
        """The authenticated user's profile as of the last (re)connect."""
        return self._convert(Profile.from_wire, self.connection.auth_result.get("user", {}))

    async def _call(self, op: Operation) -> Mapping[str, Any]:
        return await self.connection.call(op)

    @staticmethod
    def _convert(convert: Callable[[Mapping[str, Any]], T], result: Mapping[str, Any]) -> T:
        try:
            return convert(result)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadResponse(f"unreadable result from the hub: {exc}") from exc

    async def _page(self, op: Operation, item: Callable[[Mapping[str, Any]], T]) -> Page[T]:
        result = await self._call(op)
        return self._convert(lambda r: Page.from_wire(r, item), result)

    async def _post(self, op: Operation) -> Post:
        return self._convert(Post.from_wire, await self._call(op))

    async def _profile(self, op: Operation) -> Profile:
        return self._convert(Profile.from_wire, await self._call(op))

    # -- profiles and follows -----------------------------------------------------

    async def profile(self, user: str) -> Profile:
        """A user's profile (NotFound for an unknown user)."""
        return await self._profile(ops.GetProfile(user))

    async def update_profile(self, name: str | None = None, bio: str | None = None) -> Profile:
        """Change one's display name and/or bio; returns the new profile."""
        return await self._profile(ops.UpdateProfile(name, bio))

    async def follow(self, user: str) -> None:
        """Follow ``user`` (idempotent; Conflict for oneself, NotFound for nobody)."""
        await self._call(ops.Follow(user))

    async def unfollow(self, user: str) -> None:
        """Stop following ``user`` (idempotent)."""
        await self._call(ops.Unfollow(user))

    async def followers(
        self, user: str, before: str | None = None, limit: int = DEFAULT_PAGE_LIMIT
    ) -> Page[Profile]:
        """A page of the profiles following ``user``, most recent first."""
        return await self._page(ops.Followers(user, before, limit), Profile.from_wire)

    async def following(
        self, user: str, before: str | None = None, limit: int = DEFAULT_PAGE_LIMIT
    ) -> Page[Profile]:
        """A page of the profiles ``user`` follows."""
        return await self._page(ops.Following(user, before, limit), Profile.from_wire)

    # -- blocks and mutes -----------------------------------------------------------

    async def block(self, user: str) -> None:
        """Block ``user`` (idempotent): follows both ways end, each stops seeing the
        other, and follows, replies and likes between the two raise
        :class:`~clients.sdk.errors.Blocked`.

        Every connection of this user gets a
        :class:`~clients.sdk.events.RelationChanged` event.
        """
        await self._call(ops.Block(user))

    async def unblock(self, user: str) -> None:
        """Lift a block (idempotent); the follows it ended stay ended."""
        await self._call(ops.Unblock(user))

    async def mute(self, user: str, until: int | datetime | timedelta | None = None) -> Relation:
        """Hide ``user``'s posts and notifications from oneself, silently; returns the mute.

        ``until`` ends the mute by itself: ms since the epoch, a ``datetime`` (a naive
        one is local time) or a ``timedelta`` from now; None mutes until :meth:`unmute`.
        Muting again replaces ``until``. BadRequest for a time in the past.
        """
        result = await self._call(ops.Mute(user, _epoch_ms(until)))
        return self._convert(Relation.from_wire, result)

    async def unmute(self, user: str) -> None:
        """Lift a mute (idempotent)."""
        await self._call(ops.Unmute(user))

    async def blocks(
        self, before: str | None = None, limit: int = DEFAULT_PAGE_LIMIT
    ) -> Page[Relation]:
        """A page of the users this user blocked, most recent first."""
        return await self._page(ops.Blocks(before, limit), Relation.from_wire)

    async def mutes(
        self, before: str | None = None, limit: int = DEFAULT_PAGE_LIMIT
    ) -> Page[Relation]:
        """A page of this user's mutes still in effect, most recent first."""
        return await self._page(ops.Mutes(before, limit), Relation.from_wire)

    # -- posts ----------------------------------------------------------------------

    async def post(self, text: str) -> Post:
        """Publish a post; ``#tags`` and ``@mentions`` are parsed from the text."""
        return await self._post(ops.CreatePost(text))

    async def reply(self, post: int, text: str) -> Post:
        """Reply to the post with id ``post``."""
        return await self._post(ops.CreatePost(text, post))

    async def edit(self, post: int, text: str) -> Post:
        """Replace the text of one's own post (Forbidden for others' posts)."""
        return await self._post(ops.EditPost(post, text))

    async def delete(self, post: int) -> None:
        """Delete one's own post."""
        await self._call(ops.DeletePost(post))

    async def get_post(self, post: int) -> Post:
        """One post by id, with ``liked`` (NotFound when unknown or deleted)."""
        return self._convert(Post.from_wire, await self._call(ops.GetPost(post)))

    async def like(self, post: int) -> int:
        """Like a post (idempotent); returns its like count."""
        return await self._set_like(ops.Like(post), post, liked=True)

    async def unlike(self, post: int) -> int:
        """Take back a like (idempotent); returns the like count."""
        return await self._set_like(ops.Unlike(post), post, liked=False)

    async def _set_like(self, op: Operation, post: int, *, liked: bool) -> int:
        """Run ``op`` and tell listeners (a FeedView) that this user's like changed."""
        likes = int((await self._call(op))["likes"])
        self.connection.announce(PostUpdated(None, post, likes=likes, liked=liked))
        return likes

    # -- feeds and timelines --------------------------------------------------------

    async def home(self, before: str | None = None, limit: int = DEFAULT_PAGE_LIMIT) -> Page[Post]:
        """A page of the home feed: one's own posts and followees', newest first."""
        return await self._page(ops.FeedHome(before, limit), Post.from_wire)

    async def timeline(
        self, user: str, before: str | None = None, limit: int = DEFAULT_PAGE_LIMIT
    ) -> Page[Post]:
        """A page of ``user``'s posts, newest first."""
        return await self._page(ops.FeedUser(user, before, limit), Post.from_wire)

    async def public(
        self, before: str | None = None, limit: int = DEFAULT_PAGE_LIMIT
    ) -> Page[Post]:
        """A page of everyone's posts, newest first."""
        return await self._page(ops.FeedPublic(before, limit), Post.from_wire)

    async def hashtag(
        self, tag: str, before: str | None = None, limit: int = DEFAULT_PAGE_LIMIT
    ) -> Page[Post]:
        """A page of the posts carrying ``#tag`` (without the ``#``), newest first."""
        return await self._page(ops.FeedHashtag(tag, before, limit), Post.from_wire)

    async def replies(
        self, post: int, before: str | None = None, limit: int = DEFAULT_PAGE_LIMIT
    ) -> Page[Post]:
        """A page of the replies to ``post``, oldest first."""
        return await self._page(ops.FeedReplies(post, before, limit), Post.from_wire)

    # -- notifications, presence, streams -------------------------------------------

    async def notifications(
        self, before: str | None = None, limit: int = DEFAULT_PAGE_LIMIT
    ) -> Page[Notification]:
        """A page of notifications, newest first; ``unread`` holds the unread count."""
        return await self._page(ops.Notifications(before, limit), Notification.from_wire)

    async def mark_read(self, up_to: int | None = None) -> int:
        """Mark notifications read up to an id (all when None); returns the unread count."""
        return int((await self._call(ops.MarkRead(up_to)))["unread"])

    async def presence(self, users: list[str]) -> set[str]:
        """Which of ``users`` (1..100) are online."""
        return set((await self._call(ops.Presence(tuple(users))))["online"])

    async def subscribe(self, stream: str) -> None:
        """Receive ``StreamInsert`` events of ``public``, ``tag:x`` or ``thread:n``.

        Subscriptions are renewed after every reconnect.
        """
        await self._call(ops.Subscribe(stream))

    async def unsubscribe(self, stream: str) -> None:
        """Stop receiving a stream's events."""
        await self._call(ops.Unsubscribe(stream))

    async def ping(self) -> int:
        """The hub's clock, in ms since the epoch."""
        return int((await self._call(ops.Ping()))["time"])

    # -- events and life ----------------------------------------------------------

    async def events(self) -> AsyncIterator[HubEvent]:
        """Every event in order, from the moment of connecting, across reconnects.

        Ends when the client is closed; raises the reason (e.g. Unauthorized) when
        the connection ended for good. One reader at a time.
        """
        while True:
            event = await self._buffer.get()
            if isinstance(event, Closed):
                if event.error is not None:
                    raise event.error
                return
            yield event

    async def close(self) -> None:
        """Close the connection for good."""
        await self.connection.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _epoch_ms(when: int | datetime | timedelta | None) -> int | None:
    """``when`` as ms since the epoch (a timedelta counts from now)."""
    if when is None:
        return None
    if isinstance(when, timedelta):
        when = datetime.now().astimezone() + when
    if isinstance(when, datetime):
        return round(when.timestamp() * 1000)
    if type(when) is not int:
        raise TypeError(f"expected ms since the epoch, a datetime or a timedelta, not {when!r}")
    return when


async def collect(
    fetch: Callable[[str | None], Awaitable[Page[T]]], limit: int | None = None
) -> list[T]:
    """Every item of a paged listing, following ``next`` until the end (or ``limit`` items).

    ``await collect(lambda before: client.following("alice", before, 100))``
    """
    items: list[T] = []
    before: str | None = None
    while limit is None or len(items) < limit:
        page = await fetch(before)
        items.extend(page.items)
        if page.next is None:
            break
        before = page.next
    return items if limit is None else items[:limit]


class _Connecting:
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(self, url: str, token: str, options: Options, event_buffer: int) -> None:
        self._args = (url, token, options, event_buffer)
        self._client: Client | None = None

    async def _open(self) -> Client:
        url, token, options, event_buffer = self._args
        connection = Connection(url, token, options)
        client = Client(connection, event_buffer)
        await connection.open()
        return client

    def __await__(self) -> Generator[Any, None, Client]:
        return self._open().__await__()

    async def __aenter__(self) -> Client:
        self._client = await self._open()
        return self._client

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()


def connect(url: str, *, token: str, event_buffer: int = 10_000, **options: Any) -> _Connecting:
    """Connect to the hub at ``url`` as the user ``token`` names.

    ``async with connect(url, token=t) as client:`` or ``client = await connect(...)``.
    Keyword options are the fields of :class:`~clients.sdk.connection.Options`
    (``codec="msgpack"``, ``request_timeout=5``, ...). ``event_buffer`` bounds the
    events kept for :meth:`Client.events` (the oldest go first when nobody reads).
    Raises ConnectionLost when the hub cannot be reached, Unauthorized for a bad token,
    Conflict when the user already holds the most connections the hub allows (close
    4004; later reconnects retry that with backoff instead).
    """
    return _Connecting(url, token, Options(**options), event_buffer)
