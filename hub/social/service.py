"""The social domain: the rules of profiles, follows, posts, likes, feeds and notifications.

Every write goes the same way (DESIGN.md section 2, step 2): check the rules, write the
store durably, append the resulting changes to the change log (which assigns their
cursors), and return an :class:`Outcome` holding the value and those changes. The node
acknowledges the client and then publishes ``Outcome.changes`` on the bus.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from hub.backends.base import ChangeLog, CursorError, Store
from hub.records import Change, NewChange, Notification, Page, Post, Profile
from hub.social import changes
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

__all__ = ["Outcome", "SocialService"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The result of a write: its ``value`` and the ``changes`` it appended (to publish)."""

    value: T
    changes: tuple[Change, ...]


class SocialService:
    """The domain, running on a :class:`Store` and a :class:`ChangeLog`.

    ``clock`` returns the current time in milliseconds since the epoch. Rule violations
    raise :class:`DomainError`.
    """

    def __init__(self, store: Store, changelog: ChangeLog, clock: Callable[[], int]) -> None:
        self._store = store
        self._log = changelog
        self._clock = clock

    # -- helpers -------------------------------------------------------------------------

    async def _commit(self, value: T, new: Sequence[NewChange]) -> Outcome[T]:
        appended = await self._log.append(new) if new else []
        return Outcome(value, tuple(appended))

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

    async def _own_post(self, actor: str, post_id: int) -> Post:
        post = await self._post(post_id)
        if post.author != actor:
            raise DomainError(ErrorCode.FORBIDDEN, "not your post")
        return post

    async def _notify(
        self, user: str, kind: str, actor: str, post: int | None, now: int
    ) -> NewChange:
        """Store a notification; return its change (carrying the unread count after it)."""
        notification = await self._store.add_notification(user, kind, actor, post, now)
        return changes.notified(notification, await self._store.unread_count(user), now)

    async def _counts_of(self, post_id: int | None, now: int) -> list[NewChange]:
        """A counts change for a live post (none for no post or a deleted one)."""
        post = None if post_id is None else await self._store.get_post(post_id)
        return [] if post is None else [changes.counts(post, now)]

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

    async def follow(self, actor: str, target: str) -> Outcome[bool]:
        """Follow ``target`` (idempotent); value: whether newly following.

        A new follow notifies the target.
        """
        await self._follow_target(actor, target)
        now = self._clock()
        if not await self._store.follow(actor, target, now):
            return Outcome(False, ())
        return await self._commit(True, [await self._notify(target, "follow", actor, None, now)])

    async def unfollow(self, actor: str, target: str) -> Outcome[bool]:
        """Stop following ``target`` (idempotent); value: whether a follow was removed."""
        await self._follow_target(actor, target)
        return Outcome(await self._store.unfollow(actor, target), ())

    async def followers(self, user: str, before: str | None, limit: int) -> Page[Profile]:
        """Who follows ``user``, most recent first."""
        await self._profile(user)
        return await self._page(before, limit, lambda b, n: self._store.followers_page(user, b, n))

    async def following(self, user: str, before: str | None, limit: int) -> Page[Profile]:
        """Whom ``user`` follows, most recent first."""
        await self._profile(user)
        return await self._page(before, limit, lambda b, n: self._store.following_page(user, b, n))

    # -- posts ---------------------------------------------------------------------------

    async def create_post(self, actor: str, text: str, reply_to: int | None) -> Outcome[Post]:
        """Post (or reply to ``reply_to``); parses hashtags and mentions.

        A reply joins its parent's thread and bumps the parent's reply count (a
        ``post.counts`` change). The parent's author is notified of a reply, mentioned
        users of the mention (once each; never the actor; unknown users are kept in the
        post's mentions but not notified).
        """
        text = normalize_post_text(text)
        tags, mentions = parse_tags(text), parse_mentions(text)
        parent = None if reply_to is None else await self._post(reply_to)
        root = None if parent is None else (parent.root or parent.id)
        now = self._clock()
        post = await self._store.create_post(actor, text, reply_to, root, tags, mentions, now)
        new = [changes.created(post, now), *await self._counts_of(reply_to, now)]
        notified = {actor}
        if parent is not None and parent.author not in notified:
            notified.add(parent.author)
            new.append(await self._notify(parent.author, "reply", actor, post.id, now))
        for user in mentions:
            if user not in notified and await self._store.get_profile(user) is not None:
                notified.add(user)
                new.append(await self._notify(user, "mention", actor, post.id, now))
        return await self._commit(post, new)

    async def edit_post(self, actor: str, post_id: int, text: str) -> Outcome[Post]:
        """Replace the text of the actor's post; tags and mentions are parsed again.

        Edits notify nobody.
        """
        text = normalize_post_text(text)
        old = await self._own_post(actor, post_id)
        now = self._clock()
        new = await self._store.edit_post(
            post_id, text, parse_tags(text), parse_mentions(text), now
        )
        return await self._commit(new, [changes.edited(old, new, now)])

    async def delete_post(self, actor: str, post_id: int) -> Outcome[int]:
        """Delete the actor's post; a reply's parent gets its new reply count."""
        await self._own_post(actor, post_id)
        now = self._clock()
        post = await self._store.delete_post(post_id)
        new = [changes.deleted(post, now), *await self._counts_of(post.reply_to, now)]
        return await self._commit(post_id, new)

    async def like(self, actor: str, post_id: int) -> Outcome[tuple[bool, int]]:
        """Like a post (idempotent); value: (changed?, likes now).

        A new like notifies the author (not for a self-like). The counts change is left
        to :meth:`counts_change`, which the node calls coalesced.
        """
        post = await self._post(post_id)
        changed, likes = await self._store.like(actor, post_id)
        new = []
        if changed and post.author != actor:
            new.append(await self._notify(post.author, "like", actor, post_id, self._clock()))
        return await self._commit((changed, likes), new)

    async def unlike(self, actor: str, post_id: int) -> Outcome[tuple[bool, int]]:
        """Withdraw a like (idempotent); value: (changed?, likes now)."""
        await self._post(post_id)
        return Outcome(await self._store.unlike(actor, post_id), ())

    async def counts_change(self, post_id: int) -> Outcome[None]:
        """Append one ``post.counts`` change with the post's current counters.

        Nothing is appended when the post was deleted meanwhile.
        """
        return await self._commit(None, await self._counts_of(post_id, self._clock()))

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
