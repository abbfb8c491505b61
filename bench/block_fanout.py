"""Fan-out speed with blocks and mutes: the live path's filter costs a set lookup.

A node keeps, per author, the local sessions whose shield (``hub.shield``) hides that
author; only those are checked, once per change, and taken out of its recipients. This
measures :meth:`hub.fanout.LocalFanout.deliver` itself (the node's fan-out loop:
routing, one encoding per codec, the shield check, queueing on each recipient) with
recipients that stand in for sessions (they append the event to a list, as the outbox
does), in three cases measured in the same run:

- ``none``: no recipient blocks or mutes anyone (the shared empty shield; the same
  shields are built and kept aside, so that the heap is laid out as in the others);
- ``1000 blocks``: every recipient has blocked 1,000 other users (and muted 100);
- ``1000 blocks, 10% hide``: as above, and a tenth of the recipients block the author
  (their events are skipped).

It prints deliveries per second per case and the ratio to ``none``, plus the memory of
one shield with 1,000 blocks. One process, one core: the figure is the hub's fan-out
loop alone (no sockets, no client), so nothing else can be the bottleneck.

Run: ``.venv/bin/python bench/block_fanout.py [--recipients N] [--posts N]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub import changes
from hub.fanout import EventBatch, LocalFanout
from hub.names import FollowersKey
from hub.records import Post, Relations
from hub.shield import NO_SHIELD, Shield
from protocol import JSON, PreparedEvent

AUTHOR = "author"


class Recipient:
    """A stand-in session: a user, a shield, and an outbox list."""

    __slots__ = ("outbox", "shield", "user")

    def __init__(self, user: str, shield: Shield) -> None:
        self.user = user
        self.shield = shield
        self.outbox: list[bytes] = []

    def send_event(self, seq: int | None, event: PreparedEvent) -> None:
        """Queue the event's bytes, as the outbox does."""
        self.outbox.append(event.bytes_for(JSON))

    def send_batch(self, batch: EventBatch) -> None:
        """Queue a run's bytes, as the outbox does."""
        self.outbox.extend(batch.bytes_for(JSON)[0])


def shield_of(user: str, blocks: int, hides_author: bool, rng: random.Random) -> Shield:
    """A shield with ``blocks`` blocked users and a tenth as many mutes."""
    blocked = {f"u{rng.randrange(10**9)}" for _ in range(blocks)}
    if hides_author:
        blocked.add(AUTHOR)
    muted = {f"m{rng.randrange(10**9)}": None for _ in range(blocks // 10)}
    return Shield(user, Relations(frozenset(blocked), frozenset(), muted))


def run_case(recipients: int, posts: int, blocks: int, hide_share: float) -> tuple[float, int]:
    """Deliveries per second of ``posts`` posts to ``recipients`` followers."""
    rng = random.Random(7)
    fanout = LocalFanout()
    members = []
    kept = []  # every case builds the same shields, so that memory layout is alike
    for index in range(recipients):
        user = f"r{index}"
        hides = index < recipients * hide_share
        built = shield_of(user, 1000, hides, rng)
        kept.append(built)
        shield = built if blocks else NO_SHIELD
        member = Recipient(user, shield)
        fanout.add(member, [FollowersKey(AUTHOR)])
        fanout.reshield(member, shield.hidden)
        members.append(member)
    created = [
        changes.created(
            Post(n + 1, AUTHOR, f"post {n} #bench", 1, None, None, None, ("bench",), (), 0, 0,
                 False), 1,
        ).sequenced(n + 1)
        for n in range(posts)
    ]  # fmt: skip
    delivered = 0
    start = time.perf_counter()
    for change in created:
        delivered += fanout.deliver(change)
    elapsed = time.perf_counter() - start
    return delivered / elapsed, delivered


def shield_bytes(blocks: int) -> int:
    """Memory held by one shield with ``blocks`` blocks (and a tenth as many mutes)."""
    rng = random.Random(3)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    shield = shield_of("someone", blocks, False, rng)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del shield
    return after - before


def main() -> int:
    """Run the three cases and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=5000, help="followers per post")
    parser.add_argument("--posts", type=int, default=200, help="posts per case")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    cases = [("none", 0, 0.0), ("1000 blocks", 1000, 0.0), ("1000 blocks, 10% hide", 1000, 0.1)]
    print(f"{args.recipients} recipients x {args.posts} posts, best of {args.rounds}")
    print(f"{'case':<24}{'deliveries/s':>14}{'delivered':>12}{'vs none':>10}")
    baseline = 0.0
    for name, blocks, share in cases:
        print(f"  building {name} ...", end="\r", file=sys.stderr, flush=True)
        runs = [run_case(args.recipients, args.posts, blocks, share) for _ in range(args.rounds)]
        rate, delivered = max(runs)
        baseline = baseline or rate
        print(f"{name:<24}{rate:>14,.0f}{delivered:>12,}{rate / baseline:>10.2f}")
    print(f"memory of one shield with 1000 blocks and 100 mutes: {shield_bytes(1000):,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
