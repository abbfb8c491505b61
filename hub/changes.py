"""Builders of the changes the domain appends: one function per change kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.names import notes_log, posts_log
from hub.records import ChangeKind, NewChange, Notification, Post
from hub.wire import notification_to_wire, post_to_wire

__all__ = ["counts", "created", "deleted", "edited", "notified"]


def _about(
    post: Post, kind: ChangeKind, data: Mapping[str, Any], now: int, tags: tuple[str, ...]
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
    )


def created(post: Post, now: int) -> NewChange:
    """A new post: data is the full Post wire map."""
    return _about(post, ChangeKind.POST_CREATED, post_to_wire(post), now, post.tags)


def edited(old: Post, new: Post, now: int) -> NewChange:
    """An edit: the changed fields. Its tags are the old and the new ones, so that a tag
    stream that showed the post hears about the edit that removed the tag."""
    data = {
        "id": new.id,
        "text": new.text,
        "tags": list(new.tags),
        "mentions": list(new.mentions),
        "edited_at": new.edited_at,
    }
    tags = tuple(dict.fromkeys(old.tags + new.tags))
    return _about(new, ChangeKind.POST_EDITED, data, now, tags)


def deleted(post: Post, now: int) -> NewChange:
    """A deletion: data is ``{id}``."""
    return _about(post, ChangeKind.POST_DELETED, {"id": post.id}, now, post.tags)


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
