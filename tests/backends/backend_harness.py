"""The implementations the backend contract suite runs against.

To add one, write an ``open_*`` factory returning a :class:`Backends` and add it to
``FACTORIES``; every contract test then runs against it too. The Redis factory uses one
redis-server per test session (see :func:`redis_url`), the cluster factory one
three-master Redis Cluster (:func:`cluster_url`), and both a fresh key namespace per
opened backend, so tests never see each other's data. ``Backends.raw`` reads every byte
an implementation stores (the SQLite file and its WAL; every Redis key of the namespace on
every master, by its type's reads and ``DUMP``), for tests that prove something is gone.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from hub.backends import bundle
from hub.backends.base import Bus, ChangeLog, Presence, Store
from hub.backends.memory import MemoryBus, MemoryPresence
from hub.backends.sqlite import SqliteBackend
from hub.records import Change, ChangeKind, Interest, NewChange
from hub.routing import routes_for
from tests.redisclusterproc import RedisCluster
from tests.redisproc import RedisServer


@dataclass
class Backends:
    """One implementation of every seam, plus how to release it."""

    store: Store
    changelog: ChangeLog
    bus: Bus
    presence: Presence
    close: Callable[[], Awaitable[None]]
    raw: Callable[[], Awaitable[bytes]]


class Factory(Protocol):
    """Opens a fresh set of backends with the given change-log retention."""

    def __call__(
        self,
        *,
        retention_seconds: float = 900,
        retention_per_log: int = 1000,
        retention_max_seconds: float = 86_400,
    ) -> Awaitable[Backends]: ...


async def open_embedded(
    tmp_path: Path, retention_seconds: float, retention_per_log: int, retention_max_seconds: float
) -> Backends:
    """SQLite store and change log, in-process bus and presence."""
    bus = MemoryBus()
    sqlite = await SqliteBackend.open(
        tmp_path,
        retention_seconds=retention_seconds,
        retention_per_log=retention_per_log,
        retention_max_seconds=retention_max_seconds,
        publish=bus.deliver,
    )

    async def raw() -> bytes:
        files = (sqlite.path, sqlite.path.with_name(sqlite.path.name + "-wal"))
        return b"".join(path.read_bytes() for path in files if path.exists())

    return Backends(sqlite.store, sqlite.changelog, bus, MemoryPresence(), sqlite.close, raw)


def route_keys(change: Change) -> set[str]:
    """The route keys of a change (what a node passes to the Redis change log)."""
    return {key for keys, _ in routes_for(change) for key in keys}


_servers: list[RedisServer] = []
_clusters: list[RedisCluster] = []
_namespaces = itertools.count(1)

CLUSTER_PARTITIONS = 4
"""Partitions of the contract suite's cluster backends: few, so that most pairs of users
live in different partitions and every write that spans partitions is exercised."""


def redis_url(tmp_path: Path) -> str:
    """The URL of this test session's redis-server, started on first use."""
    if not _servers:
        _servers.append(RedisServer(tmp_path.parent / "contract-redis").start())
    return _servers[0].url


def cluster_url(tmp_path: Path) -> str:
    """A seed URL of this test session's three-master Redis Cluster, started on first use."""
    if not _clusters:
        _clusters.append(RedisCluster(tmp_path.parent / "contract-cluster", masters=3).start())
    return _clusters[0].url


def stop_redis() -> None:
    """Stop the session's redis-server and Redis Cluster, if they were started."""
    while _servers:
        _servers.pop().stop()
    while _clusters:
        _clusters.pop().stop()


async def _read_key(client: aioredis.Redis, key: bytes) -> list[Any]:
    """Everything a key holds, by the reads of its type, and its ``DUMP``."""
    kind = (await client.type(key)).decode()
    reads: dict[str, Callable[[], Awaitable[Any]]] = {
        "string": lambda: client.get(key),
        "hash": lambda: client.hgetall(key),
        "list": lambda: client.lrange(key, 0, -1),
        "set": lambda: client.smembers(key),
        "zset": lambda: client.zrange(key, 0, -1, withscores=True),
        "stream": lambda: client.xrange(key),
    }
    return [key, await reads[kind](), await client.dump(key)]


