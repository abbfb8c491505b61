"""The partitions' counters on Redis: reading their heads and closing them (docs/cluster.md 2).

:meth:`PartitionCounters.close` runs ``close_to`` in partition ``part``'s slot and
publishes the counter it leaves on the partition's tick channel (``SPUBLISH``: a shard
channel in the same slot, so on a cluster the tick travels only within that shard), in one
script: a node that hears the tick has heard every change the partition numbered up to it,
because the partition's master publishes in the order it runs scripts.

The client may be a ``redis.asyncio.RedisCluster`` or, with one partition, a plain client:
every key a call touches is in one slot, so both route it the same way.
"""

from __future__ import annotations

from typing import Any

from hub.backends.partitions import NUMBERING_LUA, Partitions

__all__ = ["PartitionCounters"]

_CLOSE = (
    NUMBERING_LUA
    + """
local closed = close_to(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
redis.call('SPUBLISH', KEYS[2], string.format('%d', closed))
return closed
"""
)


class PartitionCounters:
    """Reads and closes the change counters of every partition."""

    def __init__(self, client: Any, partitions: Partitions) -> None:
        self._client = client
        self._partitions = partitions
        self._close = client.register_script(_CLOSE)

    async def head(self, part: int) -> int:
        """The counter of ``part`` now (0 before its first change or close)."""
        return int(await self._client.get(self._partitions.counter(part)) or 0)

    async def heads(self) -> list[int]:
        """The counter of every partition, in partition order (one pipelined round per
        master)."""
        parts = range(self._partitions.count)
        async with self._client.pipeline(transaction=False) as pipe:
            for part in parts:
                pipe.get(self._partitions.counter(part))
            values = await pipe.execute()
        return [int(value or 0) for value in values]

    async def close(self, part: int, target: int) -> int:
        """Raise ``part``'s counter to its first number at or above ``target`` (if below)
        and publish the counter on its tick channel; return it."""
        p = self._partitions
        keys = [p.counter(part), p.tick_channel(part)]
        return int(await self._close(keys=keys, args=[part, p.count, target]))
