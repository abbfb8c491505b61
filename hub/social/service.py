"""The social domain: the rules of profiles, follows, posts, likes, feeds and notifications.

Every write goes the same way (docs/architecture.md section 2, step 2): check the rules, then hand
the store one write that commits the record, its notifications and its changes (with
their cursors) together and publishes them (``hub.backends.base``: one write, one
commit). The result is a :class:`~hub.records.Committed` holding the value and those
changes; the node acknowledges the client, and the live events follow from the bus.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from hub.backends.base import CursorError, Store
from hub.records import Committed, Notice, Notification, Page, Post, Profile
from hub.social.errors import DomainError
from hub.social.text import (
    check_bio,
    check_name,
    check_page,
    check_tag,
    check_user_id,
    normalize_post_text,
    parse_mentions,
    parse_tags,
)
from protocol.errors import ErrorCode

__all__ = ["DEFAULT_MAX_MENTIONS", "SocialService"]

T = TypeVar("T")

DEFAULT_MAX_MENTIONS = 10
"""Most users one post may mention (``--max-mentions``): each is notified."""


class SocialService:
    """The domain, running on a :class:`Store` (whose writes commit their changes).

    ``clock`` returns the current time in milliseconds since the epoch; a post may
    mention at most ``max_mentions`` users. Rule violations raise :class:`DomainError`.
    """

    def __init__(
        self, store: Store, clock: Callable[[], int], *, max_mentions: int = DEFAULT_MAX_MENTIONS
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_mentions = max_mentions

    # -- helpers -------------------------------------------------------------------------

    async def _profile(self, user: str) -> Profile:
        found = await self._store.get_profile(user)
        if found is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no user {user!r}")
        return found

    async def _post(self, post_id: int) -> Post:
        found = await self._store.get_post(post_id)
        if found is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no post {post_id}")
        return found

    def _mentions(self, text: str) -> tuple[str, ...]:
        """The users ``text`` mentions; more than the cap is ``too_large``."""
        mentions = parse_mentions(text)
        if len(mentions) > self._max_mentions:
            raise DomainError(
                ErrorCode.TOO_LARGE, f"a post may mention at most {self._max_mentions} users"
            )
        return mentions

    async def _own_post(self, actor: str, post_id: int) -> Post:
        post = await self._post(post_id)
        if post.author != actor:
            raise DomainError(ErrorCode.FORBIDDEN, "not your post")
        return post

    @staticmethod
    async def _page(
        before: str | None, limit: int, read: Callable[[str | None, int], Awaitable[Page[T]]]
    ) -> Page[T]:
        check_page(before, limit)
        try:
            return await read(before, limit)
        except CursorError as exc:
            raise DomainError(ErrorCode.BAD_REQUEST, "not a page cursor") from exc

    # -- profiles and follows ------------------------------------------------------------

    async def sign_in(self, user: str) -> Profile:
        """The profile of an authenticated user, created on first sign-in."""
        return await self._store.ensure_profile(check_user_id(user), self._clock())

    async def get_profile(self, user: str) -> Profile:
        """A user's profile (not_found when unknown)."""
        return await self._profile(user)

    async def update_profile(self, actor: str, name: str | None, bio: str | None) -> Profile:
        """Change the actor's name and/or bio (None keeps it)."""
        name = None if name is None else check_name(name)
        bio = None if bio is None else check_bio(bio)
        await self._profile(actor)
        return await self._store.update_profile(actor, name, bio)

    async def _follow_target(self, actor: str, target: str) -> None:
        if target == actor:
            raise DomainError(ErrorCode.CONFLICT, "you cannot follow yourself")
        await self._profile(target)

    async def follow(self, actor: str, target: str) -> Committed[bool]:
        """Follow ``target`` (idempotent); value: whether newly following.

        A new follow notifies the target.
        """
        await self._follow_target(actor, target)
        return await self._store.follow(actor, target, self._clock())

    async def unfollow(self, actor: str, target: str) -> Committed[bool]:
        """Stop following ``target`` (idempotent); value: whether a follow was removed."""
        await self._follow_target(actor, target)
        return await self._store.unfollow(actor, target)

    async def followers(self, user: str, before: str | None, limit: int) -> Page[Profile]:
        """Who follows ``user``, most recent first."""
        await self._profile(user)
        return await self._page(before, limit, lambda b, n: self._store.followers_page(user, b, n))

    async def following(self, user: str, before: str | None, limit: int) -> Page[Profile]:
        """Whom ``user`` follows, most recent first."""
        await self._profile(user)
        return await self._page(before, limit, lambda b, n: self._store.following_page(user, b, n))

    # -- posts ---------------------------------------------------------------------------

    async def create_post(self, actor: str, text: str, reply_to: int | None) -> Committed[Post]:
        """Post (or reply to ``reply_to``); parses hashtags and mentions.

        A reply joins its parent's thread and bumps the parent's reply count (a
        ``post.counts`` change). The parent's author is notified of a reply, mentioned
        users of the mention (once each; never the actor; unknown users are kept in the
        post's mentions but not notified). More than ``max_mentions`` distinct mentions
        are ``too_large``.
        """
        text = normalize_post_text(text)
        tags, mentions = parse_tags(text), self._mentions(text)
        parent = None if reply_to is None else await self._post(reply_to)
        root = None if parent is None else (parent.root or parent.id)
        notices: list[Notice] = []
        notified = {actor}
        if parent is not None and parent.author not in notified:
            notified.add(parent.author)
            notices.append(Notice(parent.author, "reply"))
        for user in mentions:
            if user not in notified and await self._store.get_profile(user) is not None:
                notified.add(user)
                notices.append(Notice(user, "mention"))
        return await self._store.create_post(
            actor, text, reply_to, root, tags, mentions, notices, self._clock()
        )

    async def edit_post(self, actor: str, post_id: int, text: str) -> Committed[Post]:
        """Replace the text of the actor's post; tags and mentions are parsed again
        (and capped as for a new post).

        Edits notify nobody.
        """
        text = normalize_post_text(text)
        mentions = self._mentions(text)
        await self._own_post(actor, post_id)
        return await self._store.edit_post(post_id, text, parse_tags(text), mentions, self._clock())

    async def delete_post(self, actor: str, post_id: int) -> Committed[Post]:
        """Delete the actor's post; a reply's parent gets its new reply count."""
        await self._own_post(actor, post_id)
        return await self._store.delete_post(post_id, self._clock())

    async def like(self, actor: str, post_id: int) -> Committed[tuple[bool, int]]:
        """Like a post (idempotent); value: (changed?, likes now).

        A new like notifies the author (not for a self-like). The counts change is left
        to :meth:`counts_change`, which the node calls coalesced.
        """
        post = await self._post(post_id)
        notify = None if post.author == actor else post.author
        return await self._store.like(actor, post_id, notify, self._clock())

    async def unlike(self, actor: str, post_id: int) -> Committed[tuple[bool, int]]:
        """Withdraw a like (idempotent); value: (changed?, likes now)."""
        await self._post(post_id)
        return await self._store.unlike(actor, post_id, self._clock())

    async def counts_change(self, post_id: int) -> Committed[None]:
        """Commit one ``post.counts`` change with the post's current counters.

        Nothing is committed when the post was deleted meanwhile.
        """
        return await self._store.record_counts(post_id, self._clock())

    async def log_pending_counts(self, marked_before: int, limit: int) -> int:
        """Log the counters that likes changed at or before ``marked_before`` (ms) and no
        ``post.counts`` change logged yet (a node died inside its coalescing window);
        return how many posts were logged."""
        pending = await self._store.pending_counts(marked_before, limit)
        for post_id in pending:
            await self._store.record_counts(post_id, self._clock())
        return len(pending)

    # -- feeds ---------------------------------------------------------------------------

    async def get_post(self, post_id: int) -> Post:
        """One post (not_found for a missing or deleted post)."""
        return await self._post(post_id)

    async def liked_among(self, actor: str, post_ids: Sequence[int]) -> set[int]:
        """Which of ``post_ids`` the actor likes."""
        return await self._store.liked_among(actor, post_ids)

    async def home_page(self, actor: str, before: str | None, limit: int) -> Page[Post]:
        """The actor's posts and their followees', newest first."""
        return await self._page(before, limit, lambda b, n: self._store.home_page(actor, b, n))

    async def user_page(self, user: str, before: str | None, limit: int) -> Page[Post]:
        """A user's posts, newest first (not_found for an unknown user)."""
        await self._profile(user)
        return await self._page(before, limit, lambda b, n: self._store.user_page(user, b, n))

    async def public_page(self, before: str | None, limit: int) -> Page[Post]:
        """Everyone's posts, newest first."""
        return await self._page(before, limit, self._store.public_page)

    async def hashtag_page(self, tag: str, before: str | None, limit: int) -> Page[Post]:
        """Posts with ``tag``, newest first."""
        check_tag(tag)
        return await self._page(before, limit, lambda b, n: self._store.hashtag_page(tag, b, n))

    async def replies_page(self, post_id: int, before: str | None, limit: int) -> Page[Post]:
        """Replies to a post, oldest first (not_found for a missing or deleted post)."""
        await self._post(post_id)
        return await self._page(before, limit, lambda b, n: self._store.replies_page(post_id, b, n))

    # -- notifications ------------------------------------------------------

    async def notifications(
        self, actor: str, before: str | None, limit: int
    ) -> tuple[Page[Notification], int]:
        """The actor's notifications, newest first, and their unread count."""
        page = await self._page(
            before, limit, lambda b, n: self._store.notifications_page(actor, b, n)
        )
        return page, await self._store.unread_count(actor)

    async def mark_read(self, actor: str, up_to: int | None) -> int:
        """Mark notifications up to id ``up_to`` (all when None) read; return unread count."""
        return await self._store.mark_read(actor, up_to)
