"""Property tests: whatever the input, decoders return or raise only ProtocolError."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import JSON, MSGPACK, Codec, ProtocolError, Request
from protocol.limits import MAX_CLIENT_FRAME_BYTES
from protocol.ops import OPERATIONS
from tests.protocol.protocol_samples import EVENTS, REQUESTS

MANY = settings(
    max_examples=10_000,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
SOME = settings(MANY, max_examples=500)

CODEC_LIST = [JSON, MSGPACK]
codecs = pytest.mark.parametrize("codec", CODEC_LIST, ids=lambda c: c.name)

SAMPLE_FRAMES = [
    codec.encode_request(request) for codec in CODEC_LIST for request in REQUESTS.values()
] + [codec.encode_event(event) for codec in CODEC_LIST for event in EVENTS.values()]

keys = st.sampled_from(["id", "op", "args", "re", "ev", "cursor", "data", "result", "error"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(sorted(OPERATIONS))
    | st.sampled_from(["user", "post", "text", "limit", "before", "users", "stream"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(keys | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
msgpack_values = st.recursive(
    scalars | st.binary(max_size=20) | st.floats(allow_nan=True),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(keys | st.text(max_size=8) | st.binary(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


def dumps_for(codec: Codec) -> Callable[[object], bytes]:
    """The plain library encoder of a codec's wire format."""
    return orjson.dumps if codec is JSON else msgpack.packb


def check_decoders(codec: Codec, frame: bytes | str) -> None:
    """Both decoders either return messages or raise ProtocolError; nothing else."""
    try:
        results = codec.decode_requests(frame)
    except ProtocolError:
        pass
    else:
        assert results
        assert all(isinstance(r, Request | ProtocolError) for r in results)
    with contextlib.suppress(ProtocolError):
        codec.decode_server_frame(frame)


@codecs
@MANY
@given(frame=st.binary(max_size=256))
def test_arbitrary_bytes(codec: Codec, frame: bytes) -> None:
    check_decoders(codec, frame)


@MANY
@given(obj=json_values)
def test_arbitrary_json_structures(obj: object) -> None:
    check_decoders(JSON, orjson.dumps(obj))


@MANY
@given(obj=msgpack_values)
def test_arbitrary_msgpack_structures(obj: object) -> None:
    check_decoders(MSGPACK, msgpack.packb(obj))


@codecs
@SOME
@given(value=st.data())
def test_request_shaped_maps(codec: Codec, value: st.DataObject) -> None:
    """Known op names with arbitrary args: validation reports, never crashes."""
    args = value.draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "user",
                    "post",
                    "text",
                    "limit",
                    "before",
                    "users",
                    "stream",
                    "cursor",
                    "tag",
                    "token",
                    "reply_to",
                    "up_to",
                    "name",
                    "bio",
                ]
            ),
            json_values,
            max_size=4,
        )
    )
    op = value.draw(st.sampled_from(sorted(OPERATIONS)))
    check_decoders(codec, dumps_for(codec)([{"id": 5, "op": op, "args": args}]))


@SOME
@given(text=st.text(max_size=44))
def test_arbitrary_text_frames(text: str) -> None:
    check_decoders(JSON, text)


@MANY
@given(
    frame=st.sampled_from(SAMPLE_FRAMES),
    cut=st.integers(min_value=0),
    flip=st.integers(min_value=0),
    byte=st.integers(0, 255),
)
def test_truncated_and_corrupted_frames(frame: bytes, cut: int, flip: int, byte: int) -> None:
    truncated = frame[: cut % len(frame)]
    corrupted = bytearray(frame)
    corrupted[flip % len(frame)] = byte
    for codec in CODEC_LIST:
        check_decoders(codec, truncated)
        check_decoders(codec, bytes(corrupted))


@codecs
@SOME
@given(
    size=st.integers(MAX_CLIENT_FRAME_BYTES + 1, 4 * MAX_CLIENT_FRAME_BYTES),
    fill=st.binary(min_size=1, max_size=8),
)
def test_oversized_frames_are_too_large(codec: Codec, size: int, fill: bytes) -> None:
    frame = (fill * (size // len(fill) + 1))[:size]
    with pytest.raises(ProtocolError) as caught:
        codec.decode_requests(frame)
    assert caught.value.code == "too_large"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2**64 - 1, -(2**63), 1e300])
def test_msgpack_odd_numbers_as_ids(value: float) -> None:
    (result,) = MSGPACK.decode_requests(msgpack.packb({"id": value, "op": "ping"}))
    assert isinstance(result, ProtocolError)
