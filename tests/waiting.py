"""Waiting on state that has no event to wait for (the in-process hub's sessions, an SDK
client's counters): poll it often, fail with a name after a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["until"]


async def until(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Poll ``condition()`` every 10 ms until it holds; fail naming ``what`` after
    ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {within:g} s"
        await asyncio.sleep(0.01)
