"""The ChangeLog on Redis Cluster: one partition's logs per :class:`RedisChangeLog`, one
head and one order over all of them (docs/cluster.md 2-3).

Each partition keeps its logs as on one Redis (its authors' and recipients' streams, its
own ``log:posts``, ``pruned`` and ``logs``), under its namespace and numbered as the
partition's. This class holds one :class:`~hub.backends.redis_changelog.RedisChangeLog`
per partition and answers for all of them:

- :meth:`head` is the highest counter of all partitions, after which every partition is
  closed up to it (``PartitionCounters.close``): no partition can number a change at or
  below the head any more, so the head a sign-in takes after its subscriptions are
  confirmed splits the world into "in the replay" and "delivered live".
- :meth:`read_since` asks every partition for the part of the interest that lives there
  (the followed authors of that partition; the streams everywhere) and merges the answers
  by number, each partition examining at most ``max_examined`` entries. It is None when any
  partition's answer is (pruned, too much to examine), when
  the merged answer is over the limit, or when the cursor is beyond the head.
- :meth:`append` appends a change in the partition of its log's owner; :meth:`prune` and
  :meth:`scrub_mark` add up over the partitions.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from hub.backends.base import RouteKeys
from hub.backends.partitions import Partitions
from hub.backends.redis_changelog import RedisChangeLog
from hub.backends.redis_link import Keys, translate_errors
from hub.backends.redis_partitions import PartitionCounters
from hub.names import LogName
from hub.records import Change, Interest, NewChange

__all__ = ["ClusterChangeLog"]


@translate_errors
class ClusterChangeLog:
    """ChangeLog implementation over the partitions of a Redis Cluster (see the module
    docstring)."""

    def __init__(
        self,
        cluster: Any,
        partitions: Partitions,
        route_keys: RouteKeys,
        *,
        retention_seconds: float = 900,
        retention_per_log: int = 1000,
        retention_max_seconds: float = 86_400,
    ) -> None:
        """``cluster`` is a ``redis.asyncio.RedisCluster``; the retention applies in each
        partition as in :class:`RedisChangeLog`."""
        self._parts = partitions
        self._counters = PartitionCounters(cluster, partitions)
        self._logs = [
            RedisChangeLog(
                cluster,
                cluster,
                Keys(partitions.namespace(part)),
                route_keys,
                retention_seconds=retention_seconds,
                retention_per_log=retention_per_log,
                retention_max_seconds=retention_max_seconds,
                partition=(part, partitions.count),
            )
            for part in range(partitions.count)
        ]
        self.partitions = partitions
        """The partition map this change log reads and writes."""
        self._next_head: asyncio.Future[int] | None = None
        self._last_head: asyncio.Future[int] | None = None
        self.examined = 0
        """Stream entries the last finished :meth:`read_since` examined, all partitions."""

    @property
    def max_examined(self) -> int:
        """The cap on stream entries one :meth:`read_since` examines *in each partition*
        (``base.MAX_EXAMINED`` by default): the partitions read in parallel, each on its
        master, so a read examines at most ``count * (cap + 1)`` entries in all."""
        return self._logs[0].max_examined

    @max_examined.setter
    def max_examined(self, cap: int) -> None:
        for log in self._logs:
            log.max_examined = cap

    def _of_log(self, log: str) -> int:
        return self._parts.of_user(LogName.parse(log).owner)

    async def append(self, changes: Sequence[NewChange]) -> list[Change]:
        """Append ``changes`` in order, each in its log owner's partition (one script per
        run of changes of one partition, the partition closed up to the number before it
        first, so that the numbers increase in the order given)."""
        out: list[Change] = []
        run: list[NewChange] = []
        for change in [*changes, None]:
            if run and (change is None or self._of_log(run[0].log) != self._of_log(change.log)):
                part = self._of_log(run[0].log)
                if out:  # numbered above what this call numbered so far
                    await self._counters.close(part, out[-1].seq)
                out += await self._logs[part].append(run)
                run = []
            if change is not None:
                run.append(change)
        return out

    async def head(self) -> int:
        """The highest number any partition handed out, every partition closed up to it
        (0 when nothing was numbered).

        Concurrent calls share rounds: a call joins the round that has not started yet
        (its reads come after the call, as a sign-in's head must), or queues a new one
        behind the round running now, so a burst of sign-ins costs two rounds per round
        trip, not one each."""
        if self._next_head is None:
            self._next_head = self._last_head = asyncio.ensure_future(
                self._head_round(self._last_head)
            )
        return await asyncio.shield(self._next_head)

    async def _head_round(self, previous: asyncio.Future[int] | None) -> int:
        if previous is not None:
            await asyncio.wait([previous])
        self._next_head = None  # started: whoever calls from now on needs a later round
        heads = await self._counters.heads()
        top = max(heads)
        await asyncio.gather(
            *(self._counters.close(part, top) for part, head in enumerate(heads) if head < top)
        )
        return top

    async def scrub_mark(self) -> int:
        """The sum of the partitions' scrub counters (any scrub anywhere moves it)."""
        return sum(await asyncio.gather(*(log.scrub_mark() for log in self._logs)))

    async def read_since(self, after: int, interest: Interest, limit: int) -> list[Change] | None:
        """Changes numbered above ``after`` that ``interest`` matches, in number order,
        from every partition (see the module docstring for when it is None)."""
        if after > max(await self._counters.heads()):
            return None
        answers = await asyncio.gather(
            *(
                log.read_since(after, self._interest_in(part, interest), limit)
                for part, log in enumerate(self._logs)
            )
        )
        self.examined = sum(log.examined for log in self._logs)
        if any(answer is None for answer in answers):
            return None
        found = sorted((c for answer in answers if answer for c in answer), key=_number)
        return found if len(found) <= limit else None

    def _interest_in(self, part: int, interest: Interest) -> Interest:
        """The part of ``interest`` partition ``part`` can answer: its followed authors
        (streams and the user's own notifications are asked everywhere)."""
        authors = frozenset(a for a in interest.authors if self._parts.of_user(a) == part)
        return dataclasses.replace(interest, authors=authors)

    async def prune(self, now: int) -> int:
        """Apply the retention rule in every partition; how many changes were removed."""
        return sum(await asyncio.gather(*(log.prune(now) for log in self._logs)))


def _number(change: Change) -> int:
    return change.seq
