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
``<ns>{u:<user>}:notes``          zset of notification ids; ``:notes:data`` hash id -> fields
``<ns>{u:<user>}:notes:groups``   hash kind:post -> notification id; ``:na:<kind>:<post>``
                                  set of a group's actors (see redis_notes)
``<ns>{u:<user>}:unread``         zset of unread notification ids
``<ns>{u:<user>}:log:u|n``        stream: the user's post / notification change log
``<ns>{u:<user>}:on``             set of node ids holding a connection of the user
``<ns>{u:<user>}:blocks``         zset blocked user -> relation id (page cursor)
``<ns>{u:<user>}:blocked_by``     set of the users who block the user
``<ns>{u:<user>}:mutes``          zset muted user -> relation id; ``:mute_until`` hash
                                  muted user -> end in ms ('' for none)
``<ns>{u:<user>}:muted_by``       hash muter -> end in ms ('' for none)
``<ns>mutes:ends``                zset "muter muted" -> end in ms (mutes with an end)
``<ns>{u:<user>}:rate:0|1``       hash: the user's write / follow token bucket
``<ns>{u:<user>}:conns``          hash node id -> the user's connections there
                                  (``redis_limits``)
``<ns>{p:<id>}:post``             hash of a post; ``:likes`` set of likers;
                                  ``:replies`` zset of reply ids; ``:log`` hash
                                  seq -> body of the post's logged changes
``<ns>{t:<tag>}:posts``           zset of live post ids with the tag
``<ns>public``                    zset of every live post id
``<ns>big``                       set of authors whose posts are merged on read
``<ns>seq:change|post|follow|note|relation``  counters (ids and the global change sequence)
``<ns>seq:scrub``                 counter of scrubs (edits, deletions; see redis_append)
``<ns>log:posts``                 stream: every post change (for public/tag/thread resume)
``<ns>logs``, ``<ns>pruned``, ``<ns>pruned:posts``  change-log bookkeeping
``<ns>counts:pending``            zset post id -> ms: like counters not logged yet
``<ns>notes:age``, ``notes:added``  notification pruning: by age, users to trim
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

Load and outages: commands share a bounded pool and *wait* for a free connection (up to
:data:`POOL_WAIT`) instead of failing under a burst; a Redis that is down still fails
them quickly (connection refused at once, a connect after 2 s, a frozen server's reply
after 5 s). Whether Redis answers at all is watched by :class:`RedisProbe`, on a
connection of its own so that a busy pool does not look like an outage.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterError, ResponseError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.backends.base import BackendUnavailable, BlockedWrite, MissingRecord
from hub.background import stop_task
from hub.names import LogName, RouteKey

__all__ = [
    "DEFAULT_NAMESPACE",
    "POOL_SIZE",
    "POOL_WAIT",
    "PROBE_INTERVAL",
    "PROBE_TIMEOUT",
    "UNAVAILABLE_ERRORS",
    "Keys",
    "RedisProbe",
    "connect",
    "connect_cluster",
    "raise_if_cancelled",
    "script_runner",
    "translate_errors",
    "translated",
]

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "hb:"
"""The key prefix of a hub's data."""

P = ParamSpec("P")
R = TypeVar("R")

UNAVAILABLE_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterError,
    SlotNotCoveredError,
    TryAgainError,
)
"""What a Redis that is down or restarting raises (BusyLoadingError is a ConnectionError),
and a Redis Cluster during a failover (its slots uncovered, a master down, a migration)."""


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that redis-py turned into a connection error, or swallowed
    (redis-py 8 may let a command cancelled late return normally): call it after such an
    error, and at the top of every loop of a task that awaits Redis."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


POOL_SIZE = 128
"""Redis connections one client's pool may open (a node has two: reads and writes).

Redis serves one command at a time, so more connections add no throughput; they only
let more commands wait on Redis rather than in the pool. 128 per pool keeps Redis busy
under a sign-in storm, and 30 nodes (about 8,000 connections) stay below Redis' default
``maxclients`` of 10,000."""
POOL_WAIT = 30.0
"""Seconds a command waits for a free pooled connection before it is ``unavailable``.

A burst queues: 10,000 sign-ins at a few commands each take Redis a few seconds to
serve, and every one of them should wait its turn (the old 5 s let a storm fail with
"No connection available"). A dead Redis does not hold commands here: they fail on
their own connection's timeouts (refused at once, connect 2 s, reply 5 s)."""
PROBE_INTERVAL = 0.5
"""Seconds between two PINGs of :class:`RedisProbe`."""
PROBE_TIMEOUT = 1.0
"""Seconds a probe PING may take before Redis counts as unreachable (the node is then
not ready): with :data:`PROBE_INTERVAL`, a frozen Redis is noticed within 1.5 s, far
above a PING's usual round trip (well under a millisecond)."""


