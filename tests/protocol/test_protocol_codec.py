"""Round trips, batching and frame-level errors of both codecs."""

from __future__ import annotations

import json
from types import MappingProxyType

import msgpack
import orjson
import pytest

from protocol import (
    CODECS,
    JSON,
    MSGPACK,
    Codec,
    ErrorCode,
    ErrorReply,
    Event,
    PreparedEvent,
    ProtocolError,
    Reply,
    Request,
    codec_for_subprotocol,
    ops,
)
from protocol.limits import MAX_BATCH, MAX_CLIENT_FRAME_BYTES, MAX_ID, MAX_SERVER_FRAME_BYTES
from tests.protocol.protocol_samples import ERRORS, EVENTS, REPLIES, REQUESTS

CODEC_LIST = [JSON, MSGPACK]
codecs = pytest.mark.parametrize("codec", CODEC_LIST, ids=lambda c: c.name)


def dumps(codec: Codec, obj: object) -> bytes:
    """Plain objects encoded by the codec's library, bypassing the protocol layer."""
    return orjson.dumps(obj) if codec is JSON else msgpack.packb(obj)


def decode_error(codec: Codec, frame: bytes | str) -> ProtocolError:
    """The error the hub side raises for a whole frame."""
    with pytest.raises(ProtocolError) as caught:
        codec.decode_requests(frame)
    return caught.value


def test_codec_registry() -> None:
    assert CODECS == {"hubbub.v1.json": JSON, "hubbub.v1.msgpack": MSGPACK}
    assert codec_for_subprotocol("hubbub.v1.msgpack") is MSGPACK
    assert (JSON.binary, MSGPACK.binary) == (False, True)
    with pytest.raises(ProtocolError) as caught:
        codec_for_subprotocol("hubbub.v2.json")
    assert caught.value.code is ErrorCode.BAD_REQUEST


@codecs
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_round_trip(codec: Codec, name: str) -> None:
    request = REQUESTS[name]
    assert codec.decode_requests(codec.encode_request(request)) == [request]


@codecs
@pytest.mark.parametrize("name", sorted(EVENTS))
def test_event_round_trip(codec: Codec, name: str) -> None:
    event = EVENTS[name]
    assert codec.decode_server_frame(codec.encode_event(event)) == [event]


@codecs
@pytest.mark.parametrize("reply", [*REPLIES.values(), *ERRORS.values()], ids=repr)
def test_reply_round_trip(codec: Codec, reply: Reply | ErrorReply) -> None:
    assert codec.decode_server_frame(codec.encode_reply(reply)) == [reply]


@codecs
def test_json_text_frames_and_unicode(codec: Codec) -> None:
    request = Request(MAX_ID, ops.CreatePost('héllo \U0001f600 \u2028 "quoted" \\ #tag'))
    encoded = codec.encode_request(request)
    assert codec.decode_requests(encoded) == [request]
    if codec is JSON:
        assert JSON.decode_requests(encoded.decode()) == [request]


def test_msgpack_rejects_text_frames() -> None:
    error = decode_error(MSGPACK, "\x81\xa2id\x01")
    assert error.code is ErrorCode.BAD_REQUEST


@codecs
def test_join_batches_without_reencoding(codec: Codec) -> None:
    encoded = [codec.encode_event(event) for event in EVENTS.values()]
    assert codec.join(encoded[:1]) is encoded[0]
    assert codec.decode_server_frame(codec.join(encoded)) == list(EVENTS.values())
    requests = list(REQUESTS.values())
    frame = codec.join([codec.encode_request(r) for r in requests])
    assert codec.decode_requests(frame) == requests


@codecs
@pytest.mark.parametrize("count", [2, 15, 16, 17, MAX_BATCH])
def test_join_array_headers(codec: Codec, count: int) -> None:
    events = [Event("feed.insert", str(i), {"id": i}) for i in range(count)]
    frame = codec.join([codec.encode_event(e) for e in events])
    assert frame == dumps(
        codec, [{"ev": e.type, "cursor": e.cursor, "data": e.data} for e in events]
    )
    assert codec.decode_server_frame(frame) == events


@codecs
@pytest.mark.parametrize("count", [0, MAX_BATCH + 1])
def test_join_rejects_bad_counts(codec: Codec, count: int) -> None:
    with pytest.raises(ValueError, match="messages"):
        codec.join([codec.encode_event(EVENTS["presence"])] * count)


