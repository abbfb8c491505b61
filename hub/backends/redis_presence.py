"""Presence shared by every node through Redis, with heartbeats and a sweeper.

Theory of operation: each node counts its own connections per user in memory; Redis
holds, per user, the set of node ids where that user has at least one connection
(``{u:<user>}:on``), per node the set of its users (``node:<id>:users``) and one sorted
set ``nodes`` of node id -> heartbeat expiry (milliseconds, Redis' clock). A node is
alive while its expiry lies in the future; a user is online while any node in their set
is alive. So a user connected to two nodes stays online until both connections end.

Every ``ttl / 3`` seconds each node (1) renews its expiry to ``now + ttl``; (2) retries
the leaves that failed while Redis was unreachable and, if its entry had vanished (it was
swept, or Redis lost data), re-registers every local user; (3) sweeps: takes a node whose
expiry passed, removes it from its users' sets in batches and returns the users who thus
went offline - the node that swept publishes their offline presence, exactly once, since
each batch is popped atomically. Hence **a killed node's users are announced offline
within ``ttl + ttl / 3`` seconds** (20 s with the default ``--presence-ttl 15``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

import redis.asyncio as aioredis

from hub.backends.base import BackendUnavailable
from hub.backends.redis_link import Keys, script_runner, translated
from hub.records import PresenceChange

__all__ = ["RedisPresence"]

log = logging.getLogger(__name__)

_SWEEP_BATCH = 500

_LIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function others_live(on, nodes, me)
  for _, node in ipairs(redis.call('SMEMBERS', on)) do
    if node ~= me then
      local expiry = redis.call('ZSCORE', nodes, node)
      if expiry and tonumber(expiry) > now then return true end
    end
  end
  return false
end
"""

# KEYS: on, nodes, node users. ARGV: node, user, SADD (join) or SREM (leave).
# Returns 1 when the user went online (join) or offline (leave) across all nodes.
_MEMBERSHIP = (
    _LIVE
    + """
redis.call(ARGV[3], KEYS[3], ARGV[2])
if redis.call(ARGV[3], KEYS[1], ARGV[1]) == 0 or others_live(KEYS[1], KEYS[2], ARGV[1]) then
  return 0
end
return 1
"""
)

# KEYS: nodes, then one "on" set per user. Returns 1/0 per user.
_ONLINE = (
    _LIVE
    + """
local out = {}
for i = 2, #KEYS do out[#out + 1] = others_live(KEYS[i], KEYS[1], '') and 1 or 0 end
return out
"""
)

# KEYS: nodes. ARGV: ns, batch. Returns {'idle'} or {'more', users who went offline...}
_SWEEP = (
    _LIVE
    + """
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
if #dead == 0 then return {'idle'} end
local node = dead[1]
local users = redis.call('SPOP', ARGV[1] .. 'node:' .. node .. ':users', tonumber(ARGV[2]))
local out = {'more'}
if #users == 0 then redis.call('ZREM', KEYS[1], node) return out end
for _, user in ipairs(users) do
  local on = ARGV[1] .. '{u:' .. user .. '}:on'
  if redis.call('SREM', on, node) == 1 and not others_live(on, KEYS[1], node) then
    out[#out + 1] = user
  end
end
return out
"""
)

Publish = Callable[[PresenceChange], Awaitable[None]]


