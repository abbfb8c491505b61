"""The exceptions the SDK raises: one class per protocol error code, plus connection trouble.

Every error reply from the hub becomes a :class:`HubError` subclass carrying the
protocol's ``code`` (``except NotFound:``, or ``except HubError as e: e.code``);
``rate_limited`` becomes :class:`RateLimited` with ``retry_after`` seconds. Trouble on
the client's side of the wire is reported with :class:`ConnectionLost` (the connection
ended for good, or dropped while a request was in flight) and :class:`RequestTimeout`
(no answer, or no connection, within ``request_timeout``).
"""

from __future__ import annotations

from protocol import ErrorCode, ErrorReply

__all__ = [
    "BadRequest",
    "BadResponse",
    "Blocked",
    "Conflict",
    "ConnectionLost",
    "Forbidden",
    "HubError",
    "Internal",
    "NotFound",
    "RateLimited",
    "RequestTimeout",
    "SdkError",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UnknownOperation",
    "error_from_reply",
]


class SdkError(Exception):
    """Base of every exception this SDK raises."""


class HubError(SdkError):
    """The hub refused a request; ``code`` is the protocol's error code."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class BadRequest(HubError):
    """``bad_request``: the request was malformed or its arguments invalid."""

    code = ErrorCode.BAD_REQUEST


class Unauthorized(HubError):
    """``unauthorized``: the token was rejected or expired; get a new one."""

    code = ErrorCode.UNAUTHORIZED


class Forbidden(HubError):
    """``forbidden``: not allowed, e.g. editing someone else's post."""

    code = ErrorCode.FORBIDDEN


class NotFound(HubError):
    """``not_found``: the user, post or notification does not exist."""

    code = ErrorCode.NOT_FOUND


class RateLimited(HubError):
    """``rate_limited``: too many requests; retry after ``retry_after`` seconds."""

    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooLarge(HubError):
    """``too_large``: a value or frame is over its limit."""

    code = ErrorCode.TOO_LARGE


class Conflict(HubError):
    """``conflict``: the request contradicts the current state (e.g. following oneself)."""

    code = ErrorCode.CONFLICT


class UnknownOperation(HubError):
    """``unknown_op``: this hub does not know the operation."""

    code = ErrorCode.UNKNOWN_OP


class Unavailable(HubError):
    """``unavailable``: the hub's backend is down right now; retry later."""

    code = ErrorCode.UNAVAILABLE


class Blocked(HubError):
    """``blocked``: a block between this user and the other one (either way) forbids
    this follow, reply or like."""

    code = ErrorCode.BLOCKED


class Internal(HubError):
    """``internal`` (or a code newer than this SDK): a bug in the hub."""

    code = ErrorCode.INTERNAL


class ConnectionLost(SdkError):
    """The connection ended for good, or dropped while a non-repeatable request was in flight."""


class RequestTimeout(SdkError, TimeoutError):
    """No answer (or no connection to send on) within the request timeout."""


class BadResponse(SdkError):
    """The hub sent a result this SDK cannot read (a bug or an incompatible hub)."""


_BY_CODE: dict[ErrorCode, type[HubError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        TooLarge,
        Conflict,
        UnknownOperation,
        Unavailable,
        Blocked,
        Internal,
    )
}


def error_from_reply(reply: ErrorReply) -> HubError:
    """The exception that reports an error reply."""
    if reply.code is ErrorCode.RATE_LIMITED:
        return RateLimited(reply.message, reply.retry_after or 1.0)
    return _BY_CODE.get(reply.code, Internal)(reply.message)
