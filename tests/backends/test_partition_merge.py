"""The ordered merge of partitions (docs/cluster.md 2), against a simulated cluster:
partitions numbering changes, each heard in its own order and interleaved at random,
repeats, ticks and close requests answered late."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.backends.partition_merge import PartitionMerge
from hub.backends.partitions import Partitions, close_to, next_number


class World:
    """``count`` partitions with their counters, and what each has sent the node and the
    node has not read yet (changes it watches, and ticks)."""

    def __init__(self, count: int) -> None:
        self.parts = Partitions(count)
        self.counters = list(range(count))
        self.in_flight: list[deque[tuple[str, int]]] = [deque() for _ in range(count)]
        self.watched: list[int] = []

    def commit(self, part: int, *, watched: bool, copies: int) -> None:
        number = next_number(self.counters[part], part, self.parts.count)
        self.counters[part] = number
        if watched:
            self.watched.append(number)
            self.in_flight[part].extend([("change", number)] * copies)

    def close(self, part: int, target: int) -> None:
        self.counters[part] = close_to(self.counters[part], part, self.parts.count, target)
        self.in_flight[part].append(("tick", self.counters[part]))


def _read(merge: PartitionMerge[int], world: World, part: int) -> list[int]:
    kind, number = world.in_flight[part].popleft()
    return merge.heard(number, number) if kind == "change" else merge.tick(part, number)


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(1, 6),
    actions=st.lists(st.tuples(st.sampled_from("cdr"), st.integers(0, 5), st.integers(0, 3))),
)
def test_the_merge_releases_every_watched_change_once_in_increasing_order(
    count: int, actions: list[tuple[str, int, int]]
) -> None:
    world = World(count)
    merge: PartitionMerge[int] = PartitionMerge(world.parts)
    released: list[int] = []
    closes: list[tuple[int, int]] = []
    for action, part_pick, extra in actions:
        part = part_pick % count
        if action == "c":  # a partition commits a change (watched or not, repeated or not)
            world.commit(part, watched=extra > 0, copies=max(1, extra - 1))
        elif action == "d" and world.in_flight[part]:  # the node reads one message
            released += _read(merge, world, part)
        elif action == "r" and closes:  # a close request is answered, late
            close_part, target = closes.pop(extra % len(closes))
            world.close(close_part, target)
            merge.close_ended(close_part)
        closes += merge.closes_wanted()
        assert all(merge.released >= n for n in released)
    for _ in range(10 * (len(actions) + count)):  # everything read, every close answered
        for part in range(count):
            while world.in_flight[part]:
                released += _read(merge, world, part)
        closes += merge.closes_wanted()
        if not closes:
            break
        for close_part, target in closes:
            world.close(close_part, target)
            merge.close_ended(close_part)
        closes = []
    assert released == sorted(set(world.watched))
    assert merge.held == 0


def test_a_change_waits_for_the_quiet_partition_and_a_close_releases_it() -> None:
    merge: PartitionMerge[str] = PartitionMerge(Partitions(3))
    assert merge.heard(4, "post 4") == []  # partition 1; partitions 0 and 2 still at 0
    assert merge.closes_wanted() == [(0, 4), (2, 4)]
    assert merge.closes_wanted() == []  # one close in flight per partition
    assert merge.tick(0, 6) == []
    assert merge.tick(2, 5) == ["post 4"]
    assert merge.released == 4
    assert merge.heard(4, "post 4") == []  # a repeat (published on another channel too)


def test_a_close_with_a_lead_keeps_a_quiet_partition_ahead_of_the_busy_one() -> None:
    merge: PartitionMerge[str] = PartitionMerge(Partitions(2), lead=100)
    assert merge.heard(1, "post 1") == []  # partition 1; partition 0 quiet at 0
    assert merge.closes_wanted() == [(0, 101)]
    merge.close_ended(0)
    assert merge.tick(0, 102) == ["post 1"]
    for number in range(3, 102, 2):  # partition 1 runs on: nothing waits, nothing to close
        assert merge.heard(number, f"post {number}") == [f"post {number}"]
        assert merge.closes_wanted() == []
    assert merge.heard(103, "post 103") == []  # past the lead: partition 0 is closed again
    assert merge.closes_wanted() == [(0, 203)]


def test_with_one_partition_a_change_is_released_at_once() -> None:
    merge: PartitionMerge[int] = PartitionMerge(Partitions(1), [7])
    assert merge.heard(8, 8) == [8]
    assert merge.closes_wanted() == []
    assert merge.released == 8


def test_watermarks_must_match_the_partitions() -> None:
    with pytest.raises(ValueError, match="2 watermarks for 3 partitions"):
        PartitionMerge(Partitions(3), [0, 0])
    with pytest.raises(ValueError, match="no partition 5"):
        PartitionMerge(Partitions(3)).tick(5, 1)
