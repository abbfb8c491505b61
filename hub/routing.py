"""Which live events a change becomes, and who should get each: one rule for live and resume.

A *route key* names a group of connections:

- ``f:<author>`` — connections of the author and of everyone following the author;
- ``u:<user>`` — the user's own connections;
- ``s:<stream>`` — connections subscribed to ``public``, ``tag:<tag>`` or ``thread:<id>``.

:func:`routes_for` turns a change into ``(keys, event)`` pairs. The live fan-out sends
each event to the union of the connections under its keys; a resuming session replays
an event when it holds any of its keys. Keeping both on this one function is what makes
a resumed stream identical to the live one.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.records import Change, Interest, PresenceChange
from protocol import Event, EventType

__all__ = [
    "Route",
    "follow_key",
    "interest_of",
    "presence_route",
    "routes_for",
    "stream_key",
    "user_key",
]

Route = tuple[tuple[str, ...], Event]
"""Route keys and the event the connections under them receive."""


def follow_key(author: str) -> str:
    """The key of connections that see ``author``'s posts in their home feed."""
    return "f:" + author


def user_key(user: str) -> str:
    """The key of ``user``'s own connections."""
    return "u:" + user


def stream_key(stream: str) -> str:
    """The key of connections subscribed to ``stream``."""
    return "s:" + stream


def interest_of(user: str, keys: Iterable[str]) -> Interest:
    """The change-log filter equivalent to a session of ``user`` holding route ``keys``.

    Resume narrows its log read with this, then keeps an event only when the session
    holds one of its keys: the keys are the single source of what a session hears.
    """
    authors, tags, threads, public = {user}, set(), set(), False
    for key in keys:
        if key.startswith("f:"):
            authors.add(key[2:])
        elif key == "s:public":
            public = True
        elif key.startswith("s:tag:"):
            tags.add(key[6:])
        elif key.startswith("s:thread:"):
            threads.add(int(key[9:]))
    return Interest(user, frozenset(authors), public, frozenset(tags), frozenset(threads))


def _post_streams(change: Change) -> Iterable[str]:
    yield "public"
    for tag in change.tags:
        yield "tag:" + tag
    for post in {change.root, change.reply_to}:
        if post is not None:
            yield f"thread:{post}"


def routes_for(change: Change) -> list[Route]:
    """The events ``change`` becomes and the route keys of each."""
    cursor = str(change.seq)
    if change.kind == "notification":
        assert change.recipient is not None
        return [((user_key(change.recipient),), Event(EventType.NOTIFICATION, cursor, change.data))]
    if change.kind == "post.created":
        routes: list[Route] = [
            ((follow_key(change.author),), Event(EventType.FEED_INSERT, cursor, change.data))
        ]
        for stream in _post_streams(change):
            data = {"stream": stream, "post": change.data}
            routes.append(((stream_key(stream),), Event(EventType.STREAM_INSERT, cursor, data)))
        return routes
    event_type = EventType.POST_DELETE if change.kind == "post.deleted" else EventType.POST_UPDATE
    keys = [follow_key(change.author), *map(stream_key, _post_streams(change))]
    if change.post is not None:
        keys.append(stream_key(f"thread:{change.post}"))
    return [(tuple(keys), Event(event_type, cursor, change.data))]


def presence_route(change: PresenceChange) -> Route:
    """The presence event for ``change``: to everyone following the user (not the user)."""
    data = {"user": change.user, "online": change.online}
    return (follow_key(change.user),), Event(EventType.PRESENCE, None, data)