def connect(url: str, *, retries: int = 1, pool_size: int = POOL_SIZE) -> aioredis.Redis:
    """A client for ``url`` answering str, failing fast (``retries`` quick retries).

    Its pool is bounded and *blocking*: under a burst of concurrent sessions, commands
    queue for one of ``pool_size`` connections (up to :data:`POOL_WAIT` seconds)
    instead of failing.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=POOL_WAIT,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns (and closes) its pool


CLUSTER_POOL_SIZE = 1000
"""Connections a cluster client may open to each master: half for commands, half for
pipelines (see :func:`connect_cluster`)."""


def connect_cluster(url: str, *, retries: int = 1) -> Any:
    """A ``redis.asyncio.RedisCluster`` for the cluster that ``url`` names one node of,
    answering str, failing fast (``retries`` quick retries after a connection error;
    redirections after a failover are followed whatever ``retries`` says). Call
    ``await client.initialize()`` before use (it reads the slot map).

    redis-py's cluster pool fails a command when all of a node's connections are busy
    instead of queueing it as the one-Redis pool does; so this client admits at most half
    of :data:`CLUSTER_POOL_SIZE` commands and half pipelines at once (each takes at most
    one connection per node), and the rest wait their turn. A pipeline may send single
    commands (after a redirection) while it holds its turn, never the other way round,
    so the two never wait on each other in a circle."""
    from redis.asyncio.cluster import ClusterPipeline, RedisCluster  # noqa: PLC0415

    class QueuedPipeline(ClusterPipeline):
        async def execute(self, *args: Any, **kwargs: Any) -> Any:
            async with pipelines:
                return await super().execute(*args, **kwargs)

    class QueuedCluster(RedisCluster):
        async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
            async with commands:
                return await super().execute_command(*args, **kwargs)

        def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
            if shard_hint:
                raise ValueError("shard_hint is not supported in cluster mode")
            return QueuedPipeline(self, transaction)  # type: ignore[abstract]

    commands = asyncio.Semaphore(CLUSTER_POOL_SIZE // 2)
    pipelines = asyncio.Semaphore(CLUSTER_POOL_SIZE // 2)
    return QueuedCluster.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        max_connections=CLUSTER_POOL_SIZE,
    )


class RedisProbe:
    """Tells whether Redis answers right now: a PING every :data:`PROBE_INTERVAL`
    seconds on a connection of its own, failed after :data:`PROBE_TIMEOUT` seconds.

    :attr:`ok` turns False on the first PING without a timely answer and True on the
    next one answered; the node is ready only while it is True. One WARNING is logged
    per outage (not per failed PING), and ``on_recovery`` is called when it ends.
    """

    def __init__(self, url: str, on_recovery: Callable[[], None] | None = None) -> None:
        self.ok = True
        self._client = connect(url, retries=0, pool_size=1)
        self._on_recovery = on_recovery
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start probing."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop probing and close the probe's connection."""
        await stop_task(self._task)
        await self._client.aclose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        down_since = 0.0
        while True:
            raise_if_cancelled()
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    await self._client.ping()
            except UNAVAILABLE_ERRORS as exc:  # TimeoutError is an OSError
                raise_if_cancelled()
                if self.ok:
                    down_since = loop.time()
                    reason = str(exc) or f"no answer to PING within {PROBE_TIMEOUT:g} s"
                    log.warning("redis unreachable (%s): node not ready", reason)
                self.ok = False
            else:
                if not self.ok:
                    log.info("redis answers again after %.1f s", loop.time() - down_since)
                    self.ok = True
                    if self._on_recovery is not None:
                        self._on_recovery()
            await asyncio.sleep(PROBE_INTERVAL)


def translated(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn Redis connection errors into BackendUnavailable, and script errors tagged
    ``MISSING`` into MissingRecord and ``BLOCKED`` into BlockedWrite."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (BackendUnavailable, BlockedWrite, MissingRecord):
            raise  # translated already (one translated method calling another)
        except UNAVAILABLE_ERRORS as exc:
            raise BackendUnavailable(f"redis unavailable: {exc}") from exc
        except ResponseError as exc:
            if "MISSING" in str(exc):
                raise MissingRecord(str(exc).split("MISSING", 1)[1].strip()) from exc
            if "BLOCKED" in str(exc):
                raise BlockedWrite(str(exc).split("BLOCKED", 1)[1].strip()) from exc
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
        """The stream of the change log named ``log`` (``hub.names.LogName``)."""
        name = LogName.parse(log)
        return self.user(name.owner, f"log:{name.kind}")

    def channel(self, route_key: RouteKey) -> str:
        """The pub/sub channel of a route key."""
        return f"{self.ns}c:{route_key}"

    def control_channel(self) -> str:
        """A channel no route key has, which every bus connection subscribes to."""
        return f"{self.ns}c:_"

    def global_(self, name: str) -> str:
        """A key shared by the whole hub (``public``, ``seq:post``, ``nodes``, ...)."""
        return self.ns + name


def script_runner(
    client: aioredis.Redis, source: str, *, sharded: bool = False
) -> Callable[[list[str], list[Any]], Awaitable[Any]]:
    """A caller of a Lua script by EVALSHA (reloaded by redis-py after a restart).

    ``sharded`` makes the script publish with ``SPUBLISH`` (on a cluster: shard channels
    in the script's own slot, docs/cluster.md) where it says ``PUBLISH``.

    Scripts that write get a ``client`` made with ``retries=0``: a connection lost after
    Redis ran the script but before its reply arrived must not run it a second time
    (a post created twice); the caller answers ``unavailable`` and the client decides.
    """
    if sharded:
        source = source.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")
    script = client.register_script(source)

    async def run(keys: list[str], args: list[Any]) -> Any:
        return await script(keys=keys, args=args)

    return run
