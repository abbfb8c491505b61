"""Which live events a change becomes, and who should get each: one rule for live and resume.

Route keys (``hub.names``) name groups of connections: the followers of an author
(:class:`~hub.names.FollowersKey`), a user's own devices (:class:`~hub.names.DevicesKey`)
and the subscribers of a stream (:class:`~hub.names.StreamKey`).

:func:`routes_for` turns a change into ``(keys, event)`` pairs. The live fan-out sends
each event to the union of the connections under its keys; a resuming session replays
an event when it holds any of its keys. Keeping both on this one function is what makes
a resumed stream identical to the live one, with one exception: an edit or a deletion
scrubs the post's earlier changes from the logs (deleted means gone), so a replay
restates the post at that change's cursor instead (:func:`replay_routes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Set
from typing import Any

from hub.names import PUBLIC, DevicesKey, FollowersKey, RouteKey, Stream, StreamKey, StreamKind
from hub.records import RESTATING, Change, ChangeKind, Interest, PresenceChange
from protocol import Event, EventType

__all__ = [
    "Route",
    "interest_of",
    "presence_route",
    "replay_routes",
    "route_keys",
    "routes_for",
]

Route = tuple[tuple[RouteKey, ...], Event]
"""Route keys and the event the connections under them receive."""


def interest_of(user: str, keys: Iterable[RouteKey]) -> Interest:
    """The change-log filter equivalent to a session of ``user`` holding route ``keys``.

    Resume narrows its log read with this, then keeps an event only when the session
    holds one of its keys: the keys are the single source of what a session hears.
    """
    authors, tags, threads, public = {user}, set(), set(), False
    for key in keys:
        match key:
            case FollowersKey(author=author):
                authors.add(author)
            case StreamKey(stream=Stream(kind=StreamKind.PUBLIC)):
                public = True
            case StreamKey(stream=Stream(kind=StreamKind.TAG, tag=tag)):
                tags.add(tag)
            case StreamKey(stream=Stream(kind=StreamKind.THREAD, thread=thread)):
                threads.add(thread)
    return Interest(user, frozenset(authors), public, frozenset(tags), frozenset(threads))


_EDIT_FIELDS = ("id", "text", "tags", "mentions", "edited_at")
"""What the live ``post.update`` of an edit carries (SPEC section 5.3)."""
_RESTATED_FIELDS = (*_EDIT_FIELDS, "likes", "replies")
"""What a replayed ``post.update`` of an edit carries: the counters too, since the
post's earlier ``post.counts`` changes went with the scrub."""


def _fields(data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``data`` cut down to ``names``, in that (canonical) order."""
    return {name: data[name] for name in names if name in data}


def _post_streams(change: Change) -> Iterator[Stream]:
    yield PUBLIC
    for tag in dict.fromkeys(change.tags + change.route_tags):
        yield Stream(StreamKind.TAG, tag=tag)
    for post in {change.root, change.reply_to}:
        if post is not None:
            yield Stream(StreamKind.THREAD, thread=post)


def routes_for(change: Change, restated: bool = False) -> list[Route]:
    """The events ``change`` becomes and the route keys of each (for a replay when
    ``restated``: an edit's ``post.update`` then carries the counters too)."""
    cursor = str(change.seq)
    if change.kind == ChangeKind.NOTIFICATION:
        assert change.recipient is not None
        event = Event(EventType.NOTIFICATION, cursor, change.data)
        return [((DevicesKey(change.recipient),), event)]
    if change.kind == ChangeKind.POST_CREATED:
        routes: list[Route] = [
            ((FollowersKey(change.author),), Event(EventType.FEED_INSERT, cursor, change.data))
        ]
        for stream in _post_streams(change):
            inserted = {"stream": str(stream), "post": change.data}
            event = Event(EventType.STREAM_INSERT, cursor, inserted)
            routes.append(((StreamKey(stream),), event))
        return routes
    deleted = change.kind == ChangeKind.POST_DELETED
    event_type = EventType.POST_DELETE if deleted else EventType.POST_UPDATE
    data: Mapping[str, Any] = change.data
    if change.kind == ChangeKind.POST_EDITED:
        data = _fields(data, _RESTATED_FIELDS if restated else _EDIT_FIELDS)
    keys: list[RouteKey] = [FollowersKey(change.author)]
    keys += map(StreamKey, _post_streams(change))
    if change.post is not None:
        keys.append(StreamKey(Stream(StreamKind.THREAD, thread=change.post)))
    return [(tuple(keys), Event(event_type, cursor, data))]


def replay_routes(change: Change, after: int, held: Set[RouteKey]) -> list[Route]:
    """The events a replay from ``after`` makes of ``change`` (read from a log) for a
    session holding ``held``.

    An edit or a deletion removed the post's earlier changes (with their text) from the
    logs and stands for them: for a client whose cursor lies before the post's creation
    (``origin``) an edit becomes the post's insertion events with its current text and
    a deletion nothing at all; otherwise they are the ``post.update`` (with the current
    counters) or ``post.delete``, also sent to every tag stream the session holds, since
    the tags an edit removed (a deletion: all of them) are not stored.
    """
    if change.kind not in RESTATING:
        return routes_for(change)
    fresh = change.origin is not None and after < change.origin
    if fresh and change.kind == ChangeKind.POST_EDITED and "author" in change.data:
        return routes_for(dataclasses.replace(change, kind=ChangeKind.POST_CREATED))
    if fresh:
        return []
    tag_keys = tuple(
        key for key in held if isinstance(key, StreamKey) and key.stream.kind is StreamKind.TAG
    )
    return [(keys + tag_keys, event) for keys, event in routes_for(change, restated=True)]


def route_keys(change: Change) -> set[RouteKey]:
    """Every route key some event of ``change`` goes to (a shared bus's channels)."""
    return {key for keys, _ in routes_for(change) for key in keys}


def presence_route(change: PresenceChange) -> Route:
    """The presence event for ``change``: to everyone following the user (not the user)."""
    data = {"user": change.user, "online": change.online}
    return (FollowersKey(change.user),), Event(EventType.PRESENCE, None, data)
