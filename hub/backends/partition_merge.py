"""One ordered stream of changes from the ordered streams of several partitions.

See ``docs/cluster.md`` section 2. Each partition numbers its changes with its own
integers (``partitions.next_number``) and a node hears each partition's changes in that
partition's order, but the partitions interleave freely. :class:`PartitionMerge` holds a
change numbered ``s`` until every partition's *watermark* (the highest number heard from
it, by a change or by a tick) is at least ``s``: no partition can number a change below
``s`` any more, so releasing in increasing number is releasing in the one total order
every node agrees on.

It is sans-I/O: the caller feeds it what it hears (:meth:`heard`, :meth:`tick`), sends the
``close`` requests it asks for (:meth:`closes_wanted`: at most one in flight per partition,
each aimed at the highest number held, plus a lead) and reports when they end
(:meth:`close_ended`).
A number heard at or below its partition's watermark is a repeat (one change published on
several watched channels arrives once per channel) and is dropped.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from typing import Generic, TypeVar

from hub.backends.partitions import Partitions

__all__ = ["PartitionMerge"]

T = TypeVar("T")


class PartitionMerge(Generic[T]):
    """Merges the partitions' changes into increasing number (see the module docstring)."""

    def __init__(
        self, partitions: Partitions, watermarks: Iterable[int] | None = None, *, lead: int = 0
    ) -> None:
        """``lead``: how far past the highest number held a close aims, so that a quiet
        partition closed once stays ahead of the busy ones for about ``lead`` numbers
        instead of being closed again for every change."""
        self._partitions = partitions
        self._lead = lead
        count = partitions.count
        self._marks = list(watermarks) if watermarks is not None else [0] * count
        if len(self._marks) != count:
            raise ValueError(f"{len(self._marks)} watermarks for {count} partitions")
        self._held: list[tuple[int, int, T]] = []
        self._order = itertools.count()
        self._closing: set[int] = set()
        self._highest = 0
        """The highest number pushed: while anything is held, it is held too (the heap
        releases smallest first)."""
        self.released = min(self._marks)
        """Every change numbered up to this has been released (or was never held)."""

    @property
    def watermarks(self) -> tuple[int, ...]:
        """The highest number heard from each partition."""
        return tuple(self._marks)

    @property
    def held(self) -> int:
        """How many changes wait for a quieter partition's watermark."""
        return len(self._held)

    def heard(self, number: int, item: T) -> list[T]:
        """A change numbered ``number`` arrived: the items now released, in order."""
        part = self._partitions.of_number(number)
        if number <= self._marks[part]:
            return []
        self._marks[part] = number
        heapq.heappush(self._held, (number, next(self._order), item))
        self._highest = max(self._highest, number)
        return self._release()

    def follows(self, part: int, item: T, after: int = 0) -> list[T]:
        """A message without a number of its own (a follow, a relation) arrived from
        ``part``: it is released right after the last change heard from ``part``, and
        after every change numbered up to ``after`` (a follow made after a change of
        another partition, its notification, comes after it)."""
        self._check(part)
        number = max(self._marks[part], after)
        if number <= min(self._marks) and not self._held:
            return [item]
        heapq.heappush(self._held, (number, next(self._order), item))
        self._highest = max(self._highest, number)
        return self._release()

    def _check(self, part: int) -> None:
        if not 0 <= part < self._partitions.count:
            raise ValueError(f"no partition {part}")

    def tick(self, part: int, counter: int) -> list[T]:
        """Partition ``part`` said its counter is ``counter``: the items now released."""
        self._check(part)
        self._marks[part] = max(self._marks[part], counter)
        return self._release()

    def closes_wanted(self) -> list[tuple[int, int]]:
        """The ``(partition, target)`` closes to send now: for every partition whose
        watermark is below the highest number held and that has no close in flight, aimed
        at that number plus the lead. They count as in flight until :meth:`close_ended`."""
        if not self._held:
            return []
        target = self._highest + self._lead
        wanted = [
            (part, target)
            for part, mark in enumerate(self._marks)
            if mark < self._highest and part not in self._closing
        ]
        self._closing.update(part for part, _ in wanted)
        return wanted

    def close_ended(self, part: int) -> None:
        """The close sent to ``part`` has been answered (or failed): another may go."""
        self._closing.discard(part)

    def _release(self) -> list[T]:
        floor = min(self._marks)
        out: list[T] = []
        while self._held and self._held[0][0] <= floor:
            number, _, item = heapq.heappop(self._held)
            out.append(item)
            self.released = number
        self.released = max(self.released, floor)
        return out
