"""Which live events a change becomes, and who should get each: one rule for live and resume.

Route keys (``hub.names``) name groups of connections: the followers of an author
(:class:`~hub.names.FollowersKey`), a user's own devices (:class:`~hub.names.DevicesKey`)
and the subscribers of a stream (:class:`~hub.names.StreamKey`).

:func:`routes_for` turns a change into ``(keys, event)`` pairs. The live fan-out sends
each event to the union of the connections under its keys; a resuming session replays
an event when it holds any of its keys. Keeping both on this one function is what makes
a resumed stream identical to the live one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hub.names import PUBLIC, DevicesKey, FollowersKey, RouteKey, Stream, StreamKey, StreamKind
from hub.records import Change, ChangeKind, Interest, PresenceChange
from protocol import Event, EventType

__all__ = ["Route", "interest_of", "presence_route", "route_keys", "routes_for"]

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


def _post_streams(change: Change) -> Iterator[Stream]:
    yield PUBLIC
    for tag in change.tags:
        yield Stream(StreamKind.TAG, tag=tag)
    for post in {change.root, change.reply_to}:
        if post is not None:
            yield Stream(StreamKind.THREAD, thread=post)


def routes_for(change: Change) -> list[Route]:
    """The events ``change`` becomes and the route keys of each."""
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
            data = {"stream": str(stream), "post": change.data}
            routes.append(((StreamKey(stream),), Event(EventType.STREAM_INSERT, cursor, data)))
        return routes
    deleted = change.kind == ChangeKind.POST_DELETED
    event_type = EventType.POST_DELETE if deleted else EventType.POST_UPDATE
    keys: list[RouteKey] = [FollowersKey(change.author)]
    keys += map(StreamKey, _post_streams(change))
    if change.post is not None:
        keys.append(StreamKey(Stream(StreamKind.THREAD, thread=change.post)))
    return [(tuple(keys), Event(event_type, cursor, change.data))]


def route_keys(change: Change) -> set[RouteKey]:
    """Every route key some event of ``change`` goes to (a shared bus's channels)."""
    return {key for keys, _ in routes_for(change) for key in keys}


def presence_route(change: PresenceChange) -> Route:
    """The presence event for ``change``: to everyone following the user (not the user)."""
    data = {"user": change.user, "online": change.online}
    return (FollowersKey(change.user),), Event(EventType.PRESENCE, None, data)
