"""Coalesces like-count changes: at most one counter update per post per window."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hub.background import Background

__all__ = ["CountCoalescer"]

log = logging.getLogger(__name__)


class CountCoalescer:
    """Collects touched post ids and flushes each once per ``window`` seconds."""

    def __init__(self, window: float, flush: Callable[[int], Awaitable[None]]) -> None:
        self._window = window
        self._flush_one = flush
        self._touched: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._background = Background()

    def touch(self, post_id: int) -> None:
        """Note that ``post_id``'s counters changed; its update goes out within the window."""
        self._touched.add(post_id)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._background.spawn(self.flush())

    async def flush(self) -> None:
        """Send the counter updates of every touched post now."""
        touched, self._touched = self._touched, set()
        for post_id in sorted(touched):
            try:
                await self._flush_one(post_id)
            except Exception:
                log.exception("counter update for post %s failed", post_id)

    async def close(self) -> None:
        """Flush what is pending and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()
        await self._background.wait()
