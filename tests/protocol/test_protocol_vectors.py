"""The golden vectors in protocol/vectors/: decode to their message, encode to their bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol import JSON, MSGPACK, ErrorReply, Event, Reply, Request, ops
from tests.protocol.protocol_samples import ERRORS, EVENTS, REPLIES, REQUESTS, decode, encode
from tests.protocol.regen_vectors import all_vectors

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"
FILES = sorted(VECTORS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    """One vector file."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_there_is_a_vector_for_every_message_type() -> None:
    names = {path.stem for path in FILES}
    assert {f"request.{op}" for op in ops.OPERATIONS} <= names
    assert {f"event.{ev}" for ev in EVENTS} <= names
    assert {"batch.requests", "batch.events"} <= names
    assert any(name.startswith("reply.") for name in names)
    assert any(name.startswith("error.") for name in names)
    assert len(names) == len(REQUESTS) + len(REPLIES) + len(ERRORS) + len(EVENTS) + 2


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_vector(path: Path) -> None:
    vector = load(path)
    assert vector["name"] == path.stem
    assert vector["kind"] in {"request", "reply", "error", "event", "batch"}
    logical = vector["message"]
    items = logical if isinstance(logical, list) else [logical]
    assert (vector["kind"] == "batch") == isinstance(logical, list)
    frames = {JSON: vector["json"].encode(), MSGPACK: bytes.fromhex(vector["msgpack_hex"])}
    for codec, frame in frames.items():
        messages = decode(codec, frame)
        assert len(messages) == len(items)
        for message, item in zip(messages, items, strict=True):
            kind = {Request: "request", Reply: "reply", ErrorReply: "error", Event: "event"}
            assert vector["kind"] in ("batch", kind[type(message)])
            # The logical message is exactly what the JSON frame holds.
            assert json.loads(encode(JSON, message)) == item
        assert codec.join([encode(codec, m) for m in messages]) == frame
    assert json.loads(vector["json"]) == logical


def test_committed_vectors_match_the_samples() -> None:
    """Catches a sample or encoder change that was not written to the vector files."""
    assert {path.stem: load(path) for path in FILES} == all_vectors()
