"""Text rules of the domain: post text, names and bios, #hashtags and @mentions.

A hashtag is ``#`` and 1-64 of ``[A-Za-z0-9_]``, lower-cased; a mention is ``@`` and 1-32
of the same characters, lower-cased. Either must stand on its own: not glued to a word
character or its own sign (``a@b`` is an e-mail, ``#a#b`` and ``@a@b`` are no tags or
mentions; ``#x1234…`` longer than the limit is not a truncated tag). Results are unique
and in order of first appearance.
"""

from __future__ import annotations

import re

from hub.social.errors import DomainError
from protocol import limits
from protocol.errors import ErrorCode

__all__ = [
    "check_bio",
    "check_name",
    "check_page",
    "check_tag",
    "check_user_id",
    "normalize_post_text",
    "parse_mentions",
    "parse_tags",
]

_WORD = "A-Za-z0-9_"
_TAG = re.compile(rf"(?<![{_WORD}#])#([{_WORD}]{{1,64}})(?![{_WORD}#])")
_MENTION = re.compile(rf"(?<![{_WORD}@])@([{_WORD}]{{1,32}})(?![{_WORD}@])")


def _unique_lower(pattern: re.Pattern[str], text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(match.lower() for match in pattern.findall(text)))


def parse_tags(text: str) -> tuple[str, ...]:
    """The hashtags of ``text``, lower-cased, unique, in order."""
    return _unique_lower(_TAG, text)


def parse_mentions(text: str) -> tuple[str, ...]:
    """The user ids mentioned in ``text``, lower-cased, unique, in order."""
    return _unique_lower(_MENTION, text)


def _check_length(what: str, text: str, most: int) -> None:
    if len(text) > most:
        raise DomainError(ErrorCode.TOO_LARGE, f"{what} is longer than {most} characters")


def normalize_post_text(text: str) -> str:
    """The post text stripped of surrounding white space; 1..500 code points."""
    text = text.strip()
    if not text:
        raise DomainError(ErrorCode.BAD_REQUEST, "post text is empty")
    _check_length("post text", text, limits.MAX_POST_CHARS)
    return text


def check_name(name: str) -> str:
    """A display name: at most 50 code points."""
    _check_length("name", name, limits.MAX_NAME_CHARS)
    return name


def check_bio(bio: str) -> str:
    """A bio: at most 300 code points."""
    _check_length("bio", bio, limits.MAX_BIO_CHARS)
    return bio


def check_user_id(user: str) -> str:
    """A user id (handle) of the documented format."""
    if not limits.USER_ID_RE.fullmatch(user):
        raise DomainError(ErrorCode.BAD_REQUEST, f"not a user id: {user!r}")
    return user


def check_tag(tag: str) -> str:
    """A hashtag without ``#``, already lower-case."""
    if not limits.TAG_RE.fullmatch(tag):
        raise DomainError(ErrorCode.BAD_REQUEST, f"not a tag: {tag!r}")
    return tag


def check_page(before: str | None, limit: int) -> None:
    """Validate page arguments: a cursor of the documented format and 1..100 items."""
    if before is not None and not limits.CURSOR_RE.fullmatch(before):
        raise DomainError(ErrorCode.BAD_REQUEST, "not a page cursor")
    if not 1 <= limit <= limits.MAX_PAGE_LIMIT:
        raise DomainError(ErrorCode.BAD_REQUEST, f"limit must be 1..{limits.MAX_PAGE_LIMIT}")
