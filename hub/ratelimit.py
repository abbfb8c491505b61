"""Token buckets for request and write rates, and strikes that are forgiven over time."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Strikes", "TokenBucket"]


class TokenBucket:
    """Allows ``rate`` actions per second on average with bursts of up to ``burst``."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return self._tokens

    def wait(self) -> float | None:
        """``None`` if a token is there now, else the seconds until one is due (nothing
        is spent)."""
        tokens = self._refill()
        return None if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self) -> float | None:
        """Spend one token; return ``None`` if allowed, else the seconds until one is due."""
        wait = self.wait()
        if wait is None:
            self._tokens -= 1.0
        return wait

    def give_back(self) -> None:
        """Return one token spent on an action that did not count after all."""
        self._tokens = min(self.burst, self._refill() + 1.0)

    def full(self) -> bool:
        """Whether the bucket is full again (it may then be forgotten)."""
        return self._refill() >= self.burst


class Strikes:
    """Counts strikes up to ``limit``; one strike is forgiven per ``forgive`` seconds.

    Counting is exact (whole strikes, no decaying float): ``limit`` strikes within
    less than ``forgive`` seconds always reach the limit.
    """

    __slots__ = ("_clock", "_count", "_since", "forgive", "limit")

    def __init__(
        self, limit: int, forgive: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.forgive = forgive
        self._clock = clock
        self._count = 0
        self._since = 0.0
        """When the forgiving of the oldest unforgiven strike began."""

    def count(self) -> int:
        """The strikes not forgiven yet."""
        now = self._clock()
        if self._count:
            forgiven = min(self._count, int((now - self._since) // self.forgive))
            self._count -= forgiven
            self._since += forgiven * self.forgive
        return self._count

    def strike(self) -> bool:
        """Count one strike; True when the unforgiven strikes reached the limit."""
        if not self.count():
            self._since = self._clock()
        self._count += 1
        return self._count >= self.limit
