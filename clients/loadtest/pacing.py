"""Pacing helpers: open many connections at a ramp rate, wait for deliveries to settle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

__all__ = ["ramped", "settle"]


async def ramped(
    items: Iterable[int], start: Callable[[int], Awaitable[object]], rate: float, concurrency: int
) -> None:
    """Run ``start(item)`` for every item, at most ``rate`` per second (0: no limit)
    and at most ``concurrency`` at once."""
    gate = asyncio.Semaphore(max(concurrency, 1))
    began = time.monotonic()

    async def one(item: int) -> None:
        try:
            await start(item)
        finally:
            gate.release()

    tasks = []
    for index, item in enumerate(items):
        if rate > 0:
            delay = began + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await gate.acquire()
        tasks.append(asyncio.create_task(one(item)))
    await asyncio.gather(*tasks)


async def settle(count: Callable[[], int], quiet: float, limit: float = 60.0) -> None:
    """Return once ``count()`` has not changed for ``quiet`` seconds (or after ``limit``)."""
    deadline = time.monotonic() + limit
    last = count()
    changed = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(min(quiet / 4, 0.25))
        now = count()
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed >= quiet:
            return
