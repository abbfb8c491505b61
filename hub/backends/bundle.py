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

__all__ = ["Backends", "open_embedded", "open_redis"]


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
    bus.start()
    try:
        await presence.start(bus.publish)
        async with asyncio.timeout(10):
            await bus.settled()
    except BaseException:
        await presence.close()
        await bus.close()
        await probe.close()
        await _close_clients(client, writer, renewer)
        raise
    probe.start()
    limits.start()

    async def close() -> None:
        await probe.close()
        await limits.close()
        await presence.close()
        await bus.close()
        await _close_clients(client, writer, renewer)

    def healthy() -> bool:
        return probe.ok and bus.connected

    return Backends(store, changelog, bus, presence, close, healthy, limits)


async def _close_clients(*clients: Any) -> None:
    for client in clients:
        await client.aclose()
