"""Per-user limits across all of a user's connections and nodes: the seam and its
in-process implementation.

A user's writes (``post``, ``like``, ``follow``, ...) draw on one token bucket shared
by all their connections, beside each connection's own; their new follows on a second,
slower bucket (``follows_per_hour``, refilled continuously); and their authenticated
connections are counted against a cap. The embedded backend keeps these in this process
(:class:`MemoryUserLimits`); the Redis one shares them between nodes
(``hub.backends.redis_limits``), at one round trip per write and none per read.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hub.ratelimit import TokenBucket

__all__ = ["MemoryUserLimits", "Throttled", "UserLimits", "UserQuotas"]

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Throttled:
    """A write refused by a per-user bucket: ``why`` (which limit, for the error
    message) and the seconds until it would be allowed."""

    why: str
    retry_after: float


@dataclass(frozen=True, slots=True)
class UserQuotas:
    """The per-user limits (from the node's settings; SPEC section 10)."""

    write_rate: float = 10.0
    """Writes per second per user, on all connections together."""
    write_burst: float = 30.0
    """The burst of writes per user."""
    follows_per_hour: int = 200
    """New follows per user per hour (also their burst)."""
    connections: int = 20
    """Authenticated connections one user may hold on all nodes."""

    def buckets(self, follow: bool) -> list[tuple[float, float]]:
        """(rate per second, burst) of the buckets a write takes from: the user's writes,
        and for a follow also their follows."""
        writes = [(self.write_rate, self.write_burst)]
        follows = float(self.follows_per_hour)
        return [*writes, (follows / SECONDS_PER_HOUR, follows)] if follow else writes

    def throttled(self, bucket: int, retry_after: float) -> Throttled:
        """The refusal by bucket number ``bucket`` of :meth:`buckets`."""
        if bucket == 0:
            return Throttled("too many writes by this user (all connections)", retry_after)
        return Throttled(f"over {self.follows_per_hour} new follows per hour", retry_after)


class UserLimits(Protocol):
    """Per-user limits shared by every node of a hub (see the module docstring)."""

    quotas: UserQuotas

    async def take(self, user: str, follow: bool = False) -> Throttled | None:
        """Spend one of ``user``'s write tokens (and for a ``follow`` one follow token);
        None when allowed, else the refusal (and nothing is spent)."""
        ...

    async def give_back_follow(self, user: str) -> None:
        """Return the follow token of a follow that turned out not to be new."""
        ...

    async def connect(self, user: str) -> bool:
        """Count one more connection of ``user`` unless they hold ``quotas.connections``
        already; whether it was admitted (and counted)."""
        ...

    async def disconnect(self, user: str) -> None:
        """Count one admitted connection of ``user`` less."""
        ...


class MemoryUserLimits:
    """The per-user limits of one process (the embedded backend)."""

    PRUNE_AT = 1024
    """Buckets kept before full ones (of users idle long enough) are forgotten."""

    def __init__(
        self, quotas: UserQuotas | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.quotas = quotas or UserQuotas()
        self._clock = clock
        self._buckets: dict[tuple[str, int], TokenBucket] = {}
        self._prune_at = self.PRUNE_AT
        self._connections: Counter[str] = Counter()

    def _bucket(self, user: str, number: int, rate: float, burst: float) -> TokenBucket:
        bucket = self._buckets.get((user, number))
        if bucket is None:
            if len(self._buckets) >= self._prune_at:
                self._prune()
            bucket = self._buckets[user, number] = TokenBucket(rate, burst, self._clock)
        return bucket

    def _prune(self) -> None:
        """Forget full buckets (a new one starts full: nothing changes for anyone)."""
        for key in [key for key, bucket in self._buckets.items() if bucket.full()]:
            del self._buckets[key]
        self._prune_at = max(self.PRUNE_AT, 2 * len(self._buckets))

    async def take(self, user: str, follow: bool = False) -> Throttled | None:
        """See :meth:`UserLimits.take`."""
        buckets = [
            self._bucket(user, number, rate, burst)
            for number, (rate, burst) in enumerate(self.quotas.buckets(follow))
        ]
        for number, bucket in enumerate(buckets):
            if (wait := bucket.wait()) is not None:
                return self.quotas.throttled(number, wait)
        for bucket in buckets:
            bucket.take()
        return None

    async def give_back_follow(self, user: str) -> None:
        """See :meth:`UserLimits.give_back_follow`."""
        bucket = self._buckets.get((user, 1))
        if bucket is not None:
            bucket.give_back()

    async def connect(self, user: str) -> bool:
        """See :meth:`UserLimits.connect`."""
        if self._connections[user] >= self.quotas.connections:
            return False
        self._connections[user] += 1
        return True

    async def disconnect(self, user: str) -> None:
        """See :meth:`UserLimits.disconnect`."""
        self._connections[user] -= 1
        if self._connections[user] <= 0:
            del self._connections[user]
