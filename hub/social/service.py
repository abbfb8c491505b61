"""The social domain: the rules of profiles, follows, posts, likes, feeds and notifications.

Every write goes the same way (docs/architecture.md section 2, step 2): check the rules, then hand
the store one write that commits the record, its notifications and its changes (with
their cursors) together and publishes them (``hub.backends.base``: one write, one
commit). The result is a :class:`~hub.records.Committed` holding the value and those
changes; the node acknowledges the client, and the live events follow from the bus.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

from hub.backends.base import BlockedWrite, CursorError, Store
from hub.records import (
    Barriers,
    Committed,
    Notice,
    Notification,
    Page,
    Post,
    Profile,
    Relation,
    RelationKind,
)
from hub.shield import visible_group
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

__all__ = ["DEFAULT_MAX_MENTIONS", "NOBODY", "Hides", "SocialService"]

T = TypeVar("T")

Hides = Callable[[str], bool]
"""Whether the viewer does not see a user (a block either way, or a mute)."""

NOBODY: Hides = lambda user: False  # noqa: E731 - a constant, named for what it hides
"""Hides nobody (a viewer without blocks or mutes)."""

PAGE_READS = 5
"""Store reads one page request makes at most while the viewer's blocks and mutes hide
items: a page may then hold fewer than ``limit`` items with ``next`` still set."""

DEFAULT_MAX_MENTIONS = 10
"""Most users one post may mention (``--max-mentions``): each is notified."""


def _blocked(other: str, what: str) -> DomainError:
    return DomainError(ErrorCode.BLOCKED, f"a block between you and {other!r} forbids {what}")


@contextmanager
def _refused_across_a_block(other: str, what: str) -> Iterator[None]:
    """A block the store met in the write itself (it landed after the domain's check)
    refuses ``what`` just the same."""
    try:
        yield
    except BlockedWrite as exc:
        raise _blocked(other, what) from exc


def _without(notification: Notification, hides: Hides) -> Notification | None:
    """``notification`` without the actors ``hides`` hides (None when none is left)."""
    group = visible_group(notification.actors or (notification.actor,), notification.others, hides)
    if group is None:
        return None
    actors, others = group
    return dataclasses.replace(notification, actor=actors[0], actors=actors, others=others)


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
        before: str | None,
        limit: int,
        read: Callable[[str | None, int], Awaitable[Page[T]]],
        shown: Callable[[T], bool] | None = None,
    ) -> Page[T]:
        """A page of what ``read`` lists, without the items ``shown`` rejects: more of
        the listing is read (up to :data:`PAGE_READS` reads) to fill the page."""
        check_page(before, limit)
        items: list[T] = []
        cursor = before
        try:
            for _ in range(PAGE_READS):
                page = await read(cursor, limit - len(items))
                items += page.items if shown is None else filter(shown, page.items)
                cursor = page.next
                if cursor is None or len(items) >= limit:
                    break
        except CursorError as exc:
            raise DomainError(ErrorCode.BAD_REQUEST, "not a page cursor") from exc
        return Page(tuple(items), cursor)

    @staticmethod
    def _refuse_across(barriers: Barriers, other: str, what: str) -> None:
        """Refuse ``what`` (``blocked``) when a block stands between the actor and ``other``."""
        if other in barriers.blocked:
            raise _blocked(other, what)

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

        A new follow notifies the target. Refused (``blocked``) across a block.
        """
        await self._follow_target(actor, target)
        barriers = await self._store.barriers(actor, [target], self._clock())
        self._refuse_across(barriers, target, "a follow")
        with _refused_across_a_block(target, "a follow"):
            return await self._store.follow(actor, target, self._clock())

    async def unfollow(self, actor: str, target: str) -> Committed[bool]:
        """Stop following ``target`` (idempotent); value: whether a follow was removed."""
        await self._follow_target(actor, target)
        return await self._store.unfollow(actor, target)

    async def followers(
        self, user: str, before: str | None, limit: int, blocks: Hides = NOBODY
    ) -> Page[Profile]:
        """Who follows ``user``, most recent first, without those ``blocks`` hides."""
        await self._profile(user)
        return await self._page(
            before, limit, lambda b, n: self._store.followers_page(user, b, n),
            lambda profile: not blocks(profile.id),
        )  # fmt: skip

    async def following(
        self, user: str, before: str | None, limit: int, blocks: Hides = NOBODY
    ) -> Page[Profile]:
        """Whom ``user`` follows, most recent first, without those ``blocks`` hides."""
        await self._profile(user)
        return await self._page(
            before, limit, lambda b, n: self._store.following_page(user, b, n),
            lambda profile: not blocks(profile.id),
        )  # fmt: skip

    # -- blocks and mutes ----------------------------------------------------------------

    async def _relation_target(self, actor: str, target: str, what: str) -> None:
        if target == actor:
            raise DomainError(ErrorCode.CONFLICT, f"you cannot {what} yourself")
        await self._profile(target)

    async def block(self, actor: str, target: str) -> Committed[bool]:
        """Block ``target`` (idempotent): the follows between them end; value: whether
        newly blocked."""
        await self._relation_target(actor, target, "block")
        return await self._store.block(actor, target, self._clock())

    async def unblock(self, actor: str, target: str) -> Committed[bool]:
        """Lift a block (idempotent); value: whether there was one."""
        await self._relation_target(actor, target, "unblock")
        return await self._store.unblock(actor, target)

    async def mute(self, actor: str, target: str, until: int | None) -> Committed[bool]:
        """Mute ``target`` until ``until`` (ms; None: until unmuted), replacing an
        earlier mute's end; ``until`` must lie in the future."""
        await self._relation_target(actor, target, "mute")
        now = self._clock()
        if until is not None and until <= now:
            raise DomainError(ErrorCode.BAD_REQUEST, "'until' must be in the future")
        return await self._store.mute(actor, target, until, now)

    async def unmute(self, actor: str, target: str) -> Committed[bool]:
        """Lift a mute (idempotent); value: whether there was one."""
        await self._relation_target(actor, target, "unmute")
        return await self._store.unmute(actor, target)

    async def prune_mutes(self) -> int:
        """Delete the mutes that ran out; return how many."""
        return await self._store.prune_mutes(self._clock())

    async def relations_page(
        self, actor: str, kind: RelationKind, before: str | None, limit: int
    ) -> Page[Relation]:
        """Whom the actor blocked (or muted, mutes in effect), newest first."""
        now = self._clock()
        return await self._page(
            before, limit, lambda b, n: self._store.relations_page(actor, kind, now, b, n)
        )

    # -- posts ---------------------------------------------------------------------------

    async def create_post(self, actor: str, text: str, reply_to: int | None) -> Committed[Post]:
        """Post (or reply to ``reply_to``); parses hashtags and mentions.

        A reply joins its parent's thread and bumps the parent's reply count (a
        ``post.counts`` change). The parent's author is notified of a reply, mentioned
        users of the mention (once each; never the actor; unknown users are kept in the
        post's mentions but not notified). More than ``max_mentions`` distinct mentions
        are ``too_large``. A reply across a block is refused (``blocked``); nobody with a
        block with the actor, or who mutes them, is notified.
        """
        text = normalize_post_text(text)
        tags, mentions = parse_tags(text), self._mentions(text)
        parent = None if reply_to is None else await self._post(reply_to)
        root = None if parent is None else (parent.root or parent.id)
        candidates = [*mentions, *([] if parent is None else [parent.author])]
        barriers = await self._store.barriers(actor, candidates, self._clock())
        if parent is not None:
            self._refuse_across(barriers, parent.author, "a reply")
        notices: list[Notice] = []
        notified = {actor} | barriers.blocked | barriers.muting
        if parent is not None and parent.author not in notified:
            notified.add(parent.author)
            notices.append(Notice(parent.author, "reply"))
        for user in mentions:
            if user not in notified and await self._store.get_profile(user) is not None:
                notified.add(user)
                notices.append(Notice(user, "mention"))
        with _refused_across_a_block("the author", "a reply"):
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

        A new like notifies the author (not for a self-like, nor when the author mutes
        the actor). Refused (``blocked``) across a block. The counts change is left to
        :meth:`counts_change`, which the node calls coalesced.
        """
        post = await self._post(post_id)
        now = self._clock()
        barriers = await self._store.barriers(actor, [post.author], now)
        self._refuse_across(barriers, post.author, "a like")
        quiet = post.author == actor or post.author in barriers.muting
        with _refused_across_a_block(post.author, "a like"):
            return await self._store.like(actor, post_id, None if quiet else post.author, now)

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

    async def get_post(self, post_id: int, blocks: Hides = NOBODY) -> Post:
        """One post (not_found for a missing or deleted post, or one by a user
        ``blocks`` hides)."""
        post = await self._post(post_id)
        if blocks(post.author):
            raise DomainError(ErrorCode.NOT_FOUND, f"no post {post_id}")
        return post

    async def liked_among(self, actor: str, post_ids: Sequence[int]) -> set[int]:
        """Which of ``post_ids`` the actor likes."""
        return await self._store.liked_among(actor, post_ids)

    async def _posts_page(
        self,
        before: str | None,
        limit: int,
        read: Callable[[str | None, int], Awaitable[Page[Post]]],
        hides: Hides,
    ) -> Page[Post]:
        return await self._page(before, limit, read, lambda post: not hides(post.author))

    async def home_page(
        self, actor: str, before: str | None, limit: int, hides: Hides = NOBODY
    ) -> Page[Post]:
        """The actor's posts and their followees', newest first (``hides`` filters out
        the posts of blocked and muted users, here and in every page below)."""
        return await self._posts_page(before, limit, partial(self._store.home_page, actor), hides)

    async def user_page(
        self, user: str, before: str | None, limit: int, hides: Hides = NOBODY
    ) -> Page[Post]:
        """A user's posts, newest first (not_found for an unknown user; empty when the
        viewer does not see the user)."""
        await self._profile(user)
        if hides(user):
            check_page(before, limit)
            return Page((), None)
        return await self._page(before, limit, partial(self._store.user_page, user))

    async def public_page(
        self, before: str | None, limit: int, hides: Hides = NOBODY
    ) -> Page[Post]:
        """Everyone's posts, newest first."""
        return await self._posts_page(before, limit, self._store.public_page, hides)

    async def hashtag_page(
        self, tag: str, before: str | None, limit: int, hides: Hides = NOBODY
    ) -> Page[Post]:
        """Posts with ``tag``, newest first."""
        check_tag(tag)
        return await self._posts_page(before, limit, partial(self._store.hashtag_page, tag), hides)

    async def replies_page(
        self,
        post_id: int,
        before: str | None,
        limit: int,
        hides: Hides = NOBODY,
        blocks: Hides = NOBODY,
    ) -> Page[Post]:
        """Replies to a post, oldest first (not_found for a missing or deleted post, or
        one by a user ``blocks`` hides)."""
        await self.get_post(post_id, blocks)
        read = partial(self._store.replies_page, post_id)
        return await self._posts_page(before, limit, read, hides)

    # -- notifications ------------------------------------------------------

    async def notifications(
        self, actor: str, before: str | None, limit: int, hides: Hides = NOBODY
    ) -> tuple[Page[Notification], int]:
        """The actor's notifications, newest first, and their unread count. Users
        ``hides`` hides are taken out of each group; a group of no one else is left out."""
        page = await self._page(before, limit, partial(self._store.notifications_page, actor))
        shown = (_without(notification, hides) for notification in page.items)
        items = tuple(notification for notification in shown if notification is not None)
        return Page(items, page.next), await self._store.unread_count(actor)

    async def prune_notifications(self, max_age_ms: int, keep: int) -> int:
        """Remove the notification groups whose newest actor is older than ``max_age_ms``
        and all but the newest ``keep`` of each user; return how many were removed."""
        return await self._store.prune_notifications(self._clock() - max_age_ms, keep)

    async def mark_read(self, actor: str, up_to: int | None) -> int:
        """Mark notifications up to id ``up_to`` (all when None) read; return unread count."""
        return await self._store.mark_read(actor, up_to)
