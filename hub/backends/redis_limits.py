"""Per-user limits shared by every node through Redis (``hub.backends.limits``).

Key layout (next to ``redis_link``'s; all of one user's keys carry ``{u:<user>}``):

===============================  ==================================================
``<ns>{u:<user>}:rate:<n>``       hash ``tokens``, ``at`` (ms, Redis clock): token
                                  bucket ``n`` (0 writes, 1 follows); expires once full
``<ns>{u:<user>}:conns``          hash node id -> the user's connections on that node
===============================  ==================================================

**Buckets.** One script per write (:data:`_TAKE`) refills the user's buckets by Redis'
clock and spends a token of each, or none and says how long until one is due: the only
round trip a write adds. A bucket's key expires once it would be full again, so idle
users cost nothing.

**Connections.** Each node writes its own count of the user's connections into the
user's hash; an admission (:data:`_CONNECTIONS`) sums the counts of the *live* nodes,
those whose presence heartbeat (``<ns>nodes``, ``redis_presence``) lies in the future,
so a node that dies stops counting within ``--presence-ttl``: its users' connections
are never counted forever. A node always writes the count it holds (never an increment),
under a per-user lock, so a write that failed (Redis unreachable, or a reply lost after
the script ran) is repaired by writing again: :meth:`RedisUserLimits.start` retries them
every ``interval``. The hash expires a day after the user's last connect or disconnect
(stale entries of dead nodes go with it; a connection open that long counts no more,
which can only admit more).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from hub.backends.base import BackendUnavailable
from hub.backends.limits import Throttled, UserQuotas
from hub.backends.redis_link import Keys, script_runner, translated
from hub.background import stop_task

__all__ = ["RedisUserLimits"]

log = logging.getLogger(__name__)

CONNECTIONS_TTL_MS = 24 * 3600 * 1000
"""How long a user's connection counts outlive their last connect or disconnect."""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
-- The tokens in bucket `key` now (rate: tokens per ms).
local function level(key, rate, burst)
  local saved = redis.call('HMGET', key, 'tokens', 'at')
  if not saved[1] then return burst end
  return math.min(burst, tonumber(saved[1]) + (now - tonumber(saved[2])) * rate)
end
local function store(key, tokens, rate, burst)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate) + 1000)
end
"""

# KEYS: the user's buckets. ARGV: per bucket, its rate (tokens per second) and burst.
# Returns 0 when one token of every bucket was spent, else {bucket (0-based), ms until due}.
_TAKE = (
    _NOW
    + """
local levels = {}
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i - 1]) / 1000, tonumber(ARGV[2 * i])
  levels[i] = level(key, rate, burst)
  if levels[i] < 1 then return {i - 1, math.ceil((1 - levels[i]) / rate)} end
end
for i, key in ipairs(KEYS) do
  store(key, levels[i] - 1, tonumber(ARGV[2 * i - 1]) / 1000, tonumber(ARGV[2 * i]))
end
return 0
"""
)

# KEYS: one bucket. ARGV: its rate (per second) and burst. Returns a token spent.
_GIVE_BACK = (
    _NOW
    + """
local rate, burst = tonumber(ARGV[1]) / 1000, tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  store(KEYS[1], math.min(burst, level(KEYS[1], rate, burst) + 1), rate, burst)
end
return 1
"""
)

# KEYS: the user's conns hash, nodes. ARGV: this node, its count of the user's connections,
# the most allowed (0: set without a check), ttl (ms). Returns 1 when set, 0 when refused.
_CONNECTIONS = (
    _NOW
    + """
local others, fields = 0, redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[1] then
    local expiry = redis.call('ZSCORE', KEYS[2], fields[i])
    if expiry and tonumber(expiry) > now then others = others + tonumber(fields[i + 1]) end
  end
