"""Regenerate protocol/vectors/*.json from tests/protocol/protocol_samples.py.

The committed JSON files are the source of truth; run this only when the
samples change on purpose, and review the diff:

    .venv/bin/python -m tests.protocol.regen_vectors
"""

from __future__ import annotations

from pathlib import Path

import orjson

from protocol import JSON, MSGPACK
from tests.protocol.protocol_samples import ERRORS, EVENTS, REPLIES, REQUESTS, Message, encode

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"


def vector(name: str, kind: str, messages: list[Message]) -> dict[str, object]:
    """The vector of one message, or of a batch frame of several."""
    frames = {codec: codec.join([encode(codec, m) for m in messages]) for codec in (JSON, MSGPACK)}
    return {
        "name": name,
        "kind": kind,
        "message": orjson.loads(frames[JSON]),
        "json": frames[JSON].decode(),
        "msgpack_hex": frames[MSGPACK].hex(),
    }


def all_vectors() -> dict[str, dict[str, object]]:
    """Every vector, by file stem."""
    found: dict[str, dict[str, object]] = {}
    for kind, prefix, samples in (
        ("request", "request", REQUESTS),
        ("reply", "reply", REPLIES),
        ("error", "error", ERRORS),
        ("event", "event", EVENTS),
    ):
        for key, message in samples.items():
            name = f"{prefix}.{key}"
            found[name] = vector(name, kind, [message])
    found["batch.requests"] = vector(
        "batch.requests", "batch", [REQUESTS["post"], REQUESTS["feed.home"], REQUESTS["ping"]]
    )
    found["batch.events"] = vector(
        "batch.events",
        "batch",
        [REPLIES["post"], EVENTS["feed.insert"], EVENTS["stream.insert"], EVENTS["presence"]],
    )
    return found


def main() -> None:
    """Write every vector file, replacing the old ones."""
    for old in VECTORS.glob("*.json"):
        old.unlink()
    for name, data in all_vectors().items():
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
        (VECTORS / f"{name}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
