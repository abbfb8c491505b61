"""Text rules of the domain: post text, names and bios, #hashtags and @mentions.

A hashtag is ``#`` and 1-64 of ``[A-Za-z0-9_]``, lower-cased; a mention is ``@`` and 1-32
of the same characters, lower-cased. Either must stand on its own: not glued to a word
character or its own sign (``a@b`` is an e-mail, ``#a#b`` and ``@a@b`` are no tags or
mentions; ``#x1234…`` longer than the limit is not a truncated tag). Results are unique
and in order of first appearance.

Post text must show something: text made only of white space, control and format
characters (zero-width spaces and joiners, bidi controls, U+FEFF...), combining marks
with nothing to combine with, or the blank letters of :data:`BLANK_LETTERS` is refused
like an empty post.
"""

from __future__ import annotations

import re
import unicodedata

from hub.social.errors import DomainError
from protocol import limits
from protocol.errors import ErrorCode

__all__ = [
    "BLANK_LETTERS",
    "INVISIBLE_CATEGORIES",
    "check_bio",
    "check_name",
    "check_page",
    "check_tag",
    "check_user_id",
    "has_visible_character",
    "normalize_post_text",
    "parse_mentions",
    "parse_tags",
]

_WORD = "A-Za-z0-9_"
_TAG = re.compile(rf"(?<![{_WORD}#])#([{_WORD}]{{1,64}})(?![{_WORD}#])")
_MENTION = re.compile(rf"(?<![{_WORD}@])@([{_WORD}]{{1,32}})(?![{_WORD}@])")


INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})
"""Unicode general categories that show nothing on their own: controls, format
characters (U+200B, U+200D, U+2060, U+FEFF, U+180E, bidi controls, tags), surrogates,
separators (spaces, line and paragraph separators) and combining marks. Unassigned and
private-use characters count as visible: a newer emoji is unassigned to an older Python."""

BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Characters of visible categories that fonts draw blank: the Hangul fillers and the
blank Braille pattern, common tricks for a post that looks empty."""


def has_visible_character(text: str) -> bool:
    """Whether ``text`` has a character that shows something (see the module docstring)."""
    return any(
        unicodedata.category(char) not in INVISIBLE_CATEGORIES and char not in BLANK_LETTERS
        for char in text
    )


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
    """The post text stripped of surrounding white space; 1..500 code points, at least
    one of them visible (:func:`has_visible_character`)."""
    text = text.strip()
    if not text:
        raise DomainError(ErrorCode.BAD_REQUEST, "post text is empty")
    if not has_visible_character(text):
        raise DomainError(ErrorCode.BAD_REQUEST, "post text has no visible character")
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
