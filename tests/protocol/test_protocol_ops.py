"""Argument validation of every operation: types, ranges, formats and limits."""

from __future__ import annotations

import pytest

from protocol import ops
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import (
    DEFAULT_PAGE_LIMIT,
    MAX_BIO_CHARS,
    MAX_ID,
    MAX_NAME_CHARS,
    MAX_POST_CHARS,
    MAX_PRESENCE_USERS,
    MAX_TOKEN_CHARS,
)
from tests.protocol.protocol_samples import REQUESTS

BAD = ErrorCode.BAD_REQUEST
LARGE = ErrorCode.TOO_LARGE


def test_registry_names_every_operation_once() -> None:
    assert set(ops.OPERATIONS) == {request.op.NAME for request in REQUESTS.values()}
    for name, operation in ops.OPERATIONS.items():
        assert name == operation.NAME
        assert operation.__doc__


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_from_args_inverts_to_args(name: str) -> None:
    operation = REQUESTS[name].op
    assert type(operation).from_args(operation.to_args()) == operation


def test_to_args_omits_absent_optionals() -> None:
    assert ops.CreatePost("hi").to_args() == {"text": "hi"}
    assert ops.UpdateProfile(bio="").to_args() == {"bio": ""}
    assert ops.FeedHome().to_args() == {"limit": DEFAULT_PAGE_LIMIT}
    assert ops.MarkRead().to_args() == {}
    assert ops.Presence(("a", "b")).to_args() == {"users": ["a", "b"]}


def test_defaults_and_nulls() -> None:
    assert ops.FeedPublic.from_args({}) == ops.FeedPublic(None, DEFAULT_PAGE_LIMIT)
    assert ops.FeedPublic.from_args({"before": None, "limit": None}) == ops.FeedPublic()
    assert ops.UpdateProfile.from_args({"name": None}) == ops.UpdateProfile()
    assert ops.CreatePost.from_args({"text": "x", "reply_to": None}) == ops.CreatePost("x")


def test_unknown_arguments_are_ignored() -> None:
    assert ops.Follow.from_args({"user": "bob", "later": [1, {"x": 2}]}) == ops.Follow("bob")


def test_text_lengths_count_code_points_after_strip() -> None:
    emoji = "\U0001f600" * MAX_POST_CHARS  # 4 UTF-8 bytes each, one code point each
    assert ops.CreatePost.from_args({"text": emoji}).text == emoji
    padded = "  " + "a" * MAX_POST_CHARS + "\n"
    assert ops.CreatePost.from_args({"text": padded}).text == padded
    assert ops.UpdateProfile.from_args({"name": "é" * MAX_NAME_CHARS}).name == "é" * MAX_NAME_CHARS


def test_extreme_valid_values() -> None:
    assert ops.Like.from_args({"post": MAX_ID}) == ops.Like(MAX_ID)
    assert ops.FeedHome.from_args({"limit": 1}).limit == 1
    assert ops.FeedHome.from_args({"limit": 100}).limit == 100
    assert ops.Subscribe.from_args({"stream": f"thread:{MAX_ID}"}).stream == f"thread:{MAX_ID}"
    assert ops.Subscribe.from_args({"stream": "public"}).stream == "public"
    users = [f"u{i}" for i in range(MAX_PRESENCE_USERS)]
    assert ops.Presence.from_args({"users": users}).users == tuple(users)
    assert ops.Resume.from_args({"cursor": "A-z._:9" * 9 + "x"}).cursor == "A-z._:9" * 9 + "x"


