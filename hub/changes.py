"""Builders of the changes the domain appends: one function per change kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.names import notes_log, posts_log
from hub.records import ChangeKind, NewChange, Notification, Post
from hub.wire import notification_to_wire, post_to_wire

__all__ = ["counts", "created", "deleted", "edited", "notified"]


def _about(  # noqa: PLR0917 - every field of a post change
    post: Post,
    kind: ChangeKind,
    data: Mapping[str, Any],
    now: int,
    tags: tuple[str, ...],
    origin: int | None = None,
    route_tags: tuple[str, ...] = (),
) -> NewChange:
    """A change of ``post``, in its author's log."""
    return NewChange(
        log=posts_log(post.author),
        kind=kind,
        created_at=now,
        author=post.author,
        post=post.id,
        root=post.root,
        reply_to=post.reply_to,
        tags=tags,
        recipient=None,
        data=data,
        origin=origin,
        route_tags=route_tags,
    )


def created(post: Post, now: int) -> NewChange:
    """A new post: data is the full Post wire map."""
    return _about(post, ChangeKind.POST_CREATED, post_to_wire(post), now, post.tags)


def edited(old: Post, new: Post, now: int, origin: int | None) -> NewChange:
    """An edit: data is the whole post after it (with its counters), ``origin`` the
    sequence of its creation (None when unknown). The edit scrubs the post's earlier
    changes, so it carries what a replay needs to show the post from scratch.

    Only the new tags are stored; the removed ones route the live event alone
    (``route_tags``), so that a tag stream that showed the post hears about the edit
    that removed the tag, while no stored change keeps the old tag."""
    removed = tuple(tag for tag in old.tags if tag not in new.tags)
    data = post_to_wire(new)
    return _about(new, ChangeKind.POST_EDITED, data, now, new.tags, origin, removed)


def deleted(post: Post, now: int, origin: int | None) -> NewChange:
    """A deletion: data is ``{id}``; no tag is stored (they route the live event only)."""
    data = {"id": post.id}
    return _about(post, ChangeKind.POST_DELETED, data, now, (), origin, post.tags)


def counts(post: Post, now: int) -> NewChange:
    """Current like and reply counters of a post."""
    data = {"id": post.id, "likes": post.likes, "replies": post.replies}
    return _about(post, ChangeKind.POST_COUNTS, data, now, post.tags)


def notified(notification: Notification, unread: int, now: int) -> NewChange:
    """A notification for its recipient, with the unread count after it."""
    return NewChange(
        log=notes_log(notification.user),
        kind=ChangeKind.NOTIFICATION,
        created_at=now,
        author=notification.actor,
        post=notification.post,
        root=None,
        reply_to=None,
        tags=(),
        recipient=notification.user,
        data={"notification": notification_to_wire(notification), "unread": unread},
    )