class RedisPresence:
    """Presence implementation over Redis (see the module docstring)."""

    def __init__(
        self, client: aioredis.Redis, writer: aioredis.Redis, keys: Keys, ttl: float
    ) -> None:
        self.node_id = uuid.uuid4().hex[:16]
        self.ttl = ttl
        self.healthy = False
        self._r = client
        self._k = keys
        self._local: Counter[str] = Counter()
        self._joined: set[str] = set()
        self._stale: set[str] = set()
        self._membership = script_runner(writer, _MEMBERSHIP)
        self._online = script_runner(client, _ONLINE)
        self._sweep = script_runner(writer, _SWEEP)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def _join(self, user: str) -> bool:
        """Add this node to the user's set; True when the user thus went online."""
        return bool(await self._membership(self._keys(user), [self.node_id, user, "SADD"]))

    async def _leave(self, user: str) -> bool:
        """Remove this node from the user's set; True when the user thus went offline."""
        return bool(await self._membership(self._keys(user), [self.node_id, user, "SREM"]))

    def _keys(self, user: str) -> list[str]:
        k = self._k
        return [k.user(user, "on"), k.global_("nodes"), k.global_(f"node:{self.node_id}:users")]

    @translated
    async def connect(self, user: str) -> bool:
        """Count a connection; True when the user went from no connection anywhere to one."""
        self._local[user] += 1
        if self._local[user] > 1:
            return False
        self._stale.discard(user)
        try:
            went_online = await self._join(user)
        except BaseException:
            self._forget(user)
            raise
        self._joined.add(user)
        return went_online

    def _forget(self, user: str) -> None:
        self._local[user] -= 1
        if self._local[user] <= 0:
            del self._local[user]

    async def disconnect(self, user: str) -> bool:
        """Count a closed connection; True when the user has no connection on any node.

        While Redis is unreachable the leave is remembered, retried by the heartbeat and
        announced then; the call itself answers False.
        """
        self._forget(user)
        if user in self._local:
            return False
        self._joined.discard(user)
        try:
            return await translated(self._leave)(user)
        except BackendUnavailable:
            self._stale.add(user)
            return False

    @translated
    async def online(self, users: Iterable[str]) -> set[str]:
        """The users among ``users`` with a connection on a live node."""
        wanted = list(dict.fromkeys(users))
        if not wanted:
            return set()
        keys = [self._k.global_("nodes"), *(self._k.user(u, "on") for u in wanted)]
        flags = await self._online(keys, [])
        return {user for user, flag in zip(wanted, flags, strict=True) if flag}

    # -- heartbeat and sweeping ---------------------------------------------------

    async def beat(self) -> list[PresenceChange]:
        """One heartbeat (see the module docstring); return the changes to announce."""
        changes: list[PresenceChange] = []
        nodes = self._k.global_("nodes")
        expiry_ms = round(self.ttl * 1000)
        (now_s, now_us) = await self._r.time()
        expiry = now_s * 1000 + now_us // 1000 + expiry_ms
        renewed = await self._r.zadd(nodes, {self.node_id: expiry})
        if renewed or not self.healthy:
            for user in list(self._joined):
                if await self._join(user):
                    changes.append(PresenceChange(user, True))
        for user in list(self._stale):
            self._stale.discard(user)
            if user not in self._local and await self._leave(user):
                changes.append(PresenceChange(user, False))
        while True:
            status, *offline = await self._sweep([nodes], [self._k.ns, _SWEEP_BATCH])
            changes.extend(PresenceChange(user, False) for user in offline)
            if status == "idle":
                return changes

    async def start(self, publish: Publish) -> None:
        """Beat once now, then every ``ttl / 3`` seconds, publishing what :meth:`beat`
        returns."""
        for change in await translated(self.beat)():
            await publish(change)
        self.healthy = True
        self._task = asyncio.get_running_loop().create_task(self._beat_forever(publish))

    async def _beat_forever(self, publish: Publish) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.ttl / 3)
            try:
                changes = await translated(self.beat)()
            except BackendUnavailable as exc:
                if self.healthy:
                    log.warning("presence heartbeat failed: %s", exc)
                self.healthy = False
            else:
                self.healthy = True
                for change in changes:
                    await publish(change)

    async def close(self) -> None:
        """Stop heartbeating and remove this node's entry (its users have left)."""
        self._stop.set()
        if self._task is not None:
            await self._task
        with contextlib.suppress(BackendUnavailable):
            await translated(self._r.zrem)(self._k.global_("nodes"), self.node_id)