INVALID: list[tuple[type[ops.Operation], dict[str, object], ErrorCode]] = [
    (ops.Auth, {"token": "t", "cursor": ""}, ErrorCode.BAD_REQUEST),
    (ops.Auth, {"token": "t", "streams": "public"}, ErrorCode.BAD_REQUEST),
    (ops.Auth, {"token": "t", "streams": ["tag:No"]}, ErrorCode.BAD_REQUEST),
    (ops.Auth, {"token": "t", "streams": [f"tag:t{i}" for i in range(33)]}, ErrorCode.TOO_LARGE),
    # auth
    (ops.Auth, {}, BAD),
    (ops.Auth, {"token": ""}, BAD),
    (ops.Auth, {"token": 7}, BAD),
    (ops.Auth, {"token": b"bytes"}, BAD),
    (ops.Auth, {"token": "t" * (MAX_TOKEN_CHARS + 1)}, LARGE),
    # user ids
    (ops.GetProfile, {}, BAD),
    (ops.GetProfile, {"user": None}, BAD),
    (ops.GetProfile, {"user": ""}, BAD),
    (ops.GetProfile, {"user": "Alice"}, BAD),
    (ops.GetProfile, {"user": "al ice"}, BAD),
    (ops.GetProfile, {"user": "a" * 33}, BAD),
    (ops.GetProfile, {"user": "bob\n"}, BAD),
    (ops.GetProfile, {"user": "\uff41lice"}, BAD),
    (ops.Follow, {"user": ["bob"]}, BAD),
    (ops.Unfollow, {"user": 1}, BAD),
    # profile.update
    (ops.UpdateProfile, {"name": "n" * (MAX_NAME_CHARS + 1)}, LARGE),
    (ops.UpdateProfile, {"bio": "b" * (MAX_BIO_CHARS + 1)}, LARGE),
    (ops.UpdateProfile, {"bio": 5}, BAD),
    (ops.UpdateProfile, {"name": False}, BAD),
    # post text
    (ops.CreatePost, {}, BAD),
    (ops.CreatePost, {"text": ""}, BAD),
    (ops.CreatePost, {"text": " \n\t "}, BAD),
    (ops.CreatePost, {"text": "x" * (MAX_POST_CHARS + 1)}, LARGE),
    (ops.CreatePost, {"text": "\U0001f600" * (MAX_POST_CHARS + 1)}, LARGE),
    (ops.CreatePost, {"text": ["hi"]}, BAD),
    (ops.CreatePost, {"text": "hi", "reply_to": 0}, BAD),
    (ops.CreatePost, {"text": "hi", "reply_to": "42"}, BAD),
    (ops.CreatePost, {"text": "hi", "reply_to": True}, BAD),
    (ops.EditPost, {"post": 1}, BAD),
    (ops.EditPost, {"text": "hi"}, BAD),
    (ops.EditPost, {"post": 1, "text": "x" * (MAX_POST_CHARS + 1)}, LARGE),
    # post ids
    (ops.DeletePost, {}, BAD),
    (ops.DeletePost, {"post": -1}, BAD),
    (ops.DeletePost, {"post": MAX_ID + 1}, BAD),
    (ops.Like, {"post": 1.0}, BAD),
    (ops.Like, {"post": True}, BAD),
    (ops.Unlike, {"post": float("nan")}, BAD),
    (ops.MarkRead, {"up_to": 0}, BAD),
    (ops.MarkRead, {"up_to": "9"}, BAD),
    # pages
    (ops.FeedHome, {"limit": 0}, BAD),
    (ops.FeedHome, {"limit": -5}, BAD),
    (ops.FeedHome, {"limit": 101}, LARGE),
    (ops.FeedHome, {"limit": 20.0}, BAD),
    (ops.FeedHome, {"limit": True}, BAD),
    (ops.FeedHome, {"limit": "20"}, BAD),
    (ops.FeedPublic, {"before": ""}, BAD),
    (ops.FeedPublic, {"before": "a b"}, BAD),
    (ops.FeedPublic, {"before": "x" * 65}, BAD),
    (ops.FeedPublic, {"before": 17}, BAD),
    (ops.Notifications, {"before": "p/1"}, BAD),
    (ops.Followers, {"limit": 5}, BAD),
    (ops.Following, {"user": "bob", "limit": 1000}, LARGE),
    (ops.FeedUser, {"user": "BOB"}, BAD),
    (ops.FeedHashtag, {}, BAD),
    (ops.FeedHashtag, {"tag": "#python"}, BAD),
    (ops.FeedHashtag, {"tag": "Python"}, BAD),
    (ops.FeedHashtag, {"tag": "t" * 65}, BAD),
    (ops.FeedReplies, {"post": "42"}, BAD),
    # presence
    (ops.Presence, {}, BAD),
    (ops.Presence, {"users": []}, BAD),
    (ops.Presence, {"users": "bob"}, BAD),
    (ops.Presence, {"users": {"bob": 1}}, BAD),
    (ops.Presence, {"users": ["bob", 7]}, BAD),
    (ops.Presence, {"users": ["bob", "Carol"]}, BAD),
    (ops.Presence, {"users": ["u"] * (MAX_PRESENCE_USERS + 1)}, LARGE),
    # streams
    (ops.Subscribe, {}, BAD),
    (ops.Subscribe, {"stream": "private"}, BAD),
    (ops.Subscribe, {"stream": "tag:"}, BAD),
    (ops.Subscribe, {"stream": "tag:Python"}, BAD),
    (ops.Subscribe, {"stream": "thread:0"}, BAD),
    (ops.Subscribe, {"stream": "thread:042"}, BAD),
    (ops.Subscribe, {"stream": f"thread:{MAX_ID + 1}"}, BAD),
    (ops.Unsubscribe, {"stream": "public "}, BAD),
    # resume
    (ops.Resume, {}, BAD),
    (ops.Resume, {"cursor": ""}, BAD),
    (ops.Resume, {"cursor": 1041}, BAD),
    (ops.Resume, {"cursor": "c" * 65}, BAD),
    (ops.Resume, {"cursor": "10 41"}, BAD),
]


@pytest.mark.parametrize(
    ("operation", "args", "code"),
    INVALID,
    ids=[f"{op.NAME}-{i}" for i, (op, _, _) in enumerate(INVALID)],
)
def test_invalid_arguments(
    operation: type[ops.Operation], args: dict[str, object], code: ErrorCode
) -> None:
    with pytest.raises(ProtocolError) as caught:
        operation.from_args(args)
    assert caught.value.code is code
    assert caught.value.request_id is None
    assert caught.value.message
