"""The implementations the backend contract suite runs against.

To add one, write an ``open_*`` factory returning a :class:`Backends` and add it to
``FACTORIES``; every contract test then runs against it too. The Redis factory uses one
redis-server per test session (see :func:`redis_url`), and a fresh key namespace per
opened backend, so tests never see each other's data.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hub.backends.base import Bus, ChangeLog, Presence, Store
from hub.backends.bundle import open_redis as open_redis_bundle
from hub.backends.memory import MemoryBus, MemoryPresence
from hub.backends.sqlite import SqliteBackend
from hub.records import Change, ChangeKind, Interest, NewChange
from hub.routing import routes_for
from tests.redisproc import RedisServer


@dataclass
class Backends:
    """One implementation of every seam, plus how to release it."""

    store: Store
    changelog: ChangeLog
    bus: Bus
    presence: Presence
    close: Callable[[], Awaitable[None]]


class Factory(Protocol):
    """Opens a fresh set of backends with the given change-log retention."""

    def __call__(
        self, *, retention_seconds: float = 900, retention_per_log: int = 1000
    ) -> Awaitable[Backends]: ...


async def open_embedded(
    tmp_path: Path, retention_seconds: float, retention_per_log: int
) -> Backends:
    """SQLite store and change log, in-process bus and presence."""
    bus = MemoryBus()
    sqlite = await SqliteBackend.open(
        tmp_path,
        retention_seconds=retention_seconds,
        retention_per_log=retention_per_log,
        publish=bus.deliver,
    )
    return Backends(sqlite.store, sqlite.changelog, bus, MemoryPresence(), sqlite.close)


def route_keys(change: Change) -> set[str]:
    """The route keys of a change (what a node passes to the Redis change log)."""
    return {key for keys, _ in routes_for(change) for key in keys}


_servers: list[RedisServer] = []
_namespaces = itertools.count(1)


def redis_url(tmp_path: Path) -> str:
    """The URL of this test session's redis-server, started on first use."""
    if not _servers:
        _servers.append(RedisServer(tmp_path.parent / "contract-redis").start())
    return _servers[0].url


def stop_redis() -> None:
    """Stop the session's redis-server, if one was started."""
    while _servers:
        _servers.pop().stop()


async def open_redis(tmp_path: Path, retention_seconds: float, retention_per_log: int) -> Backends:
    """Everything on the session's redis-server, in a fresh key namespace."""
    opened = await open_redis_bundle(
        redis_url(tmp_path),
        route_keys=route_keys,
        retention_seconds=retention_seconds,
        retention_per_log=retention_per_log,
        fanout_limit=3,
        presence_ttl=1.5,
        namespace=f"t{next(_namespaces)}:",
    )
    return Backends(opened.store, opened.changelog, opened.bus, opened.presence, opened.close)


FACTORIES = {"embedded": open_embedded, "redis": open_redis}


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
