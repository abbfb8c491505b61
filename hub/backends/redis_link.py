"""The narrow border to Redis: one client, the key layout, and error translation.

Only the ``hub.backends.redis_*`` modules import :mod:`redis`; this one owns the client.

Key layout (``<ns>`` is the namespace prefix, ``hb:`` by default). Every key that belongs
to one user carries the hash tag ``{u:<user>}``, every key of one post ``{p:<id>}`` and of
one hashtag ``{t:<tag>}``, so that a move to Redis Cluster keeps these names: all of a
user's keys land in one slot.

===============================  ==================================================
``<ns>{u:<user>}:profile``        hash: name, bio, created_at, followers, following, posts
``<ns>{u:<user>}:following``      zset followee -> follow id (page cursor)
``<ns>{u:<user>}:followers``      zset follower -> follow id
``<ns>{u:<user>}:posts``          zset of the user's live post ids
``<ns>{u:<user>}:home``           zset of fanned-out post ids (capped, see redis_store)
``<ns>{u:<user>}:notes``          zset of notification ids; ``:notes:data`` hash id -> json
``<ns>{u:<user>}:unread``         zset of unread notification ids
``<ns>{u:<user>}:log:u|n``        stream: the user's post / notification change log
``<ns>{u:<user>}:on``             set of node ids holding a connection of the user
``<ns>{p:<id>}:post``             hash of a post; ``:likes`` set of likers;
                                  ``:replies`` zset of reply ids
``<ns>{t:<tag>}:posts``           zset of live post ids with the tag
``<ns>public``                    zset of every live post id
``<ns>big``                       set of authors whose posts are merged on read
``<ns>seq:change|post|follow|note``  counters (ids and the global change sequence)
``<ns>log:posts``                 stream: every post change (for public/tag/thread resume)
``<ns>logs``, ``<ns>pruned``, ``<ns>pruned:posts``  change-log bookkeeping
``<ns>nodes``                     zset node id -> heartbeat expiry (ms, Redis clock)
``<ns>node:<id>:users``           set of users connected to that node
``<ns>c:<route key>``             pub/sub channel of a route key (``f:ann``, ``s:public``)
===============================  ==================================================

Cluster notes: the global counters (above all ``seq:change``) are hot keys in one slot,
and the Lua scripts that touch several users' keys (follow, create_post's fan-out,
append across logs) run atomically only on a single Redis. On Cluster those scripts
would be split into per-slot steps; the key names would stay as they are.

Errors: a Redis that is down, restarting or loading its AOF surfaces as
:class:`hub.backends.base.BackendUnavailable` (the session answers ``unavailable``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.backends.base import BackendUnavailable, MissingRecord

__all__ = [
    "DEFAULT_NAMESPACE",
    "UNAVAILABLE_ERRORS",
    "Keys",
    "connect",
    "raise_if_cancelled",
    "script_runner",
    "translate_errors",
    "translated",
]

DEFAULT_NAMESPACE = "hb:"
"""The key prefix of a hub's data."""

P = ParamSpec("P")
R = TypeVar("R")

UNAVAILABLE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
"""What a Redis that is down or restarting raises (BusyLoadingError is a ConnectionError)."""


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that redis-py turned into a connection error."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


POOL_SIZE = 64
"""Redis connections one node's client may open; more concurrent commands wait."""
POOL_WAIT = 5.0
"""Seconds a command waits for a free pooled connection before it is ``unavailable``."""


def connect(url: str, *, retries: int = 1) -> aioredis.Redis:
    """A client for ``url`` answering str, failing fast (``retries`` quick retries).

    Its pool is bounded and *blocking*: under a burst of concurrent sessions, commands
    queue for one of :data:`POOL_SIZE` connections instead of failing.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns (and closes) its pool


def translated(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn Redis connection errors into BackendUnavailable and script errors tagged
    ``MISSING`` into MissingRecord."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except UNAVAILABLE_ERRORS as exc:
            raise BackendUnavailable(f"redis unavailable: {exc}") from exc
        except ResponseError as exc:
            if "MISSING" in str(exc):
                raise MissingRecord(str(exc).split("MISSING", 1)[1].strip()) from exc
            raise

    return wrapper


C = TypeVar("C", bound=type)


def translate_errors(cls: C) -> C:
    """Class decorator: apply :func:`translated` to every public coroutine method."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(cls, name, translated(member))
    return cls


class Keys:
    """Builds the key names of one namespace (see the module docstring)."""

    __slots__ = ("ns",)

    def __init__(self, ns: str = DEFAULT_NAMESPACE) -> None:
        self.ns = ns

    def user(self, user: str, what: str) -> str:
        """A key of ``user`` (``profile``, ``following``, ``home``, ...)."""
        return f"{self.ns}{{u:{user}}}:{what}"

    def post(self, post_id: int | str, what: str = "post") -> str:
        """A key of one post (``post``, ``likes``, ``replies``)."""
        return f"{self.ns}{{p:{post_id}}}:{what}"

    def tag(self, tag: str) -> str:
        """The zset of live posts carrying ``tag``."""
        return f"{self.ns}{{t:{tag}}}:posts"

    def log(self, log: str) -> str:
        """The stream of change log ``log`` (``u:<author>`` or ``n:<user>``)."""
        kind, _, user = log.partition(":")
        return self.user(user, "log:" + kind)

    def channel(self, route_key: str) -> str:
        """The pub/sub channel of a route key."""
        return f"{self.ns}c:{route_key}"

    def global_(self, name: str) -> str:
        """A key shared by the whole hub (``public``, ``seq:post``, ``nodes``, ...)."""
        return self.ns + name


def script_runner(
    client: aioredis.Redis, source: str
) -> Callable[[list[str], list[Any]], Awaitable[Any]]:
    """A caller of a Lua script by EVALSHA (reloaded by redis-py after a restart).

    Scripts that write get a ``client`` made with ``retries=0``: a connection lost after
    Redis ran the script but before its reply arrived must not run it a second time
    (a post created twice); the caller answers ``unavailable`` and the client decides.
    """
    script = client.register_script(source)

    async def run(keys: list[str], args: list[Any]) -> Any:
        return await script(keys=keys, args=args)

    return run
