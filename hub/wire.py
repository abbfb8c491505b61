"""Records as wire maps (protocol section "Records on the wire")."""

from __future__ import annotations

from typing import Any

from hub.records import Notification, Post, Profile, Relation

__all__ = ["notification_to_wire", "post_to_wire", "profile_to_wire", "relation_to_wire"]


def profile_to_wire(profile: Profile) -> dict[str, Any]:
    """The Profile wire map."""
    return {
        "id": profile.id,
        "name": profile.name,
        "bio": profile.bio,
        "followers": profile.followers,
        "following": profile.following,
        "posts": profile.posts,
        "created_at": profile.created_at,
    }


def post_to_wire(post: Post, liked: bool | None = None) -> dict[str, Any]:
    """The Post wire map (``deleted`` is not on the wire: deleted posts are not shown).

    ``liked`` (whether the viewer likes it) goes into replies and pages only: events
    carry the same bytes to every recipient, so they leave it out.
    """
    wire = {
        "id": post.id,
        "author": post.author,
        "text": post.text,
        "created_at": post.created_at,
        "edited_at": post.edited_at,
        "reply_to": post.reply_to,
        "root": post.root,
        "tags": list(post.tags),
        "mentions": list(post.mentions),
        "likes": post.likes,
        "replies": post.replies,
    }
    if liked is not None:
        wire["liked"] = liked
    return wire


def notification_to_wire(notification: Notification) -> dict[str, Any]:
    """The Notification wire map (the recipient is implied by the connection).

    ``actors`` (the newest actors, newest first) and ``others`` (how many actors
    besides ``actor``) describe the group (protocol section 1, Notification).
    """
    return {
        "id": notification.id,
        "kind": notification.kind,
        "actor": notification.actor,
        "post": notification.post,
        "created_at": notification.created_at,
        "read": notification.read,
        "actors": list(notification.actors or (notification.actor,)),
        "others": notification.others,
    }


def relation_to_wire(relation: Relation) -> dict[str, Any]:
    """A block or mute list entry: ``{user, until}`` (``until`` null for blocks and for
    mutes without an end)."""
    return {"user": relation.user, "until": relation.until}
