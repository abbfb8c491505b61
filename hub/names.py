"""Typed names, built and read in this one place: streams, route keys and change-log names.

A **stream** is what a client subscribes to by name (SPEC section 4): ``public``,
``tag:<tag>`` or ``thread:<post id>``; :meth:`Stream.parse` reads a name the protocol
layer already validated.

A **route key** names a group of connections on the live path:

- :class:`FollowersKey` (``f:<author>``) — connections of the author and of everyone
  following the author;
- :class:`DevicesKey` (``d:<user>``) — the user's own connections;
- :class:`StreamKey` (``s:<stream>``) — connections subscribed to a stream.

Their string forms name the pub/sub channels of a shared bus; they are never stored.

A **log name** names one change log: :class:`LogKind` ``POSTS`` (``u:<author>``, the
author's post changes) or ``NOTES`` (``n:<user>``, the user's notifications). Log names
are stored (SQLite rows, Redis stream keys), so their string forms never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DevicesKey",
    "FollowersKey",
    "LogKind",
    "LogName",
    "RouteKey",
    "Stream",
    "StreamKey",
    "StreamKind",
    "notes_log",
    "posts_log",
]


class StreamKind(StrEnum):
    """The kinds of stream a connection can subscribe to."""

    PUBLIC = "public"
    TAG = "tag"
    THREAD = "thread"


@dataclass(frozen=True, slots=True)
class Stream:
    """A subscribable stream: ``public``, a hashtag, or the thread of a post."""

    kind: StreamKind
    tag: str = ""
    thread: int = 0

    @classmethod
    def parse(cls, name: str) -> Stream:
        """The stream named ``name`` (already validated by the protocol layer)."""
        kind, _, arg = name.partition(":")
        if kind == StreamKind.TAG:
            return cls(StreamKind.TAG, tag=arg)
        if kind == StreamKind.THREAD:
            return cls(StreamKind.THREAD, thread=int(arg))
        if name != StreamKind.PUBLIC:
            raise ValueError(f"not a stream name: {name!r}")
        return PUBLIC

    def __str__(self) -> str:
        if self.kind == StreamKind.TAG:
            return f"tag:{self.tag}"
        if self.kind == StreamKind.THREAD:
            return f"thread:{self.thread}"
        return "public"


PUBLIC = Stream(StreamKind.PUBLIC)


@dataclass(frozen=True, slots=True)
class FollowersKey:
    """Connections that see ``author``'s posts in their home feed (the author's too)."""

    author: str

    def __str__(self) -> str:
        return f"f:{self.author}"


@dataclass(frozen=True, slots=True)
class DevicesKey:
    """The user's own connections."""

    user: str

    def __str__(self) -> str:
        return f"d:{self.user}"


@dataclass(frozen=True, slots=True)
class StreamKey:
    """Connections subscribed to ``stream``."""

    stream: Stream

    def __str__(self) -> str:
        return f"s:{self.stream}"


RouteKey = FollowersKey | DevicesKey | StreamKey
"""A group of connections an event is routed to."""


class LogKind(StrEnum):
    """The kinds of change log (the values are stored: never change them)."""

    POSTS = "u"
    NOTES = "n"


@dataclass(frozen=True, slots=True)
class LogName:
    """One change log: ``kind`` of ``owner`` (the author, or the notified user)."""

    kind: LogKind
    owner: str

    @classmethod
    def parse(cls, name: str) -> LogName:
        """The log named ``name`` (as stored with a change)."""
        kind, _, owner = name.partition(":")
        return cls(LogKind(kind), owner)

    def __str__(self) -> str:
        return f"{self.kind}:{self.owner}"


def posts_log(author: str) -> str:
    """The stored name of ``author``'s post log."""
    return str(LogName(LogKind.POSTS, author))


def notes_log(user: str) -> str:
    """The stored name of ``user``'s notification log."""
    return str(LogName(LogKind.NOTES, user))
