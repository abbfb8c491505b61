"""The examples in protocol/SPEC.md are valid frames, and their two encodings agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protocol import JSON, MSGPACK
from tests.protocol.protocol_samples import decode, encode

SPEC = (Path(__file__).resolve().parents[2] / "protocol" / "SPEC.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(json|text)\n(.*?)```", SPEC, flags=re.DOTALL)
JSON_FRAMES = [line for kind, body in BLOCKS if kind == "json" for line in body.splitlines()]
SESSION = SPEC[SPEC.index("## 12.") :]
PAIRS = re.findall(r"```json\n(.*?)\n```\s*```text\n(.*?)\n```", SESSION, flags=re.DOTALL)


def test_spec_has_all_sections() -> None:
    titles = re.findall(r"^## (\d+)\. ", SPEC, flags=re.MULTILINE)
    assert titles == [str(n) for n in range(1, 13)]
    assert len(JSON_FRAMES) > 50
    assert len(PAIRS) >= 9


@pytest.mark.parametrize("frame", JSON_FRAMES)
def test_json_example_is_canonical(frame: str) -> None:
    messages = decode(JSON, frame.encode())
    assert messages
    if len(messages) == 1:
        assert encode(JSON, messages[0]).decode() == frame


@pytest.mark.parametrize(("json_frame", "msgpack_hex"), PAIRS)
def test_session_example_encodings_agree(json_frame: str, msgpack_hex: str) -> None:
    assert decode(MSGPACK, bytes.fromhex(msgpack_hex)) == decode(JSON, json_frame.encode())
