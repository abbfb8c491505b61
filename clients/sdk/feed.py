"""A live view of the home feed's first page and of which followees are online.

Theory of operation: :meth:`FeedView.start` loads the first page of ``feed.home`` and
the presence of everyone the user follows, then applies every event the connection
delivers: ``FeedInsert`` adds a post in id order (newest first) and trims the page,
``PostUpdated`` and ``PostDeleted`` change or remove a shown post (the SDK's own
``PostUpdated`` after ``like`` / ``unlike`` sets ``liked``), ``PresenceChanged``
updates :attr:`FeedView.online`, and ``RelationChanged`` (this user blocked or muted
someone, here or on another device) drops that user's posts at once (a block also
their follow and presence); lifting a block or mute reloads the page. Each update
carries absolute values and events come in change order, so applying them on top of
any page read before them converges to what a fresh read would show.

A ``Resync`` (or a delete that leaves a full page one short) reloads the page;
events arriving during a reload are kept and applied on top of the new page.
Every reconnect asks presence again (presence events are not replayed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from clients.sdk.client import Client, collect
from clients.sdk.errors import SdkError
from clients.sdk.events import (
    FeedInsert,
    HubEvent,
    Post,
    PostDeleted,
    PostUpdated,
    PresenceChanged,
    Reconnected,
    RelationChanged,
    Resync,
)
from protocol.limits import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, MAX_PRESENCE_USERS

__all__ = ["FeedView"]

log = logging.getLogger(__name__)


class FeedView:
    """The first page of the home feed and the online followees, kept current."""

    def __init__(self, client: Client, limit: int = DEFAULT_PAGE_LIMIT) -> None:
        self.client = client
        self.limit = limit
        self.posts: list[Post] = []
        """The page, newest first, as a fresh ``feed.home`` would return it."""
        self.following: set[str] = set()
        """Who the user follows, as of the last (re)load."""
        self.online: set[str] = set()
        """Which of them are online."""
        self._more = False
        self._buffer: list[HubEvent] | None = None
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> FeedView:
        """Load the page and presence, then follow events; returns the view."""
        self.client.connection.add_listener(self._on_event)
        await self._refresh(page=True, presence=True)
        return self

    def stop(self) -> None:
        """Stop following events."""
        self.client.connection.remove_listener(self._on_event)
        for task in self._tasks:
            task.cancel()

    async def reload(self) -> None:
        """Load the first page afresh (events arriving meanwhile are applied on top)."""
        await self._refresh(page=True, presence=False)

    async def refresh_presence(self) -> None:
        """Ask again who the user follows and which of them are online."""
        await self._refresh(page=False, presence=True)

    async def _refresh(self, *, page: bool, presence: bool) -> None:
        async with self._lock:
            self._buffer = []
            try:
                if page:
                    first = await self.client.home(limit=self.limit)
                    self.posts, self._more = list(first.items), first.next is not None
                if presence:
                    self.following, self.online = await self._presence()
            finally:
                held, self._buffer = self._buffer, None
                for event in held:
                    self._apply(event)
                self._notify()

    async def _presence(self) -> tuple[set[str], set[str]]:
        me = self.client.me.id
        people = await collect(lambda before: self.client.following(me, before, MAX_PAGE_LIMIT))
        users = sorted(p.id for p in people)
        online: set[str] = set()
        for start in range(0, len(users), MAX_PRESENCE_USERS):
            online |= await self.client.presence(users[start : start + MAX_PRESENCE_USERS])
        return set(users), online

    async def wait_for(self, predicate: Callable[[FeedView], bool], within: float) -> None:
        """Wait until ``predicate(view)`` holds; raise TimeoutError after ``within`` s."""
        async with asyncio.timeout(within):
            while not predicate(self):
                await self._changed.wait()

    # -- applying events ----------------------------------------------------------

    def _on_event(self, event: HubEvent) -> None:
        if isinstance(event, Resync):
            self._spawn(self.reload())
        elif isinstance(event, Reconnected):
            self._spawn(self.refresh_presence())
        elif self._buffer is not None:
            self._buffer.append(event)
        elif self._apply(event):
            self._notify()

    def _apply(self, event: HubEvent) -> bool:
        """Apply one event to the page; True when something changed."""
        match event:
            case FeedInsert(post=post):
                return self._insert(post)
            case PostUpdated(id=post_id):
                for i, shown in enumerate(self.posts):
                    if shown.id == post_id:
                        self.posts[i] = event.apply(shown)
                        return True
            case PostDeleted(id=post_id):
                return self._drop(lambda p: p.id == post_id)
            case PresenceChanged(user=user, online=online) if user in self.following:
                (self.online.add if online else self.online.discard)(user)
                return True
            case RelationChanged():
                return self._relate(event)
        return False

    def _drop(self, hidden: Callable[[Post], bool]) -> bool:
        """Remove the ``hidden`` posts from the page; True when there were any."""
        kept = [p for p in self.posts if not hidden(p)]
        if len(kept) == len(self.posts):
            return False
        self.posts = kept
        if self._more:  # the next older posts should move up: read them
            self._spawn(self.reload())
        return True

    def _relate(self, change: RelationChanged) -> bool:
        """Apply one's own block or mute: hide the user now; after a lift, their posts
        may belong on the page again, so read it afresh."""
        if not change.hides:
            self._spawn(self.reload())
            return False
        changed = False
        if change.blocked and change.user in self.following:  # the block ended the follow
            self.following.discard(change.user)
            self.online.discard(change.user)
            changed = True
        return self._drop(lambda p: p.author == change.user) or changed

    def _insert(self, post: Post) -> bool:
        if any(p.id == post.id for p in self.posts):
            return False
        full = len(self.posts) >= self.limit
        if full and post.id < self.posts[-1].id:
            return False  # older than the page: it belongs on a later page
        self.posts.append(post)
        self.posts.sort(key=lambda p: p.id, reverse=True)
        if len(self.posts) > self.limit:
            del self.posts[self.limit :]
            self._more = True
        return True

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._guard(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except SdkError as exc:
            log.warning("the feed view could not refresh: %s", exc)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
