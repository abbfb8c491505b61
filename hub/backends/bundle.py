"""The set of seams one node runs on, and how to open the configured set."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hub.backends.base import BackendUnavailable, Bus, ChangeLog, Presence, RouteKeys, Store
from hub.backends.limits import MemoryUserLimits, UserLimits, UserQuotas
from hub.backends.memory import MemoryBus, MemoryPresence
from hub.backends.sqlite import SqliteBackend
from hub.records import Change

__all__ = ["DEFAULT_PARTITIONS", "Backends", "open_embedded", "open_redis", "open_redis_cluster"]

DEFAULT_PARTITIONS = 16
"""Partitions of a new deployment on Redis Cluster (docs/cluster.md 1)."""


def _always() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Backends:
    """A store, a change log, a bus, presence and per-user limits, plus how to release
    them.

    ``healthy`` tells whether the shared backend is reachable right now (the node is
    not ready while it is not).
    """

    store: Store
    changelog: ChangeLog
    bus: Bus
    presence: Presence
    close: Callable[[], Awaitable[None]]
    healthy: Callable[[], bool] = _always
    limits: UserLimits = field(default_factory=MemoryUserLimits)


async def open_embedded(
    data_dir: Path,
    *,
    synchronous: Literal["normal", "full"],
    retention_seconds: float,
    retention_per_log: int,
    retention_max_seconds: float = 86_400,
    quotas: UserQuotas | None = None,
) -> Backends:
    """The embedded default: SQLite in ``data_dir``; bus, presence and the per-user
    limits (``quotas``, default :class:`UserQuotas`) in this process."""
    bus = MemoryBus()
    sqlite = await SqliteBackend.open(
        data_dir,
        synchronous=synchronous,
        retention_seconds=retention_seconds,
        retention_per_log=retention_per_log,
        retention_max_seconds=retention_max_seconds,
        publish=bus.deliver,
    )
    limits = MemoryUserLimits(quotas)
    return Backends(
        sqlite.store, sqlite.changelog, bus, MemoryPresence(), sqlite.close, limits=limits
    )


async def open_redis(
    url: str,
    *,
    route_keys: RouteKeys,
    retention_seconds: float,
    retention_per_log: int,
    fanout_limit: int,
    presence_ttl: float,
    namespace: str | None = None,
    retention_max_seconds: float = 86_400,
    quotas: UserQuotas | None = None,
) -> Backends:
    """Everything in Redis at ``url``, shared with every node using the same URL.

    ``route_keys`` names the route keys a change is published under; ``fanout_limit``
    is the follower count from which an author's posts are merged on read instead of
    fanned out; ``presence_ttl`` how long a silent node's users stay online (and its
    connections count against ``quotas``, the per-user limits). Raises
    BackendUnavailable when Redis cannot be reached, ValueError for a bad URL.

    ``healthy()`` is False while Redis does not answer the probe's PING within a second
    or the bus's subscriber connection is down or silent: both are checked every 0.5 s,
    so a frozen or unreachable Redis makes the node not ready within 1.5 s, and ready
    again within about a second of its return (see ``redis_link.RedisProbe`` and
    ``redis_bus``). The presence heartbeat plays no part in it.
    """
    from hub.backends.redis_bus import RedisBus  # noqa: PLC0415 - only this path needs redis
    from hub.backends.redis_changelog import RedisChangeLog  # noqa: PLC0415
    from hub.backends.redis_limits import RedisUserLimits  # noqa: PLC0415
    from hub.backends.redis_link import (  # noqa: PLC0415
        DEFAULT_NAMESPACE,
        Keys,
        RedisProbe,
        connect,
        translated,
    )
    from hub.backends.redis_presence import RedisPresence  # noqa: PLC0415
    from hub.backends.redis_store import RedisStore  # noqa: PLC0415

    keys = Keys(namespace or DEFAULT_NAMESPACE)
    try:
        client = connect(url)  # reads: one quick retry on a dropped connection
    except ValueError as exc:
        raise ValueError(f"bad Redis URL {url!r}: {exc}; e.g. redis://127.0.0.1:6379/0") from exc
    writer = connect(url, retries=0)  # write scripts: never sent twice
    try:
        await translated(client.ping)()
    except BackendUnavailable as exc:
        await _close_clients(client, writer)
        raise BackendUnavailable(f"cannot reach Redis at {url}: is it running? ({exc})") from exc
    store = RedisStore(client, writer, keys, fanout_limit, route_keys)
    changelog = RedisChangeLog(
        client,
        writer,
        keys,
        route_keys,
        retention_seconds=retention_seconds,
        retention_per_log=retention_per_log,
        retention_max_seconds=retention_max_seconds,
    )
    bus = RedisBus(url, client, keys)
    renewer = connect(url, pool_size=1)  # heartbeats never queue behind a burst
    presence = RedisPresence(client, writer, keys, presence_ttl, renewer=renewer)
    limits = RedisUserLimits(
        writer,
        keys,
        quotas or UserQuotas(),
        node_id=presence.node_id,
        interval=presence_ttl / 3,
    )
    probe = RedisProbe(url, on_recovery=presence.wake)

    async def release() -> None:
        await probe.close()
        await _close_clients(client, writer, renewer)

    close = await _started(bus, presence, limits, release)
    probe.start()

    def healthy() -> bool:
        return probe.ok and bus.connected

    return Backends(store, changelog, bus, presence, close, healthy, limits)


async def open_redis_cluster(
    url: str,
    *,
    route_keys: RouteKeys,
    retention_seconds: float,
    retention_per_log: int,
    fanout_limit: int,
    presence_ttl: float,
    partitions: int = DEFAULT_PARTITIONS,
    namespace: str | None = None,
    retention_max_seconds: float = 86_400,
    quotas: UserQuotas | None = None,
) -> Backends:
    """Everything on the Redis Cluster that ``url`` names a node of, in ``partitions``
    partitions (docs/cluster.md), shared with every node using the same cluster.

    The options mean what they mean for :func:`open_redis`. The partition count is fixed
    when the first node opens the deployment: a node given another count is refused with
    ValueError. ``healthy()`` is False while any partition's master is unreachable (its
    bus subscriber is down): live delivery waits for that partition (section 5).
    """
    from hub.backends.partitions import NumberClock, Partitions  # noqa: PLC0415 - cluster only
    from hub.backends.redis_cluster_bus import ClusterBus  # noqa: PLC0415
    from hub.backends.redis_cluster_changelog import ClusterChangeLog  # noqa: PLC0415
    from hub.backends.redis_cluster_presence import (  # noqa: PLC0415
        ClusterPresence,
        ClusterUserLimits,
    )
    from hub.backends.redis_cluster_store import ClusterStore  # noqa: PLC0415
    from hub.backends.redis_link import DEFAULT_NAMESPACE, connect_cluster  # noqa: PLC0415

    ns = namespace or DEFAULT_NAMESPACE
    try:
        client = connect_cluster(url)
    except ValueError as exc:
        raise ValueError(f"bad Redis URL {url!r}: {exc}; e.g. redis://127.0.0.1:7000/0") from exc
    writer = connect_cluster(url, retries=0)  # write scripts: never sent twice
    try:
        await _agree_on_partitions(client, writer, ns, partitions)
    except BaseException as exc:
        await _close_clients(client, writer)
        if isinstance(exc, BackendUnavailable):
            raise BackendUnavailable(
                f"cannot reach the Redis Cluster at {url}: is it running? ({exc})"
            ) from exc
        raise
    parts = Partitions(partitions, ns)
    clock = NumberClock()  # writes number above what this node saw (docs/cluster.md 2)
    store = ClusterStore(client, writer, parts, fanout_limit, route_keys, clock=clock)
    changelog = ClusterChangeLog(
        writer,
        parts,
        route_keys,
        retention_seconds=retention_seconds,
        retention_per_log=retention_per_log,
        retention_max_seconds=retention_max_seconds,
    )
    bus = ClusterBus(client, parts)
    bus.subscribe(lambda message: clock.saw(message.seq) if isinstance(message, Change) else None)
    presence = ClusterPresence(client, writer, parts, presence_ttl)
    limits = ClusterUserLimits(
        writer, parts, quotas or UserQuotas(), node_id=presence.node_id, interval=presence_ttl / 3
    )
    close = await _started(bus, presence, limits, lambda: _close_clients(client, writer))

    def healthy() -> bool:
        return bus.connected

    return Backends(store, changelog, bus, presence, close, healthy, limits)


async def _started(
    bus: Any, presence: Any, limits: Any, release: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """Start the bus, the presence heartbeat (publishing on the bus) and the limits, once
    the bus has subscribed; return how to close them all, then ``release`` the rest (the
    clients). If the start fails, everything is closed and released, and it raises."""
    bus.start()
    try:
        await presence.start(bus.publish)
        async with asyncio.timeout(10):
            await bus.settled()
    except BaseException:
        await presence.close()
        await bus.close()
        await release()
        raise
    limits.start()

    async def close() -> None:
        await limits.close()
        await presence.close()
        await bus.close()
        await release()

    return close


async def _agree_on_partitions(client: Any, writer: Any, ns: str, partitions: int) -> None:
    """Record the deployment's partition count on first use; refuse another one."""
    from hub.backends.redis_link import translated  # noqa: PLC0415

    await translated(client.initialize)()
    await translated(writer.initialize)()
    key = f"{ns}partitions"
    await translated(writer.set)(key, partitions, nx=True)
    recorded = int(await translated(client.get)(key))
    if recorded != partitions:
        raise ValueError(
            f"this cluster's world has {recorded} partitions: start every node with"
            f" --partitions {recorded} (the count is fixed when a deployment is created)"
        )


async def _close_clients(*clients: Any) -> None:
    for client in clients:
        await client.aclose()
