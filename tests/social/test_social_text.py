"""Text rules: hashtag and mention parsing, post text and profile limits."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hub.social.errors import DomainError
from hub.social.text import (
    check_bio,
    check_name,
    check_page,
    has_visible_character,
    normalize_post_text,
    parse_mentions,
    parse_tags,
)
from protocol import limits
from protocol.errors import ErrorCode

# text made mostly of the characters that matter, so that tags and mentions do occur
texty = st.text(alphabet=st.sampled_from("#@aZ9_ .,é\n"), max_size=200) | st.text(max_size=200)


@pytest.mark.parametrize(
    ("text", "tags", "mentions"),
    [
        ("hello #World and #world again #py3", ("world", "py3"), ()),
        ("@Ann and @bob, @ann!", (), ("ann", "bob")),
        ("mail a@b.com or #a#b", (), ()),
        ("##double @@double @a@b", (), ()),
        ("#" + "x" * 64 + " #" + "y" * 65, ("x" * 64,), ()),
        ("@" + "u" * 32 + " @" + "v" * 33, (), ("u" * 32,)),
        ("(#tag) [@user]", ("tag",), ("user",)),
    ],
)
def test_parse_examples(text: str, tags: tuple[str, ...], mentions: tuple[str, ...]) -> None:
    assert parse_tags(text) == tags
    assert parse_mentions(text) == mentions


@given(texty)
def test_parsed_tags_are_valid_unique_and_present(text: str) -> None:
    tags = parse_tags(text)
    assert len(set(tags)) == len(tags)
    for tag in tags:
        assert limits.TAG_RE.fullmatch(tag)
        assert "#" + tag in text.lower()


@given(texty)
def test_parsed_mentions_are_valid_unique_and_present(text: str) -> None:
    mentions = parse_mentions(text)
    assert len(set(mentions)) == len(mentions)
    for user in mentions:
        assert limits.USER_ID_RE.fullmatch(user)
        assert "@" + user in text.lower()


@given(st.text(max_size=600))
def test_post_text_is_stripped_and_bounded_or_refused(text: str) -> None:
    try:
        normalized = normalize_post_text(text)
    except DomainError as error:
        visible = has_visible_character(text.strip())
        assert error.code == (ErrorCode.TOO_LARGE if visible else ErrorCode.BAD_REQUEST)
    else:
        assert normalized == text.strip() and 1 <= len(normalized) <= limits.MAX_POST_CHARS
        assert has_visible_character(normalized)


INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u180e\u202e\u2066\u00ad\u034f\ufe0f\u3164\u2800"
"""Zero-width characters and joiners, word joiner, BOM, Mongolian vowel separator, bidi
controls, soft hyphen, grapheme joiner, variation selector, Hangul filler, blank Braille."""

invisible_text = st.text(
    alphabet=st.sampled_from(INVISIBLE)
    | st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"]),
    min_size=1,
    max_size=100,
)


@given(invisible_text)
def test_a_post_of_invisible_characters_is_refused_like_a_blank_one(text: str) -> None:
    with pytest.raises(DomainError) as raised:
        normalize_post_text(text)
    assert raised.value.code == ErrorCode.BAD_REQUEST


@given(invisible_text, st.characters(categories=["L", "N", "P", "S"]), invisible_text)
def test_one_visible_character_among_invisible_ones_makes_a_post(
    before: str, visible: str, after: str
) -> None:
    assume(visible not in INVISIBLE)  # the blank letters are letters too
    text = before + visible + after
    if len(text.strip()) <= limits.MAX_POST_CHARS:
        assert visible in normalize_post_text(text)


def test_post_text_limit_counts_code_points() -> None:
    assert normalize_post_text("  " + "é" * 500 + "\n") == "é" * 500
    with pytest.raises(DomainError) as raised:
        normalize_post_text("😀" * 501)
    assert raised.value.code == ErrorCode.TOO_LARGE


def test_name_and_bio_limits() -> None:
    assert check_name("x" * 50) == "x" * 50 and check_bio("") == ""
    for check, text in ((check_name, "x" * 51), (check_bio, "x" * 301)):
        with pytest.raises(DomainError) as raised:
            check(text)
        assert raised.value.code == ErrorCode.TOO_LARGE


@pytest.mark.parametrize(("before", "limit"), [("bad cursor", 10), (None, 0), (None, 101)])
def test_bad_page_arguments(before: str | None, limit: int) -> None:
    with pytest.raises(DomainError) as raised:
        check_page(before, limit)
    assert raised.value.code == ErrorCode.BAD_REQUEST
