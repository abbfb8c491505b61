"""What each operation does on the node: call the domain, shape the wire result.

:meth:`Handlers.dispatch` returns the result map and the changes to publish; the
session acknowledges the client first and publishes after (DESIGN.md section 2).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hub.records import Change, Page, Post
from hub.social.wire import notification_to_wire, post_to_wire, profile_to_wire
from protocol import ops
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import MAX_SUBSCRIPTIONS

if TYPE_CHECKING:
    from hub.node import Node
    from hub.session import Session

__all__ = ["Handled", "Handlers"]

Handled = tuple[Mapping[str, Any], Sequence[Change]]
"""A result map for the reply and the changes to publish after it."""

NO_CHANGES: tuple[Change, ...] = ()


def _page(page: Page[Any], convert: Any) -> dict[str, Any]:
    return {"items": [convert(item) for item in page.items], "next": page.next}


class Handlers:
    """Dispatches decoded operations of one node."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._service = node.service

    async def dispatch(self, session: Session, op: ops.Operation) -> Handled:
        """Run ``op`` for ``session``; raise DomainError or ProtocolError on refusal."""
        service = self._service
        user = session.user
        match op:
            case ops.Auth(token=token, cursor=cursor, streams=streams):
                return await session.sign_in(token, cursor, streams or ()), NO_CHANGES
            case ops.Ping():
                return {"time": int(time.time() * 1000)}, NO_CHANGES
            case ops.GetProfile(user=target):
                return profile_to_wire(await service.get_profile(target)), NO_CHANGES
            case ops.UpdateProfile(name=name, bio=bio):
                profile = await service.update_profile(user, name, bio)
                return profile_to_wire(profile), NO_CHANGES
            case ops.Follow(user=target):
                outcome = await service.follow(user, target)
                self._node.refile_follow(user, target, following=True)
                return {"user": target, "following": True}, outcome.changes
            case ops.Unfollow(user=target):
                outcome = await service.unfollow(user, target)
                self._node.refile_follow(user, target, following=False)
                return {"user": target, "following": False}, outcome.changes
            case ops.Followers(user=target, before=before, limit=limit):
                page = await service.followers(target, before, limit)
                return _page(page, profile_to_wire), NO_CHANGES
            case ops.Following(user=target, before=before, limit=limit):
                page = await service.following(target, before, limit)
                return _page(page, profile_to_wire), NO_CHANGES
            case ops.CreatePost(text=text, reply_to=reply_to):
                created = await service.create_post(user, text, reply_to)
                return post_to_wire(created.value, liked=False), created.changes
            case ops.EditPost(post=post_id, text=text):
                edited = await service.edit_post(user, post_id, text)
                return (await self._posts(user, [edited.value]))[0], edited.changes
            case ops.DeletePost(post=post_id):
                deleted = await service.delete_post(user, post_id)
                return {"post": post_id, "deleted": True}, deleted.changes
            case ops.Like(post=post_id) | ops.Unlike(post=post_id):
                liking = isinstance(op, ops.Like)
                toggled = await (service.like if liking else service.unlike)(user, post_id)
                changed, likes = toggled.value
                if changed:
                    self._node.coalescer.touch(post_id)
                return {"post": post_id, "liked": liking, "likes": likes}, toggled.changes
            case _:
                return await self._read(session, op), NO_CHANGES

    async def _posts(self, viewer: str, posts: Sequence[Post]) -> list[dict[str, Any]]:
        """Wire maps of ``posts`` with ``liked`` as the viewer sees it."""
        liked = await self._service.liked_among(viewer, [post.id for post in posts])
        return [post_to_wire(post, post.id in liked) for post in posts]

    async def _post_page(self, viewer: str, page: Page[Post]) -> dict[str, Any]:
        """A page of posts on the wire, with ``liked`` as the viewer sees it."""
        return {"items": await self._posts(viewer, page.items), "next": page.next}

    async def _read(self, session: Session, op: ops.Operation) -> Mapping[str, Any]:
        service = self._service
        user = session.user
        match op:
            case ops.GetPost(post=post_id):
                return (await self._posts(user, [await service.get_post(post_id)]))[0]
            case ops.FeedHome(before=before, limit=limit):
                return await self._post_page(user, await service.home_page(user, before, limit))
            case ops.FeedUser(user=target, before=before, limit=limit):
                return await self._post_page(user, await service.user_page(target, before, limit))
            case ops.FeedPublic(before=before, limit=limit):
                return await self._post_page(user, await service.public_page(before, limit))
            case ops.FeedHashtag(tag=tag, before=before, limit=limit):
                return await self._post_page(user, await service.hashtag_page(tag, before, limit))
            case ops.FeedReplies(post=post_id, before=before, limit=limit):
                replies = await service.replies_page(post_id, before, limit)
                return await self._post_page(user, replies)
            case ops.Notifications(before=before, limit=limit):
                page, unread = await service.notifications(user, before, limit)
                return {**_page(page, notification_to_wire), "unread": unread}
            case ops.MarkRead(up_to=up_to):
                return {"unread": await service.mark_read(user, up_to)}
            case ops.Presence(users=users):
                online = await self._node.presence.online(list(users))
                return {"online": [u for u in users if u in online]}
            case ops.Subscribe(stream=stream):
                subscriptions = session.subscriptions
                if stream not in subscriptions:
                    if len(subscriptions) >= MAX_SUBSCRIPTIONS:
                        raise ProtocolError(
                            ErrorCode.TOO_LARGE,
                            f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection",
                        )
                    session.subscribe(stream)
                return {"stream": stream, "subscribed": True}
            case ops.Unsubscribe(stream=stream):
                session.unsubscribe(stream)
                return {"stream": stream, "subscribed": False}
            case ops.Resume(cursor=cursor):
                return await session.resume(cursor)
        raise ProtocolError(ErrorCode.UNKNOWN_OP, f"operation {op.NAME} is not served here")
