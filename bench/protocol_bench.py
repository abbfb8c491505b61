"""Encode/decode throughput of the protocol codecs, as a markdown table.

Measures a typical ``feed.insert`` event (a ~200-byte post), a typical ``post``
request, and joining 64 pre-encoded events into one batch frame, for both
codecs; the stdlib ``json`` module on the same event is the same-run baseline
that the ratios refer to (this machine is shared and noisy: compare ratios).

    .venv/bin/python bench/protocol_bench.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial

from protocol import JSON, MSGPACK, Codec, Event, EventType, Request, ops

POST = {
    "id": 912345,
    "author": "alice",
    "text": "Spent the morning profiling the fan-out path: one encode per event, "
    "shared bytes for every follower. #python #perf",
    "created_at": 1732406400000,
    "edited_at": None,
    "reply_to": None,
    "root": None,
    "tags": ["python", "perf"],
    "mentions": [],
    "likes": 3,
    "replies": 1,
}
EVENT = Event(EventType.FEED_INSERT, "184467", POST)
REQUEST = Request(77, ops.CreatePost("Trying the new hub from the SDK, hello @bob! #hubbub", None))
BUDGET = 0.4  # seconds per measurement


def rate(action: Callable[[], object]) -> float:
    """Calls per second of ``action`` (best of three runs of about BUDGET/3 seconds)."""
    count = 1
    while True:  # find a batch size that takes a measurable time
        start = time.perf_counter()
        for _ in range(count):
            action()
        if time.perf_counter() - start > 0.02:
            break
        count *= 4
    best = 0.0
    for _ in range(3):
        loops = 0
        start = time.perf_counter()
        while time.perf_counter() - start < BUDGET / 3:
            for _ in range(count):
                action()
            loops += count
        best = max(best, loops / (time.perf_counter() - start))
    return best


Row = tuple[str, str, int, float]


def codec_rows(codec: Codec) -> list[Row]:
    """The measurements of one codec."""
    event = codec.encode_event(EVENT)
    request = codec.encode_request(REQUEST)
    events = [event] * 64
    batch = codec.join(events)
    cases: list[tuple[str, bytes, Callable[[], object]]] = [
        ("encode event", event, partial(codec.encode_event, EVENT)),
        ("decode event", event, partial(codec.decode_server_frame, event)),
        ("encode request", request, partial(codec.encode_request, REQUEST)),
        ("decode request", request, partial(codec.decode_requests, request)),
        ("join 64 events", batch, partial(codec.join, events)),
        ("decode 64-event batch", batch, partial(codec.decode_server_frame, batch)),
    ]
    return [(codec.name, what, len(frame), rate(action)) for what, frame, action in cases]


def main() -> None:
    """Measure and print the table."""
    plain = {"ev": "feed.insert", "cursor": EVENT.cursor, "data": POST}
    plain_bytes = json.dumps(plain, separators=(",", ":")).encode()
    baseline = {
        "encode event": rate(lambda: json.dumps(plain, separators=(",", ":")).encode()),
        "decode event": rate(lambda: json.loads(plain_bytes)),
    }
    rows = [("stdlib json (baseline)", what, len(plain_bytes), r) for what, r in baseline.items()]
    rows += codec_rows(JSON) + codec_rows(MSGPACK)
    print("| codec | operation | bytes | ops/s | vs stdlib json |")
    print("|---|---|---:|---:|---:|")
    for name, what, size, ops_s in rows:
        base = baseline.get(what)
        ratio = f"{ops_s / base:.2f}x" if base else "-"
        print(f"| {name} | {what} | {size} | {ops_s:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
