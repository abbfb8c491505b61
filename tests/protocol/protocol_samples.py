"""Sample messages (one request per operation, typical replies, errors and events)
and helpers to encode or decode any message, shared by the protocol tests and by
``regen_vectors.py`` (the golden vectors).
"""

from __future__ import annotations

from typing import Any

from protocol import Codec, ops
from protocol.errors import ErrorCode
from protocol.messages import ErrorReply, Event, EventType, Reply, Request, ServerMessage

Message = Request | ServerMessage


def encode(codec: Codec, message: Message) -> bytes:
    """``message`` encoded as one message by ``codec``."""
    if isinstance(message, Request):
        return codec.encode_request(message)
    if isinstance(message, Event):
        return codec.encode_event(message)
    return codec.encode_reply(message)


def decode(codec: Codec, frame: bytes) -> list[Message]:
    """Every message of a frame of valid requests, or else of a valid hub frame."""
    decoded = codec.decode_requests(frame)
    requests = [item for item in decoded if isinstance(item, Request)]
    if len(requests) == len(decoded):
        return list(requests)
    return list(codec.decode_server_frame(frame))


PROFILE: dict[str, Any] = {
    "id": "alice",
    "name": "Alice Liddell",
    "bio": "Curiouser and curiouser.",
    "followers": 2,
    "following": 1,
    "posts": 7,
    "created_at": 1732406400000,
}
POST: dict[str, Any] = {
    "id": 42,
    "author": "alice",
    "text": "Down the rabbit hole with @bob #wonderland",
    "created_at": 1732406460000,
    "edited_at": None,
    "reply_to": None,
    "root": None,
    "tags": ["wonderland"],
    "mentions": ["bob"],
    "likes": 0,
    "replies": 0,
}
NOTIFICATION: dict[str, Any] = {
    "id": 9,
    "kind": "like",
    "actor": "bob",
    "post": 42,
    "created_at": 1732406520000,
    "read": False,
    "actors": ["bob", "carol"],
    "others": 1,
}

REQUESTS: dict[str, Request] = {
    "auth": Request(1, ops.Auth("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl")),
    "auth.resume": Request(
        1,
        ops.Auth(
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
            cursor="1041",
            streams=("public", "tag:wonderland"),
        ),
    ),
    "profile.get": Request(2, ops.GetProfile("bob")),
    "profile.update": Request(3, ops.UpdateProfile(name="Alice L.", bio="Through the glass.")),
    "follow": Request(4, ops.Follow("bob")),
    "unfollow": Request(5, ops.Unfollow("bob")),
    "followers": Request(6, ops.Followers("alice", before="p:17", limit=50)),
    "following": Request(7, ops.Following("alice")),
    "post": Request(8, ops.CreatePost("Down the rabbit hole with @bob #wonderland")),
    "edit": Request(9, ops.EditPost(42, "Down the rabbit hole! #wonderland")),
    "delete": Request(10, ops.DeletePost(42)),
    "like": Request(11, ops.Like(42)),
    "unlike": Request(12, ops.Unlike(42)),
    "feed.home": Request(13, ops.FeedHome()),
    "feed.user": Request(14, ops.FeedUser("bob", limit=10)),
    "feed.public": Request(15, ops.FeedPublic(before="1024")),
    "feed.hashtag": Request(16, ops.FeedHashtag("wonderland")),
    "feed.replies": Request(17, ops.FeedReplies(42, limit=100)),
    "notifications": Request(18, ops.Notifications()),
    "notifications.read": Request(19, ops.MarkRead(up_to=9)),
    "presence": Request(20, ops.Presence(("bob", "carol"))),
    "subscribe": Request(21, ops.Subscribe("tag:wonderland")),
    "unsubscribe": Request(22, ops.Unsubscribe("thread:42")),
    "resume": Request(23, ops.Resume("1041")),
    "ping": Request(24, ops.Ping()),
    "post.get": Request(25, ops.GetPost(42)),
    "block": Request(26, ops.Block("mallory")),
    "unblock": Request(27, ops.Unblock("mallory")),
    "mute": Request(28, ops.Mute("bob", until=1732410000000)),
    "unmute": Request(29, ops.Unmute("bob")),
    "blocks": Request(31, ops.Blocks()),
    "mutes": Request(32, ops.Mutes(limit=50)),
}

REPLIES: dict[str, Reply] = {
    "auth": Reply(1, {"user": PROFILE, "cursor": "1040"}),
    "auth.resume": Reply(1, {"user": PROFILE, "replayed": 3, "cursor": "1044"}),
    "post": Reply(8, {**POST, "liked": False}),
    "follow": Reply(4, {"user": "bob", "following": True}),
    "feed.home": Reply(13, {"items": [{**POST, "liked": False}], "next": "p:42"}),
    "notifications": Reply(18, {"items": [NOTIFICATION], "next": None, "unread": 1}),
    "resume": Reply(23, {"replayed": 3, "cursor": "1044"}),
    "ping": Reply(24, {"time": 1732406580000}),
    "block": Reply(26, {"user": "mallory", "blocked": True}),
    "mute": Reply(28, {"user": "bob", "muted": True, "until": 1732410000000}),
    "mutes": Reply(32, {"items": [{"user": "bob", "until": 1732410000000}], "next": None}),
}

ERRORS: dict[str, ErrorReply] = {
    "bad_request": ErrorReply(8, ErrorCode.BAD_REQUEST, "'text' must not be blank"),
    "rate_limited": ErrorReply(8, ErrorCode.RATE_LIMITED, "too many requests", retry_after=1.5),
    "unknown_op": ErrorReply(30, ErrorCode.UNKNOWN_OP, "unknown operation 'poke'"),
    "no_id": ErrorReply(None, ErrorCode.BAD_REQUEST, "a request needs an 'id'"),
    "blocked": ErrorReply(
        4, ErrorCode.BLOCKED, "a block between you and 'mallory' forbids a follow"
    ),
}

EVENTS: dict[str, Event] = {
    "feed.insert": Event(EventType.FEED_INSERT, "1042", POST),
    "stream.insert": Event(
        EventType.STREAM_INSERT, "1042", {"stream": "tag:wonderland", "post": POST}
    ),
    "post.update": Event(EventType.POST_UPDATE, "1043", {"id": 42, "likes": 1, "replies": 0}),
    "post.delete": Event(EventType.POST_DELETE, "1045", {"id": 42}),
    "notification": Event(
        EventType.NOTIFICATION, "1044", {"notification": NOTIFICATION, "unread": 1}
    ),
    "presence": Event(EventType.PRESENCE, None, {"user": "bob", "online": True}),
    "resync": Event(EventType.RESYNC, None, {"reason": "cursor outside the retention window"}),
    "notice": Event(
        EventType.NOTICE, None, {"kind": "draining", "message": "node restarting; reconnect"}
    ),
    "relation": Event(EventType.RELATION, None, {"user": "mallory", "blocked": True}),
}
