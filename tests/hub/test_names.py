"""Typed names: streams, route keys and log names read back what they write."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.names import (
    PUBLIC,
    DevicesKey,
    FollowersKey,
    LogKind,
    LogName,
    Stream,
    StreamKey,
    StreamKind,
    notes_log,
    posts_log,
)

users = st.from_regex(r"[a-z0-9_]{1,32}", fullmatch=True)


@given(st.sampled_from(["public", "tag:x"]) | st.integers(1, 2**53).map(lambda n: f"thread:{n}"))
def test_stream_names_round_trip(name: str) -> None:
    assert str(Stream.parse(name)) == name


def test_streams_are_typed_and_bad_names_refused() -> None:
    assert Stream.parse("public") is PUBLIC
    assert Stream.parse("tag:café") == Stream(StreamKind.TAG, tag="café")
    assert Stream.parse("thread:7") == Stream(StreamKind.THREAD, thread=7)
    with pytest.raises(ValueError, match="not a stream"):
        Stream.parse("private")


@given(users)
def test_route_keys_of_one_user_never_share_a_name(user: str) -> None:
    names = {str(FollowersKey(user)), str(DevicesKey(user)), str(StreamKey(PUBLIC))}
    assert len(names) == 3


@given(users)
def test_log_names_round_trip_and_differ_from_route_keys(user: str) -> None:
    assert LogName.parse(posts_log(user)) == LogName(LogKind.POSTS, user)
    assert LogName.parse(notes_log(user)) == LogName(LogKind.NOTES, user)
    route_names = {str(FollowersKey(user)), str(DevicesKey(user))}
    assert route_names.isdisjoint({posts_log(user), notes_log(user)})