async def redis_raw(url: str, namespace: str, *, cluster: bool = False) -> bytes:
    """Every key of ``namespace`` on the server (every master of the cluster) at ``url``,
    read whole."""
    client: Any = ClusterClient.from_url(url) if cluster else aioredis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}*", count=1000)]
        return repr([await _read_key(client, key) for key in sorted(keys)]).encode()
    finally:
        await client.aclose()


async def open_shared_bundle(
    kind: str, tmp_path: Path, namespace: str, **options: Any
) -> bundle.Backends:
    """A bundle on the session's redis-server (``kind`` "redis") or Redis Cluster
    ("cluster", :data:`CLUSTER_PARTITIONS` partitions) in ``namespace``, with the test
    settings (fan-out limit 3, presence TTL 1.5 s) where ``options`` say nothing."""
    settings: dict[str, Any] = {
        "route_keys": route_keys,
        "retention_seconds": 900,
        "retention_per_log": 1000,
        "fanout_limit": 3,
        "presence_ttl": 1.5,
        "namespace": namespace,
        **options,
    }
    if kind == "cluster":
        url = cluster_url(tmp_path)
        return await bundle.open_redis_cluster(url, partitions=CLUSTER_PARTITIONS, **settings)
    return await bundle.open_redis(redis_url(tmp_path), **settings)


def _shared(kind: str) -> Callable[[Path, float, int, float], Awaitable[Backends]]:
    """The contract suite's factory of ``kind`` bundles, each in a fresh namespace."""

    async def open_shared(
        tmp_path: Path,
        retention_seconds: float,
        retention_per_log: int,
        retention_max_seconds: float,
    ) -> Backends:
        namespace = f"{kind[0]}{next(_namespaces)}:"
        opened = await open_shared_bundle(
            kind,
            tmp_path,
            namespace,
            retention_seconds=retention_seconds,
            retention_per_log=retention_per_log,
            retention_max_seconds=retention_max_seconds,
        )
        url = cluster_url(tmp_path) if kind == "cluster" else redis_url(tmp_path)

        async def raw() -> bytes:
            return await redis_raw(url, namespace, cluster=kind == "cluster")

        return Backends(
            opened.store, opened.changelog, opened.bus, opened.presence, opened.close, raw
        )

    return open_shared


open_redis = _shared("redis")
"""Everything on the session's redis-server, in a fresh key namespace."""
open_cluster = _shared("cluster")
"""Everything on the session's Redis Cluster, in a fresh key namespace."""


FACTORIES = {"embedded": open_embedded, "redis": open_redis, "cluster": open_cluster}


def post_change(
    author: str, post: int, *, at: int = 0, tags: tuple[str, ...] = (), root: int | None = None
) -> NewChange:
    """A post.created change of ``author``'s post ``post``."""
    return NewChange(
        log=f"u:{author}",
        kind=ChangeKind.POST_CREATED,
        created_at=at,
        author=author,
        post=post,
        root=root,
        reply_to=root,
        tags=tags,
        recipient=None,
        data={"id": post, "author": author},
    )


def notification_change(user: str, *, at: int = 0) -> NewChange:
    """A notification change for ``user``."""
    return NewChange(
        log=f"n:{user}",
        kind=ChangeKind.NOTIFICATION,
        created_at=at,
        author="someone",
        post=None,
        root=None,
        reply_to=None,
        tags=(),
        recipient=user,
        data={"notification": {"id": 1}, "unread": 1},
    )


def interest(
    user: str = "ann",
    authors: tuple[str, ...] = ("ann",),
    *,
    public: bool = False,
    tags: tuple[str, ...] = (),
    threads: tuple[int, ...] = (),
) -> Interest:
    """An interest of ``user`` following ``authors``."""
    return Interest(user, frozenset(authors), public, frozenset(tags), frozenset(threads))
