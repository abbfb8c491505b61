"""Presence shared by every node through Redis, with heartbeats and a sweeper.

Theory of operation: each node counts its own connections per user in memory; Redis
holds, per user, the set of node ids where that user has at least one connection
(``{u:<user>}:on``), per node the set of its users (``node:<id>:users``) and one sorted
set ``nodes`` of node id -> heartbeat expiry (milliseconds, Redis' clock). A node is
alive while its expiry lies in the future; a user is online while any node in their set
is alive. So a user connected to two nodes stays online until both connections end.
Announcements go further: a join or leave (and a sweep) counts every node that was not
swept yet, lapsed or not, so that offline is announced once, by whoever removes the
user's last node - also right after an outage, when live nodes have not renewed yet.

Every ``ttl / 3`` seconds each node (1) renews its expiry to ``now + ttl`` (on a
connection of its own and in a task of its own: a burst of sign-ins waiting in the shared
pool must not make a live node lapse, neither by holding up the renewal's command nor by
holding up the next renewal behind a slow sweep); then, in another task, (2) retries the
leaves that failed while Redis was unreachable and, if its entry had vanished (it was
swept, or Redis lost data), re-registers every local user; (3) sweeps: takes a node whose
expiry passed, removes it from its users' sets in batches and returns the users who thus
went offline - the node that swept publishes their offline presence, exactly once, since
each batch is popped atomically. Hence **a killed node's users are announced offline
within ``ttl + ttl / 3`` seconds** (20 s with the default ``--presence-ttl 15``).

**No sweeping after an outage.** When Redis was unreachable or frozen for longer than
the TTL, *every* node's expiry passed, though the nodes are alive: they could not renew.
The first node to beat again must not sweep the others before they had their chance. So
a node sweeps only while its own heartbeat is regular: when the time between two of its
successful renewals exceeds ``ttl / 2`` (normally it is ``ttl / 3``), Redis was out of
reach long enough for others' entries to lapse, and the node does not sweep until one
more full ``ttl`` has passed, within which every live node renews (they beat every
``ttl / 3``). A node that really died meanwhile is swept that much later.

**Leaving.** A node's users leave one by one (:meth:`RedisPresence.disconnect`, atomic:
the script says whether the user is now offline everywhere). A node that shuts down
calls :meth:`RedisPresence.hand_off` instead of leaving for the users it still holds: it
stops beating and moves its expiry to ``now + grace``, so those users stay online for the
grace period, and a user who reconnected to another node meanwhile is never announced
offline; the others are swept offline by the remaining nodes after the grace period
(within ``grace + ttl / 3``).

Membership commands of one user run one at a time, in call order (a leave and a quick
re-join are never reordered on two pooled connections). Heartbeat failures log one
WARNING per outage.
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
from hub.background import stop_task
from hub.records import PresenceChange

__all__ = ["RedisPresence"]

log = logging.getLogger(__name__)

_SWEEP_BATCH = 500
HAND_OFF_TIMEOUT = 2.0
"""Seconds :meth:`RedisPresence.hand_off` may take (a frozen Redis must not hold a drain)."""

STOP_TIMEOUT = 5.0
"""Seconds the heartbeat and maintainer tasks have to stop at shutdown before they are
cancelled."""

_LIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Whether a node other than `me` in set `on` is live: not swept yet, and (for a
-- query, after = now) with its expiry in the future (membership decisions: after = -1).
local function others_live(on, nodes, me, after)
  for _, node in ipairs(redis.call('SMEMBERS', on)) do
    if node ~= me then
      local expiry = redis.call('ZSCORE', nodes, node)
      if expiry and tonumber(expiry) > after then return true end
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
if redis.call(ARGV[3], KEYS[1], ARGV[1]) == 0 or others_live(KEYS[1], KEYS[2], ARGV[1], -1) then
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
for i = 2, #KEYS do out[#out + 1] = others_live(KEYS[i], KEYS[1], '', now) and 1 or 0 end
return out
"""
)

