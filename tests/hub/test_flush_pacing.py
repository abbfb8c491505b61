"""The Flusher's pacing: a slow flush followed at once by more messages to the same
connections waits, so that they coalesce; a message after a quiet spell, or to other
connections than the last flush wrote to, goes out on the next loop tick."""

from __future__ import annotations

import asyncio
import time
from typing import cast

from hub.outbox import MAX_FLUSH_DELAY, Flusher, Outbox, SharedFrames


class SlowOutbox:
    """Stands in for an Outbox: each flush of it takes ``cost`` seconds of CPU."""

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.flushes = 0
        self.flushed = asyncio.Event()
        self.flushed_in = 0

    def write_pending(self, shared: SharedFrames) -> int:
        """Burn ``cost`` seconds, as writing thousands of sockets would."""
        deadline = time.perf_counter() + self.cost
        while time.perf_counter() < deadline:
            pass
        self.flushes += 1
        self.flushed.set()
        return 1


async def _ticks(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_message_after_a_quiet_spell_is_flushed_on_the_next_tick() -> None:
    flusher = Flusher(asyncio.get_running_loop(), lambda _: None)
    outbox = SlowOutbox(cost=MAX_FLUSH_DELAY / 2)  # well over the 1 ms that starts pacing
    flusher.mark(cast(Outbox, outbox))
    await outbox.flushed.wait()
    outbox.cost = 0.0
    await asyncio.sleep(3 * MAX_FLUSH_DELAY)  # the quiet spell: longer than any pacing
    flusher.mark(cast(Outbox, outbox))
    await _ticks(2)
    assert outbox.flushes == 2, "a flush after a quiet spell waited for a slow flush long ago"


async def test_a_message_to_other_connections_right_after_a_slow_flush_is_not_held() -> None:
    flusher = Flusher(asyncio.get_running_loop(), lambda _: None)
    slow, other = SlowOutbox(cost=MAX_FLUSH_DELAY / 2), SlowOutbox(cost=0.0)
    flusher.mark(cast(Outbox, slow))
    await slow.flushed.wait()
    flusher.mark(cast(Outbox, other))  # sparse fan-out: waiting would merge nothing
    await _ticks(2)
    assert other.flushes == 1, "a flush to other connections waited for the pacing"


async def test_marks_right_after_a_slow_flush_wait_and_are_flushed_together() -> None:
    loop = asyncio.get_running_loop()
    flusher = Flusher(loop, lambda _: None)
    slow, other = SlowOutbox(cost=MAX_FLUSH_DELAY / 2), SlowOutbox(cost=0.0)
    flusher.mark(cast(Outbox, slow))
    await slow.flushed.wait()
    marked = loop.time()
    slow.cost = 0.0
    slow.flushed.clear()
    flusher.mark(cast(Outbox, slow))
    flusher.mark(cast(Outbox, other))
    await asyncio.wait_for(other.flushed.wait(), timeout=5)
    assert slow.flushes == 2 and other.flushes == 1, "both marks go out in one flush"
    assert loop.time() - marked >= MAX_FLUSH_DELAY / 4, "the flush right after did not wait"