end
local mine, most = tonumber(ARGV[2]), tonumber(ARGV[3])
if most > 0 and others + mine > most then return 0 end
if mine > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], mine)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
"""
)


class RedisUserLimits:
    """Per-user limits over Redis (see the module docstring).

    ``node_id`` is this node's id in the presence heartbeat; ``interval`` the seconds
    between retries of connection counts that could not be written.
    """

    def __init__(
        self,
        writer: aioredis.Redis,
        keys: Keys,
        quotas: UserQuotas,
        *,
        node_id: str,
        interval: float,
    ) -> None:
        self.quotas = quotas
        self._k = keys
        self._node_id = node_id
        self._interval = interval
        self._take = script_runner(writer, _TAKE)
        self._give_back = script_runner(writer, _GIVE_BACK)
        self._connections = script_runner(writer, _CONNECTIONS)
        self._local: Counter[str] = Counter()
        """This node's admitted connections per user."""
        self._unsynced: set[str] = set()
        """Users whose count in Redis may differ from :attr:`_local`."""
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._repairer: asyncio.Task[None] | None = None

    def _nodes_key(self, user: str) -> str:
        """The heartbeat set of the nodes ``user``'s connection counts are checked against."""
        return self._k.global_("nodes")

    def _bucket_keys(self, user: str, count: int) -> list[str]:
        return [self._k.user(user, f"rate:{number}") for number in range(count)]

    @translated
    async def take(self, user: str, follow: bool = False) -> Throttled | None:
        """See :meth:`hub.backends.limits.UserLimits.take`."""
        buckets = self.quotas.buckets(follow)
        args = [value for bucket in buckets for value in bucket]
        refused = await self._take(self._bucket_keys(user, len(buckets)), args)
        if refused == 0:
            return None
        bucket, wait_ms = refused
        return self.quotas.throttled(int(bucket), int(wait_ms) / 1000)

    @translated
    async def give_back_follow(self, user: str) -> None:
        """See :meth:`hub.backends.limits.UserLimits.give_back_follow`."""
        rate, burst = self.quotas.buckets(True)[1]
        await self._give_back(self._bucket_keys(user, 2)[1:], [rate, burst])

    async def _write(self, user: str, mine: int, most: int) -> bool:
        keys = [self._k.user(user, "conns"), self._nodes_key(user)]
        args = [self._node_id, mine, most, CONNECTIONS_TTL_MS]
        try:
            written = bool(await translated(self._connections)(keys, args))
        except BaseException:
            self._unsynced.add(user)  # the script may have run: write the truth again
            raise
        self._unsynced.discard(user)
        return written

    async def connect(self, user: str) -> bool:
        """See :meth:`hub.backends.limits.UserLimits.connect`."""
        async with self._lock(user):
            if not await self._write(user, self._local[user] + 1, self.quotas.connections):
                return False
            self._local[user] += 1
            return True

    async def disconnect(self, user: str) -> None:
        """See :meth:`hub.backends.limits.UserLimits.disconnect`; while Redis is
        unreachable the count is written later (:meth:`start`)."""
        async with self._lock(user):
            self._local[user] -= 1
            if self._local[user] <= 0:
                del self._local[user]
            with contextlib.suppress(BackendUnavailable):
                await self._write(user, self._local[user], 0)

    @contextlib.asynccontextmanager
    async def _lock(self, user: str) -> AsyncIterator[None]:
        """Hold ``user``'s lock (one count write of a user at a time, in call order)."""
        lock, users = self._locks.setdefault(user, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[user]

    async def repair(self) -> None:
        """Write again the counts that could not be written (raises BackendUnavailable
        while Redis is unreachable)."""
        for user in list(self._unsynced):
            async with self._lock(user):
                if user in self._unsynced:
                    await self._write(user, self._local[user], 0)

    def start(self) -> None:
        """Retry unwritten counts every ``interval`` seconds until :meth:`close`."""
        self._repairer = asyncio.get_running_loop().create_task(self._repair_forever())

    async def _repair_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.repair()
            except BackendUnavailable as exc:
                log.debug("connection counts not written yet (%s); retrying", exc)

    async def close(self) -> None:
        """Stop retrying."""
        await stop_task(self._repairer)