# KEYS: nodes, node users. ARGV: node, grace (ms). Expire the node after the grace at most.
_HAND_OFF = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
if redis.call('SCARD', KEYS[2]) == 0 then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return redis.call('ZADD', KEYS[1], 'XX', 'LT', 'CH', expiry, ARGV[1])
"""

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
  if redis.call('SREM', on, node) == 1 and not others_live(on, KEYS[1], node, -1) then
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
        self,
        client: aioredis.Redis,
        writer: aioredis.Redis,
        keys: Keys,
        ttl: float,
        *,
        renewer: aioredis.Redis | None = None,
        node_id: str | None = None,
    ) -> None:
        """``renewer``, when given, is a client of its own for the renewals, so that
        they never queue behind a burst of session commands in the shared pool;
        ``node_id`` names this node (a fresh random id by default)."""
        self.node_id = node_id or uuid.uuid4().hex[:16]
        self.ttl = ttl
        self.healthy = False
        """Whether the last heartbeat reached Redis."""
        self._r = client
        self._renewer = renewer or client
        self._k = keys
        self._local: Counter[str] = Counter()
        self._joined: set[str] = set()
        self._stale: set[str] = set()
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._membership = script_runner(writer, _MEMBERSHIP)
        self._online = script_runner(client, _ONLINE)
        self._sweep = script_runner(writer, _SWEEP)
        self._hand_off = script_runner(writer, _HAND_OFF)
        self._renewed_at: float | None = None
        self._sweep_after = 0.0
        self._task: asyncio.Task[None] | None = None
        self._maintainer: asyncio.Task[None] | None = None
        self._rejoin = False
        """Whether the next upkeep re-joins every local user (the entry was re-created)."""
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._maintain_due = asyncio.Event()
        self._handed_off = False

    async def _join(self, user: str) -> bool:
        """Add this node to the user's set; True when the user thus went online."""
        return await self._member(user, "SADD")

    async def _leave(self, user: str) -> bool:
        """Remove this node from the user's set; True when the user thus went offline."""
        return await self._member(user, "SREM")

    async def _member(self, user: str, command: str) -> bool:
        lock, waiting = self._locks.setdefault(user, (asyncio.Lock(), [0]))
        waiting[0] += 1
        try:
            async with lock:
                return bool(await self._membership(self._keys(user), [self.node_id, user, command]))
        finally:
            waiting[0] -= 1
            if not waiting[0]:
                del self._locks[user]

    def _keys(self, user: str) -> list[str]:
        k = self._k
        return [k.user(user, "on"), k.global_("nodes"), self._users_key()]

    def _users_key(self) -> str:
        return self._k.global_(f"node:{self.node_id}:users")

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

    async def hand_off(self, grace: float) -> None:
        """This node goes away: stop beating and let the users it still holds go offline
        ``grace`` seconds from now, unless they are connected elsewhere by then (see the
        module docstring). Nothing is announced here; without Redis, the entry simply
        lapses within the TTL and is swept the same way."""
        await self._stop_beating()
        self._handed_off = True
        nodes = self._k.global_("nodes")
        try:
            async with asyncio.timeout(HAND_OFF_TIMEOUT):
                await translated(self._hand_off)(
                    [nodes, self._users_key()], [self.node_id, round(grace * 1000)]
                )
        except (BackendUnavailable, TimeoutError) as exc:
            log.warning(
                "presence not handed off (%s); this node's users go offline when its entry lapses",
                exc,
            )

    # -- heartbeat and sweeping ---------------------------------------------------

    async def beat(self) -> list[PresenceChange]:
        """One heartbeat (see the module docstring); return the changes to announce."""
        renewed = await self.renew()
        changes: list[PresenceChange] = []
        await self._maintain(renewed or not self.healthy, changes)
        return changes

    async def renew(self) -> bool:
        """Renew this node's expiry (on the renewer's own connection); True when the
        entry had vanished (swept, or Redis lost it): the users must be re-joined."""
        expiry_ms = round(self.ttl * 1000)
        (now_s, now_us) = await self._renewer.time()
        expiry = now_s * 1000 + now_us // 1000 + expiry_ms
        renewed = await self._renewer.zadd(self._k.global_("nodes"), {self.node_id: expiry})
        self._note_renewal()
        return bool(renewed)

    async def _maintain(self, rejoin: bool, changes: list[PresenceChange]) -> None:
        """The rest of a heartbeat, on the shared pool: re-join every local user when
        ``rejoin``, retry failed leaves, sweep. Appends the changes to announce as they
        are made, so that a failure part-way loses none of those already made."""
        if rejoin:
            for user in list(self._joined):
                if await self._join(user):
                    changes.append(PresenceChange(user, True))
        for user in list(self._stale):
            offline = user not in self._local and await self._leave(user)
            self._stale.discard(user)  # only once left: a failed leave is retried
            if offline:
                changes.append(PresenceChange(user, False))
        if asyncio.get_running_loop().time() < self._sweep_after:
            return
        nodes = self._k.global_("nodes")
        while True:
            status, *offline_users = await self._sweep([nodes], [self._k.ns, _SWEEP_BATCH])
            changes.extend(PresenceChange(user, False) for user in offline_users)
            if status == "idle":
                return

    def _note_renewal(self) -> None:
        """Hold sweeping for one TTL when this renewal came late (see the module)."""
        now = asyncio.get_running_loop().time()
        last, self._renewed_at = self._renewed_at, now
        if last is not None and now - last > self.ttl / 2:
            self._sweep_after = now + self.ttl
            log.info(
                "presence renewed %.1f s after the previous beat: not sweeping for %g s",
                now - last,
                self.ttl,
            )

    def wake(self) -> None:
        """Beat now rather than at the next period (Redis just came back)."""
        self._wake.set()

    async def start(self, publish: Publish) -> None:
        """Beat once now, then every ``ttl / 3`` seconds, publishing what :meth:`beat`
        returns.

        The renewals run in a task of their own, on the renewer's connection, and the
        rest of each beat (re-joins, retried leaves, sweeps: commands that queue in the
        shared pool behind a burst of sessions) in another, which each renewal wakes:
        a slow sweep never delays the next renewal, so a busy node does not lapse."""
        for change in await translated(self.beat)():
            await publish(change)
        self.healthy = True
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._renew_forever())
        self._maintainer = loop.create_task(self._maintain_forever(publish))

    async def _renew_forever(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ttl / 3):
                    await self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                renewed = await translated(self.renew)()
            except BackendUnavailable as exc:
                if self.healthy:
                    log.warning("presence heartbeat failed (%s); retrying", exc)
                self.healthy = False
                continue
            if renewed or not self.healthy:
                self._rejoin = True
            if not self.healthy:
                log.info("presence heartbeat works again")
            self.healthy = True
            self._maintain_due.set()

    async def _maintain_forever(self, publish: Publish) -> None:
        while not self._stop.is_set():
            await self._maintain_due.wait()
            self._maintain_due.clear()
            if self._stop.is_set():
                return
            rejoin, self._rejoin = self._rejoin, False
            changes: list[PresenceChange] = []
            try:
                await translated(self._maintain)(rejoin, changes)
            except BackendUnavailable as exc:
                self._rejoin |= rejoin  # joining twice is harmless: nobody is announced twice
                log.debug("presence upkeep failed (%s); retrying at the next beat", exc)
            except Exception:
                self._rejoin |= rejoin
                log.exception("presence upkeep failed; retrying at the next beat")
            finally:
                for change in changes:
                    await publish(change)

    async def _stop_beating(self) -> None:
        """Ask the heartbeat and the maintainer to stop; cancel whichever has not ended
        within :data:`STOP_TIMEOUT` (a Redis call stuck on a dead connection must not
        hold up a shutdown)."""
        self._stop.set()
        self._wake.set()
        self._maintain_due.set()
        tasks = [task for task in (self._task, self._maintainer) if task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            for task in pending:
                log.warning("presence task %s did not stop in time; cancelled", task.get_name())
                await stop_task(task)

    async def close(self) -> None:
        """Stop heartbeating and, unless handed off, remove this node's entry (its users
        have left)."""
        await self._stop_beating()
        if self._handed_off:
            return
        with contextlib.suppress(BackendUnavailable):
            await translated(self._r.zrem)(self._k.global_("nodes"), self.node_id)
