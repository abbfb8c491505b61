"""Presence and per-user limits on Redis Cluster: each user's in their partition.

:class:`ClusterPresence` is one :class:`~hub.backends.redis_presence.RedisPresence` per
partition, all under one node id: partition ``i``'s keeps the heartbeats of the nodes in
its own ``nodes`` set, the ``on`` sets of its users and each node's set of its users
there, so every presence script stays in one partition (docs/cluster.md 1). A user's
joins and leaves go to the user's partition; ``online`` asks each partition about its
users. Each partition's heartbeat, sweep and hand-off run as on one Redis, so a killed
node's users go offline partition by partition within the same bound.

:class:`ClusterUserLimits` keeps the rate buckets and connection counts of each user in
the user's partition, counted against the heartbeats of that partition's ``nodes``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from hub.backends.limits import UserQuotas
from hub.backends.partitions import Partitions
from hub.backends.redis_cluster_keys import RoutedKeys
from hub.backends.redis_limits import RedisUserLimits
from hub.backends.redis_link import Keys
from hub.backends.redis_presence import RedisPresence
from hub.records import PresenceChange

__all__ = ["ClusterPresence", "ClusterUserLimits"]

Publish = Callable[[PresenceChange], Awaitable[None]]


class ClusterPresence:
    """Presence implementation over the partitions of a Redis Cluster (module docstring)."""

    def __init__(
        self,
        client: Any,
        writer: Any,
        partitions: Partitions,
        ttl: float,
        *,
        renewer: Any | None = None,
    ) -> None:
        self.node_id = uuid.uuid4().hex[:16]
        self.ttl = ttl
        self._map = partitions
        self._parts = [
            RedisPresence(
                client,
                writer,
                Keys(partitions.namespace(part)),
                ttl,
                renewer=renewer,
                node_id=self.node_id,
            )
            for part in range(partitions.count)
        ]

    @property
    def healthy(self) -> bool:
        """Whether the last heartbeat of every partition reached Redis."""
        return all(part.healthy for part in self._parts)

    def _of(self, user: str) -> RedisPresence:
        return self._parts[self._map.of_user(user)]

    async def connect(self, user: str) -> bool:
        """Count a connection; True when the user went from no connection anywhere to one."""
        return await self._of(user).connect(user)

    async def disconnect(self, user: str) -> bool:
        """Count a closed connection; True when the user has no connection on any node."""
        return await self._of(user).disconnect(user)

    async def online(self, users: Iterable[str]) -> set[str]:
        """The users among ``users`` with a connection on a live node."""
        by_part: dict[int, list[str]] = {}
        for user in dict.fromkeys(users):
            by_part.setdefault(self._map.of_user(user), []).append(user)
        found = await asyncio.gather(
            *(self._parts[part].online(group) for part, group in by_part.items())
        )
        return set().union(*found)

    async def hand_off(self, grace: float) -> None:
        """This node goes away: each partition's users go offline after ``grace`` unless
        connected elsewhere (``RedisPresence.hand_off``)."""
        await asyncio.gather(*(part.hand_off(grace) for part in self._parts))

    def wake(self) -> None:
        """Renew every partition's heartbeat now (Redis is back)."""
        for part in self._parts:
            part.wake()

    async def start(self, publish: Publish) -> None:
        """Beat in every partition now, then every ``ttl / 3`` seconds."""
        for part in self._parts:
            await part.start(publish)

    async def close(self) -> None:
        """Stop heartbeating in every partition and remove this node's entries."""
        await asyncio.gather(*(part.close() for part in self._parts))


class ClusterUserLimits(RedisUserLimits):
    """Per-user limits with each user's buckets and counts in the user's partition."""

    def __init__(
        self,
        writer: Any,
        partitions: Partitions,
        quotas: UserQuotas,
        *,
        node_id: str,
        interval: float,
    ) -> None:
        """``node_id`` is the node's id in :class:`ClusterPresence`."""
        self._routed = RoutedKeys(partitions)
        super().__init__(writer, self._routed, quotas, node_id=node_id, interval=interval)

    def _nodes_key(self, user: str) -> str:
        """The heartbeats of the user's partition."""
        return self._routed.of_user(user).global_("nodes")
