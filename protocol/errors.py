"""Error codes, WebSocket close codes and the one exception family decoders raise.

Every failure a peer can cause is reported with an :class:`ErrorCode` in an error
reply, or, when the connection must end, with a :class:`CloseCode`. Close codes
4000-4499 mean "reconnect (with backoff) and resume from your last cursor";
4500-4999 mean "do not reconnect until the cause is fixed" (for example a new token).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["CloseCode", "ErrorCode", "ProtocolError"]


class ErrorCode(StrEnum):
    """The ``code`` of an error reply; clients switch on these strings."""

    BAD_REQUEST = "bad_request"
    """The request is malformed: wrong types, missing or invalid arguments, undecodable bytes."""
    UNAUTHORIZED = "unauthorized"
    """No valid authentication: the token is missing, forged or expired."""
    FORBIDDEN = "forbidden"
    """Authenticated, but not allowed: e.g. editing someone else's post."""
    NOT_FOUND = "not_found"
    """The user, post or notification does not exist (or was deleted)."""
    RATE_LIMITED = "rate_limited"
    """Too many requests; retry after ``retry_after`` seconds."""
    TOO_LARGE = "too_large"
    """A value or a frame is over its documented limit."""
    CONFLICT = "conflict"
    """The request contradicts the current state, e.g. following oneself."""
    UNKNOWN_OP = "unknown_op"
    """The operation name is not known to this hub; the connection stays open."""
    UNAVAILABLE = "unavailable"
    """The hub cannot serve this right now (its backend is down); retry later."""
    INTERNAL = "internal"
    """A bug in the hub; the request may or may not have taken effect."""
    BLOCKED = "blocked"
    """A block between the two users forbids this (follow, reply, like, message)."""


class CloseCode(IntEnum):
    """WebSocket close codes the hub uses, with whether a client should come back."""

    DRAINING = 4000
    """The node is shutting down: reconnect (to any node) and resume."""
    SLOW = 4001
    """The client read too slowly and its outbox overflowed: reconnect and resume."""
    INTERNAL = 4002
    """The node hit an internal error on this connection: reconnect and resume."""
    AUTH_TIMEOUT = 4003
    """No ``auth`` request arrived in time: reconnect and authenticate promptly."""
    TOO_MANY_CONNECTIONS = 4004
    """The user already holds the maximum number of connections: close one, or
    reconnect later with backoff."""
    UNAUTHORIZED = 4500
    """The token was rejected or expired: get a new token before reconnecting."""
    PROTOCOL_ERROR = 4501
    """Too many undecodable frames: fix the client before reconnecting."""
    FLOOD = 4502
    """Kept flooding after ``rate_limited`` replies: slow down before reconnecting."""

    @property
    def reconnect(self) -> bool:
        """Whether a client should reconnect (with backoff) and resume after this code."""
        return 4000 <= self.value <= 4499


class ProtocolError(Exception):
    """The only exception protocol decoders and validators raise.

    ``code`` is the error code to put in the reply, ``message`` a readable sentence,
    ``request_id`` the id of the offending request when it could be read (so the
    reply can name it), ``op`` its operation name when that could be read too,
    ``retry_after`` seconds for ``rate_limited``.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        request_id: int | None = None,
        retry_after: float | None = None,
        op: str | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        self.op = op