@codecs
def test_batch_elements_fail_alone(codec: Codec) -> None:
    frame = dumps(
        codec,
        [
            {"id": 1, "op": "ping"},
            {"id": 2, "op": "poke", "args": {}},
            {"id": 3, "op": "follow", "args": {"user": "Not A Handle"}},
            {"id": 4.0, "op": "ping"},
            {"op": "ping"},
            "ping",
            {"id": 7, "op": 7},
            {"id": 8, "op": "ping", "args": [1]},
            {"id": 9, "op": "like", "args": {"post": 10**6}, "extra": {"ignored": True}},
            {"id": True, "op": "ping"},
            {"id": -1, "op": "ping"},
            {"id": MAX_ID + 1, "op": "ping"},
            {"id": 0, "op": "ping", "args": None},
        ],
    )
    results = codec.decode_requests(frame)
    assert results[0] == Request(1, ops.Ping())
    assert results[8] == Request(9, ops.Like(10**6))
    errors = [(r.code, r.request_id) if isinstance(r, ProtocolError) else r for r in results]
    assert errors[1:8] == [
        (ErrorCode.UNKNOWN_OP, 2),
        (ErrorCode.BAD_REQUEST, 3),
        (ErrorCode.BAD_REQUEST, None),
        (ErrorCode.BAD_REQUEST, None),
        (ErrorCode.BAD_REQUEST, None),
        (ErrorCode.BAD_REQUEST, 7),
        (ErrorCode.BAD_REQUEST, 8),
    ]
    assert errors[9:] == [
        (ErrorCode.BAD_REQUEST, None),
        (ErrorCode.BAD_REQUEST, None),
        (ErrorCode.BAD_REQUEST, None),
        (ErrorCode.BAD_REQUEST, 0),
    ]


@codecs
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ([], ErrorCode.BAD_REQUEST),
        ("ping", ErrorCode.BAD_REQUEST),
        (7, ErrorCode.BAD_REQUEST),
        (None, ErrorCode.BAD_REQUEST),
        ([{"id": i, "op": "ping"} for i in range(MAX_BATCH + 1)], ErrorCode.TOO_LARGE),
    ],
    ids=["empty", "string", "int", "null", "batch-too-long"],
)
def test_whole_frame_errors(codec: Codec, frame: object, code: ErrorCode) -> None:
    assert decode_error(codec, dumps(codec, frame)).code is code
    with pytest.raises(ProtocolError) as caught:
        codec.decode_server_frame(dumps(codec, frame))
    assert caught.value.code is code


@codecs
def test_full_batch_is_accepted(codec: Codec) -> None:
    frame = dumps(codec, [{"id": i, "op": "ping"} for i in range(MAX_BATCH)])
    assert len(codec.decode_requests(frame)) == MAX_BATCH


@codecs
def test_oversized_frames(codec: Codec) -> None:
    text = "x" * MAX_CLIENT_FRAME_BYTES
    frame = dumps(codec, {"id": 1, "op": "post", "args": {"text": text}})
    assert decode_error(codec, frame).code is ErrorCode.TOO_LARGE
    assert decode_error(codec, b"\x00" * (MAX_CLIENT_FRAME_BYTES + 1)).code is ErrorCode.TOO_LARGE
    big = b"\x00" * (MAX_SERVER_FRAME_BYTES + 1)
    with pytest.raises(ProtocolError) as caught:
        codec.decode_server_frame(big)
    assert caught.value.code is ErrorCode.TOO_LARGE


def test_json_str_frames_are_measured_in_utf8_bytes() -> None:
    # Fewer code points than the limit, but more UTF-8 bytes.
    text = "\U0001f600" * (MAX_CLIENT_FRAME_BYTES // 4)
    frame = orjson.dumps({"id": 1, "op": "post", "args": {"text": text}}).decode()
    assert len(frame) < MAX_CLIENT_FRAME_BYTES
    assert decode_error(JSON, frame).code is ErrorCode.TOO_LARGE
    assert decode_error(JSON, '{"id": 1, "op": "\ud800"}').code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xff\xfe",
        b'{"id": 1, "op": "ping"',
        b'{"id": 1, "op": "ping"} {}',
        b"[" * 5000 + b"]" * 5000,
        b'{"id": NaN, "op": "ping"}',
        b'{"id": Infinity, "op": "ping"}',
        b'{"id": 1, "op": "ping", "args": {"x": 1e999}}',
        b'{"id": 1, "op": "p\xc3"}',
    ],
)
def test_undecodable_json(frame: bytes) -> None:
    assert decode_error(JSON, frame).code is ErrorCode.BAD_REQUEST


def test_json_ints_beyond_64_bits_are_not_ids() -> None:
    (result,) = JSON.decode_requests(b'{"id": 123456789012345678901234567890, "op": "ping"}')
    assert isinstance(result, ProtocolError)
    assert result.code is ErrorCode.BAD_REQUEST


def test_json_duplicate_keys_keep_the_last() -> None:
    assert JSON.decode_requests(b'{"id": 1, "id": 2, "op": "ping"}') == [Request(2, ops.Ping())]


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",
        b"\x81\xa2id",
        msgpack.packb({"id": 1, "op": "ping"}) + b"\x00",
        b"\x91" * 5000 + b"\x80",
        msgpack.packb({1: "non-str key"}),
        msgpack.packb({"id": msgpack.ExtType(5, b"x"), "op": "ping"}),
        b"\xdd\xff\xff\xff\xff",  # an array claiming 4 billion elements
        b"\xdb\xff\xff\xff\xff",  # a str claiming 4 GiB
        b"\x81\xa2op\xa3\xff\xfe\xfd",  # invalid UTF-8 in a str
    ],
)
def test_undecodable_msgpack(frame: bytes) -> None:
    assert decode_error(MSGPACK, frame).code is ErrorCode.BAD_REQUEST


