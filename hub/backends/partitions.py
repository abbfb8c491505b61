"""The partition map of a Redis deployment and how partitions number their changes.

See ``docs/cluster.md`` sections 1 and 2: the world is split into ``count`` partitions,
each owning one hash tag (so one cluster slot); partition ``i`` numbers its changes with
the integers congruent to ``i`` modulo ``count``, above its counter and above any floor
it is given, so that no two partitions ever hand out the same number and no key is touched
by every write. With ``count == 1`` the numbering is 1, 2, 3, ... as on one Redis.

:data:`NUMBERING_LUA` is the numbering in Lua (``next_number``, ``close_to``) for the
partition scripts; :func:`next_number` and :func:`close_to` are the same rules in Python,
which the tests hold the Lua to.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from hub.names import DevicesKey, FollowersKey, RouteKey, StreamKind

__all__ = ["NUMBERING_LUA", "NumberClock", "Partitions", "close_to", "next_number"]


def _at_or_above(target: int, part: int, count: int) -> int:
    """The smallest number >= ``target`` that partition ``part`` of ``count`` may use."""
    return target + (part - target) % count


def next_number(current: int, part: int, count: int, floor: int = 0) -> int:
    """The number partition ``part`` gives its next change: the first of its numbers above
    both ``current`` (its counter; ``part`` when it has none yet) and ``floor``."""
    return max(current + count, _at_or_above(floor + 1, part, count))


def close_to(current: int, part: int, count: int, target: int) -> int:
    """The counter of partition ``part`` after ``close(target)``: unchanged when it is at
    ``target`` or above, else raised to its first number at or above ``target``."""
    return current if current >= target else _at_or_above(target, part, count)


NUMBERING_LUA = """
local function at_or_above(target, part, count)
  return target + (part - target) % count
end
local function next_number(key, part, count, floor)
  local current = tonumber(redis.call('GET', key) or part)
  local n = math.max(current + count, at_or_above(floor + 1, part, count))
  redis.call('SET', key, string.format('%d', n))
  return n
end
local function close_to(key, part, count, target)
  local current = tonumber(redis.call('GET', key) or part)
  if current >= target then return current end
  current = at_or_above(target, part, count)
  redis.call('SET', key, string.format('%d', current))
  return current
end
"""
"""The numbering rules for Lua scripts (numbers stay below 2**53, exact in Lua's doubles)."""


@dataclass(frozen=True, slots=True)
class Partitions:
    """Which partition holds a user or a post, and the key names partitions own."""

    count: int
    """How many partitions the deployment has (fixed when it is created)."""
    ns: str = "hb:"
    """The namespace prefix of every key."""

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 1024:
            raise ValueError(f"partitions must be 1 to 1024, not {self.count}")

    def of_user(self, user: str) -> int:
        """The partition of ``user`` (CRC-32 of the id, modulo the count: stable across
        processes and versions, unlike Python's ``hash``)."""
        return zlib.crc32(user.encode()) % self.count

    def of_post(self, post_id: int) -> int:
        """The partition of a post (its id was numbered there, see the module docstring)."""
        return post_id % self.count

    def of_number(self, number: int) -> int:
        """The partition that handed out a change number."""
        return number % self.count

    def tag(self, part: int) -> str:
        """The hash tag of partition ``part``: every key of the partition contains it
        (with more than one partition)."""
        return f"{{{self.ns}P{part}}}"

    def namespace(self, part: int) -> str:
        """The key prefix of partition ``part``: the namespace and the partition's tag, so
        that every key a script builds from it (``ns .. '{u:' .. user ..``) lands in the
        partition's slot; with one partition the namespace alone (one Redis, its layout
        unchanged)."""
        return self.ns if self.count == 1 else self.ns + self.tag(part)

    def key(self, part: int, name: str) -> str:
        """The key ``name`` of partition ``part`` (``seq:change``, ``public``, ...)."""
        return self.namespace(part) + name

    def counter(self, part: int) -> str:
        """The change counter of partition ``part`` (``seq:change`` on one Redis)."""
        return self.key(part, "seq:change")

    def channels(self, key: RouteKey) -> list[tuple[int, str]]:
        """The shard channels of route key ``key``, each with its partition: a user's
        keys have one, in the user's partition; a thread's one, in its root post's; the
        public stream and a hashtag's one per partition (docs/cluster.md 1)."""
        if isinstance(key, FollowersKey | DevicesKey):
            parts = [self.of_user(key.author if isinstance(key, FollowersKey) else key.user)]
        elif key.stream.kind == StreamKind.THREAD:
            parts = [self.of_post(key.stream.thread)]
        else:
            parts = list(range(self.count))
        return [(part, self.key(part, f"c:{key}")) for part in parts]

    def tick_channel(self, part: int) -> str:
        """The shard channel partition ``part`` publishes its closed counter on."""
        return self.key(part, "c:_tick")


class NumberClock:
    """The highest change number this node has seen (a Lamport clock over partitions).

    The node's writes number above it (their *floor*): a change a client saw, or that the
    node itself committed, comes before everything written after it, whichever partition
    holds it, and the partitions' numbers stay roughly in step with time, so that ids
    ordered by number are ordered by when they were written (docs/cluster.md 2)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def saw(self, number: int) -> None:
        """A change numbered ``number`` was committed or heard."""
        self.value = max(self.value, number)
