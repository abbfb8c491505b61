"""Readers that take one argument out of a request's ``args`` map and validate it.

Each reader either returns a clean, typed value or raises :class:`ProtocolError`:

* ``too_large`` when the value has the right type and format but is over a
  documented maximum (text length, list length, page size);
* ``bad_request`` for everything else: a missing argument, a wrong type (a bool
  or a float where an integer is expected, bytes where text is expected), a
  value outside its range or not matching its format.

Optional arguments treat an explicit ``null`` like an absent key. Text lengths
count Unicode code points. Extra keys in ``args`` are never looked at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from protocol import limits
from protocol.errors import ErrorCode, ProtocolError

__all__ = [
    "cursor",
    "optional_bio",
    "optional_cursor",
    "optional_name",
    "optional_post_id",
    "optional_streams",
    "optional_text",
    "page_limit",
    "post_id",
    "post_text",
    "stream",
    "tag",
    "token",
    "user_id",
    "user_ids",
    "wire_id",
]

Args = Mapping[str, object]
"""A request's ``args`` map, as decoded."""


def _bad(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message)


def _too_large(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.TOO_LARGE, message)


def _required(args: Args, key: str) -> object:
    value = args.get(key)
    if value is None:
        raise _bad(f"missing argument {key!r}")
    return value


def _string(value: object, key: str) -> str:
    if type(value) is not str:
        raise _bad(f"{key!r} must be a string")
    return value


def _formatted(value: object, key: str, pattern: re.Pattern[str], what: str) -> str:
    text = _string(value, key)
    if pattern.fullmatch(text) is None:
        raise _bad(f"{key!r} is not a valid {what}")
    return text


def wire_id(value: object, key: str, minimum: int = 1) -> int:
    """Validate an id: an integer (not a bool, not a float) in ``minimum``..MAX_ID.

    Post and notification ids start at 1; request ids may be 0.
    """
    if type(value) is not int:
        raise _bad(f"{key!r} must be an integer")
    if not minimum <= value <= limits.MAX_ID:
        raise _bad(f"{key!r} must be between {minimum} and {limits.MAX_ID}")
    return value


def user_id(args: Args, key: str = "user") -> str:
    """The required user id ``args[key]`` (``[a-z0-9_]{1,32}``)."""
    return _formatted(_required(args, key), key, limits.USER_ID_RE, "user id")


def user_ids(args: Args, key: str = "users") -> tuple[str, ...]:
    """The required list of 1..MAX_PRESENCE_USERS user ids ``args[key]``."""
    value = _required(args, key)
    if type(value) is not list:
        raise _bad(f"{key!r} must be a list of user ids")
    if not value:
        raise _bad(f"{key!r} must not be empty")
    if len(value) > limits.MAX_PRESENCE_USERS:
        raise _too_large(f"{key!r} holds more than {limits.MAX_PRESENCE_USERS} user ids")
    return tuple(_formatted(item, key, limits.USER_ID_RE, "user id") for item in value)


def post_id(args: Args, key: str = "post") -> int:
    """The required post (or notification) id ``args[key]``."""
    return wire_id(_required(args, key), key)


def optional_post_id(args: Args, key: str) -> int | None:
    """The optional post (or notification) id ``args[key]``, None when absent."""
    value = args.get(key)
    return None if value is None else wire_id(value, key)


def optional_timestamp(args: Args, key: str) -> int | None:
    """The optional timestamp ``args[key]`` (ms since the epoch, 1..MAX_ID), None when absent."""
    value = args.get(key)
    return None if value is None else wire_id(value, key)


def tag(args: Args, key: str = "tag") -> str:
    """The required hashtag ``args[key]`` without its ``#`` (``[a-z0-9_]{1,64}``)."""
    return _formatted(_required(args, key), key, limits.TAG_RE, "tag")


def _stream_name(value: object, key: str) -> str:
    name = _formatted(value, key, limits.STREAM_RE, "stream")
    if name.startswith("thread:") and int(name[7:]) > limits.MAX_ID:
        raise _bad(f"{key!r} names a post id over {limits.MAX_ID}")
    return name


def stream(args: Args, key: str = "stream") -> str:
    """The required stream name: ``public``, ``tag:<tag>`` or ``thread:<post id>``."""
    return _stream_name(_required(args, key), key)


def optional_streams(args: Args, key: str = "streams") -> tuple[str, ...] | None:
    """The optional list of at most MAX_SUBSCRIPTIONS distinct stream names ``args[key]``."""
    value = args.get(key)
    if value is None:
        return None
    if type(value) is not list:
        raise _bad(f"{key!r} must be a list of stream names")
    if len(value) > limits.MAX_SUBSCRIPTIONS:
        raise _too_large(f"{key!r} holds more than {limits.MAX_SUBSCRIPTIONS} streams")
    return tuple(dict.fromkeys(_stream_name(item, key) for item in value))


def cursor(args: Args, key: str = "cursor") -> str:
    """The required cursor ``args[key]`` (1-64 characters of ``[0-9A-Za-z._:-]``)."""
    return _formatted(_required(args, key), key, limits.CURSOR_RE, "cursor")


def optional_cursor(args: Args, key: str = "before") -> str | None:
    """The optional page cursor ``args[key]``, None when absent."""
    value = args.get(key)
    return None if value is None else _formatted(value, key, limits.CURSOR_RE, "cursor")


def page_limit(args: Args, key: str = "limit") -> int:
    """The page size ``args[key]``: 1..MAX_PAGE_LIMIT, DEFAULT_PAGE_LIMIT when absent."""
    value = args.get(key)
    if value is None:
        return limits.DEFAULT_PAGE_LIMIT
    if type(value) is not int:
        raise _bad(f"{key!r} must be an integer")
    if value < 1:
        raise _bad(f"{key!r} must be at least 1")
    if value > limits.MAX_PAGE_LIMIT:
        raise _too_large(f"{key!r} must be at most {limits.MAX_PAGE_LIMIT}")
    return value


def token(args: Args, key: str = "token") -> str:
    """The required authentication token: 1..MAX_TOKEN_CHARS characters."""
    text = _string(_required(args, key), key)
    if not text:
        raise _bad(f"{key!r} must not be empty")
    if len(text) > limits.MAX_TOKEN_CHARS:
        raise _too_large(f"{key!r} is longer than {limits.MAX_TOKEN_CHARS} characters")
    return text


def post_text(args: Args, key: str = "text") -> str:
    """The required post text: 1..MAX_POST_CHARS code points once stripped.

    The text is returned as sent; the domain strips it before storing.
    """
    text = _string(_required(args, key), key)
    length = len(text.strip())
    if length == 0:
        raise _bad(f"{key!r} must not be blank")
    if length > limits.MAX_POST_CHARS:
        raise _too_large(f"{key!r} is longer than {limits.MAX_POST_CHARS} characters")
    return text


def optional_text(args: Args, key: str, max_chars: int) -> str | None:
    """The optional text ``args[key]`` of at most ``max_chars`` code points (may be empty)."""
    value = args.get(key)
    if value is None:
        return None
    text = _string(value, key)
    if len(text) > max_chars:
        raise _too_large(f"{key!r} is longer than {max_chars} characters")
    return text


def optional_name(args: Args, key: str = "name") -> str | None:
    """The optional display name ``args[key]`` (at most MAX_NAME_CHARS code points)."""
    return optional_text(args, key, limits.MAX_NAME_CHARS)


def optional_bio(args: Args, key: str = "bio") -> str | None:
    """The optional profile bio ``args[key]`` (at most MAX_BIO_CHARS code points)."""
    return optional_text(args, key, limits.MAX_BIO_CHARS)