def test_msgpack_bytes_are_not_text() -> None:
    (result,) = MSGPACK.decode_requests(
        msgpack.packb({"id": 1, "op": "auth", "args": {"token": b"secret"}})
    )
    assert isinstance(result, ProtocolError)
    assert (result.code, result.request_id) == (ErrorCode.BAD_REQUEST, 1)


@codecs
def test_unknown_fields_and_event_types_are_kept_for_clients(codec: Codec) -> None:
    frame = dumps(
        codec,
        [
            {"ev": "poll.vote", "cursor": "77", "data": {"poll": 1}, "v": 2},
            {"re": 3, "result": {"time": 5}, "trace": "abc"},
            {"re": 4, "error": {"code": "teapot", "message": "newer code", "hint": 1}},
        ],
    )
    assert codec.decode_server_frame(frame) == [
        Event("poll.vote", "77", {"poll": 1}),
        Reply(3, {"time": 5}),
        ErrorReply(4, ErrorCode.INTERNAL, "newer code"),
    ]


@codecs
@pytest.mark.parametrize(
    "message",
    [
        {"ev": "", "cursor": None, "data": {}},
        {"ev": 5, "cursor": None, "data": {}},
        {"ev": "feed.insert", "cursor": 12, "data": {}},
        {"ev": "feed.insert", "cursor": "1 2", "data": {}},
        {"ev": "feed.insert", "cursor": "12", "data": [1]},
        {"ev": "feed.insert", "cursor": "12"},
        {"re": None, "result": {}},
        {"re": 1.5, "result": {}},
        {"re": 1, "result": "ok"},
        {"re": 1, "error": "oops"},
        {"re": 1, "error": {"code": 5, "message": "m"}},
        {"re": 1, "error": {"code": "internal"}},
        {"re": 1, "error": {"code": "rate_limited", "message": "m", "retry_after": "1"}},
        {"re": 1, "error": {"code": "rate_limited", "message": "m", "retry_after": -1}},
        {"re": 1, "error": {"code": "rate_limited", "message": "m", "retry_after": True}},
        {"re": "1", "error": {"code": "internal", "message": "m"}},
        {"re": 1},
        {"hello": "world"},
        [1],
    ],
)
def test_malformed_server_messages(codec: Codec, message: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        codec.decode_server_frame(dumps(codec, [{"re": 0, "result": {}}, message]))
    assert caught.value.code is ErrorCode.BAD_REQUEST


@codecs
def test_error_reply_retry_after_is_a_float(codec: Codec) -> None:
    reply = ErrorReply(1, ErrorCode.RATE_LIMITED, "slow down", retry_after=2)
    (decoded,) = codec.decode_server_frame(codec.encode_reply(reply))
    assert isinstance(decoded, ErrorReply)
    assert decoded.retry_after == 2.0
    assert type(decoded.retry_after) is float


def test_error_reply_from_protocol_error() -> None:
    error = ProtocolError(ErrorCode.RATE_LIMITED, "slow", request_id=4, retry_after=0.5)
    assert ErrorReply.from_error(error) == ErrorReply(4, ErrorCode.RATE_LIMITED, "slow", 0.5)


@codecs
def test_encoders_accept_any_mapping(codec: Codec) -> None:
    event = Event("post.delete", "9", MappingProxyType({"id": 3}))
    assert codec.decode_server_frame(codec.encode_event(event)) == [
        Event("post.delete", "9", {"id": 3})
    ]


def counting_codec(base: Codec, calls: list[str]) -> Codec:
    """A codec that behaves like ``base`` and records each encoding it makes."""

    class Counting(type(base)):  # type: ignore[misc]
        __slots__ = ()

        def _dumps(self, obj: object) -> bytes:
            calls.append(self.name)
            encoded: bytes = super()._dumps(obj)
            return encoded

    codec: Codec = Counting()
    return codec


def test_prepared_event_encodes_once_per_codec() -> None:
    calls: list[str] = []
    counting = [counting_codec(JSON, calls), counting_codec(MSGPACK, calls)]
    prepared = PreparedEvent(EVENTS["feed.insert"])
    for _ in range(3):
        for codec, plain in zip(counting, CODEC_LIST, strict=True):
            assert prepared.bytes_for(codec) == plain.encode_event(prepared.event)
    assert prepared.bytes_for(counting[0]) is prepared.bytes_for(counting[0])
    assert calls == ["json", "msgpack"]
    assert "feed.insert" in repr(prepared)


def test_stdlib_json_reads_what_we_write() -> None:
    for request in REQUESTS.values():
        wire = json.loads(JSON.encode_request(request))
        assert list(wire) == ["id", "op", "args"]
        assert wire["args"] == request.op.to_args()
