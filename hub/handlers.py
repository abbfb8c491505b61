"""What each operation does on the node: call the domain, shape the wire result.

:meth:`Handlers.dispatch` returns the result map of the reply. A write's changes were
committed and published by the store itself (``hub.backends.base``: one write, one
commit); the live events reach the sessions through the bus.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from hub.records import Page, Post, RelationKind
from hub.shield import NO_SHIELD, Shield
from hub.social import DomainError, SocialService
from hub.wire import notification_to_wire, post_to_wire, profile_to_wire, relation_to_wire
from protocol import ops
from protocol.errors import ErrorCode, ProtocolError

__all__ = ["Handlers"]


def _page(page: Page[Any], convert: Any) -> dict[str, Any]:
    return {"items": [convert(item) for item in page.items], "next": page.next}


def _seen(shield: Shield, user: str) -> str:
    """``user``, unless a block (either way) stands between them and the shield's user:
    then the user is ``not_found`` (profiles, follow lists and posts of the other side of
    a block are hidden; a mute hides posts and notifications only)."""
    if shield.blocks(user):
        raise DomainError(ErrorCode.NOT_FOUND, f"no user {user!r}")
    return user


class Handlers:
    """Runs the domain operations of one node for a signed-in user.

    Session operations (``auth``, ``ping``, ``subscribe``, ``unsubscribe``, ``resume``)
    belong to the session itself; everything here takes ``(user, op)`` and calls only the
    domain (and, for likes, the node's counts coalescer; for ``presence``, the presence
    announcer; for a ``follow`` that is not new, ``follow_not_new``, which gives the
    user's follow token back: only new follows count against the hourly limit).
    """

    def __init__(
        self,
        service: SocialService,
        touch_counts: Callable[[int], None],
        online: Callable[[list[str]], Awaitable[set[str]]],
        follow_not_new: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._service = service
        self._touch_counts = touch_counts
        self._online = online
        self._follow_not_new = follow_not_new

    async def dispatch(
        self, user: str, op: ops.Operation, shield: Shield = NO_SHIELD
    ) -> Mapping[str, Any]:
        """Run ``op`` for ``user``, whose blocks and mutes ``shield`` holds; raise
        DomainError or ProtocolError on refusal."""
        service = self._service
        match op:
            case ops.GetProfile(user=target):
                return profile_to_wire(await service.get_profile(_seen(shield, target)))
            case ops.UpdateProfile(name=name, bio=bio):
                profile = await service.update_profile(user, name, bio)
                return profile_to_wire(profile)
            case ops.Follow(user=target):
                await self._follow(user, target)
                return {"user": target, "following": True}
            case ops.Unfollow(user=target):
                await service.unfollow(user, target)
                return {"user": target, "following": False}
            case ops.Followers(user=target, before=before, limit=limit):
                page = await service.followers(_seen(shield, target), before, limit, shield.blocks)
                return _page(page, profile_to_wire)
            case ops.Following(user=target, before=before, limit=limit):
                page = await service.following(_seen(shield, target), before, limit, shield.blocks)
                return _page(page, profile_to_wire)
            case ops.CreatePost(text=text, reply_to=reply_to):
                created = await service.create_post(user, text, reply_to)
                return post_to_wire(created.value, liked=False)
            case ops.EditPost(post=post_id, text=text):
                edited = await service.edit_post(user, post_id, text)
                return (await self._posts(user, [edited.value]))[0]
            case ops.DeletePost(post=post_id):
                await service.delete_post(user, post_id)
                return {"post": post_id, "deleted": True}
            case ops.Like(post=post_id) | ops.Unlike(post=post_id):
                liking = isinstance(op, ops.Like)
                toggled = await (service.like if liking else service.unlike)(user, post_id)
                changed, likes = toggled.value
                if changed:
                    self._touch_counts(post_id)
                return {"post": post_id, "liked": liking, "likes": likes}
            case _:
                return await self._relate(user, op) or await self._read(user, op, shield)

    async def _relate(self, user: str, op: ops.Operation) -> Mapping[str, Any] | None:
        """Block and mute operations (None for any other operation)."""
        service = self._service
        match op:
            case ops.Block(user=target):
                await service.block(user, target)
                return {"user": target, "blocked": True}
            case ops.Unblock(user=target):
                await service.unblock(user, target)
                return {"user": target, "blocked": False}
            case ops.Mute(user=target, until=until):
                await service.mute(user, target, until)
                return {"user": target, "muted": True, "until": until}
            case ops.Unmute(user=target):
                await service.unmute(user, target)
                return {"user": target, "muted": False}
            case ops.Blocks(before=before, limit=limit) | ops.Mutes(before=before, limit=limit):
                kind = RelationKind.BLOCK if isinstance(op, ops.Blocks) else RelationKind.MUTE
                page = await service.relations_page(user, kind, before, limit)
                return _page(page, relation_to_wire)
        return None

    async def _follow(self, user: str, target: str) -> None:
        """Follow; a follow refused or already made gives its follow token back."""
        new = False
        try:
            new = (await self._service.follow(user, target)).value
        finally:
            if not new and self._follow_not_new is not None:
                await self._follow_not_new(user)

    async def _posts(self, viewer: str, posts: Sequence[Post]) -> list[dict[str, Any]]:
        """Wire maps of ``posts`` with ``liked`` as the viewer sees it."""
        liked = await self._service.liked_among(viewer, [post.id for post in posts])
        return [post_to_wire(post, post.id in liked) for post in posts]

    async def _post_page(self, viewer: str, page: Page[Post]) -> dict[str, Any]:
        """A page of posts on the wire, with ``liked`` as the viewer sees it."""
        return {"items": await self._posts(viewer, page.items), "next": page.next}

    async def _read(self, user: str, op: ops.Operation, shield: Shield) -> Mapping[str, Any]:
        service = self._service
        hides = shield.hides
        match op:
            case ops.GetPost(post=post_id):
                post = await service.get_post(post_id, shield.blocks)
                return (await self._posts(user, [post]))[0]
            case ops.FeedHome(before=before, limit=limit):
                page = await service.home_page(user, before, limit, hides)
                return await self._post_page(user, page)
            case ops.FeedUser(user=target, before=before, limit=limit):
                page = await service.user_page(_seen(shield, target), before, limit, hides)
                return await self._post_page(user, page)
            case ops.FeedPublic(before=before, limit=limit):
                page = await service.public_page(before, limit, hides)
                return await self._post_page(user, page)
            case ops.FeedHashtag(tag=tag, before=before, limit=limit):
                page = await service.hashtag_page(tag, before, limit, hides)
                return await self._post_page(user, page)
            case ops.FeedReplies(post=post_id, before=before, limit=limit):
                page = await service.replies_page(post_id, before, limit, hides, shield.blocks)
                return await self._post_page(user, page)
            case ops.Notifications(before=before, limit=limit):
                notes, unread = await service.notifications(user, before, limit, hides)
                return {**_page(notes, notification_to_wire), "unread": unread}
            case ops.MarkRead(up_to=up_to):
                return {"unread": await service.mark_read(user, up_to)}
            case ops.Presence(users=users):
                blocks = shield.blocks
                online = await self._online([u for u in users if not blocks(u)])
                return {"online": [u for u in users if u in online]}
        raise ProtocolError(ErrorCode.UNKNOWN_OP, f"operation {op.NAME} is not served here")
