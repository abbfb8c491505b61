"""The four messages of the protocol, as immutable values.

A client sends :class:`Request` s; the hub answers each with a :class:`Reply`
or an :class:`ErrorReply` (``re`` names the request id) and pushes
:class:`Event` s at any time. Codecs (:mod:`protocol.codec`) turn these into
bytes and back; nothing here knows about bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from protocol.ops import Operation

__all__ = ["ErrorReply", "Event", "EventType", "Reply", "Request", "ServerMessage"]


@dataclass(frozen=True, slots=True)
class Request:
    """A client's request: ``id`` (0..2**53-1, chosen by the client) and the operation."""

    id: int
    op: Operation


@dataclass(frozen=True, slots=True)
class Reply:
    """The hub's successful answer to the request ``id``; ``result`` is a plain map."""

    id: int
    result: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """The hub's failure answer to request ``id`` (None when the id was unreadable).

    ``retry_after`` (seconds) is set only for ``rate_limited``.
    """

    id: int | None
    code: ErrorCode
    message: str
    retry_after: float | None = None

    @classmethod
    def from_error(cls, error: ProtocolError) -> ErrorReply:
        """The error reply that reports ``error`` (to its ``request_id``)."""
        return cls(error.request_id, error.code, error.message, error.retry_after)


class EventType(StrEnum):
    """The event types this version of the protocol defines (``ev`` on the wire)."""

    FEED_INSERT = "feed.insert"
    """A new post of a followee or of oneself; data is the Post."""
    STREAM_INSERT = "stream.insert"
    """A new post on a subscribed stream; data is ``{"stream", "post"}``."""
    POST_UPDATE = "post.update"
    """Changed fields of a post; data is ``{"id", ...changed fields}``."""
    POST_DELETE = "post.delete"
    """A post was deleted; data is ``{"id"}``."""
    NOTIFICATION = "notification"
    """A new notification; data is ``{"notification", "unread"}``."""
    PRESENCE = "presence"
    """A followee came online or went offline (ephemeral); data is ``{"user", "online"}``."""
    RESYNC = "resync"
    """Resume is impossible: reload state with fresh requests (ephemeral); ``{"reason"}``."""
    NOTICE = "notice"
    """A message from the hub, e.g. it is draining (ephemeral); ``{"kind", "message"}``."""
    RELATION = "relation"
    """One's block or mute of a user changed, on another of one's devices too (ephemeral);
    ``{"user", "blocked"}`` or ``{"user", "muted", "until"}``."""


@dataclass(frozen=True, slots=True)
class Event:
    """A push from the hub.

    ``type`` is an :class:`EventType` value, or any other string for event types
    newer than this client (which it should ignore). ``cursor`` is the cursor of
    the change the event comes from, None for ephemeral events.
    """

    type: str
    cursor: str | None
    data: Mapping[str, Any]


ServerMessage = Reply | ErrorReply | Event
"""Anything the hub sends: what :meth:`Codec.decode_server_frame` returns."""
