"""Blocks and mutes on Redis (keys ``blocks``, ``blocked_by``, ``mutes``, ``mute_until``
and ``muted_by`` of each user, see ``redis_link``).

A mixin of :class:`hub.backends.redis_store.RedisStore`. Each write is one Lua script
that also publishes the relation update (``{"t": "r", ..., "to": user}``) on the user
channel of each user, each copy for that user's sessions (a mute only on the muter's:
the muted user's nodes need nothing, and nothing may tell the muted user), and a block
ends the follows between the two users and publishes their follow updates
(``{"t": "f", ...}``) in the same script, so every node refiles the sessions concerned
(``redis_bus``). On a cluster each write runs as two halves, each in its user's
partition (:data:`Side`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, cast

import redis.asyncio as aioredis

from hub.backends.base import cursor_id
from hub.backends.redis_link import Keys, script_runner, translate_errors
from hub.names import DevicesKey
from hub.records import Barriers, Committed, Page, Relation, RelationKind, Relations

__all__ = ["BLOCKS_LUA", "RedisRelations", "RelationReads", "Side"]

_NO_BOUND = 2**63 - 1

# Each script does the actor's half, the target's half, or both (ARGV[1] 'actor', 'target'
# or 'both'): on one Redis both in one script; on a cluster each half in its user's
# partition, whose keys the caller names for both halves (the other half's go unused).
_SIDES = """
local side = ARGV[1]
local mine, theirs = side ~= 'target', side ~= 'actor'
local actor, target = ARGV[2], ARGV[3]
local function relation(channel, kind, on, to, extra)
  redis.call('PUBLISH', channel, '{"t":"r","actor":"' .. actor .. '","target":"' .. target ..
             '","kind":"' .. kind .. '","on":' .. on .. extra .. ',"to":"' .. to .. '"}')
end
local function must_exist(profile, user)
  if redis.call('EXISTS', profile) == 0 then
    return redis.error_reply('MISSING no user ' .. user)
  end
end
"""

# KEYS: A profile, T profile, seq:relation, seq:change, A blocks, T blocked_by,
#       A following, A followers, T following, T followers.
# ARGV: side, A, T, A channel, T channel
_BLOCK = (
    _SIDES
    + """
local missing = mine and must_exist(KEYS[1], actor) or theirs and must_exist(KEYS[2], target)
if missing then return missing end
if mine and redis.call('ZSCORE', KEYS[5], target) then return 0 end
if not mine and redis.call('SISMEMBER', KEYS[6], actor) == 1 then return 0 end
local head = redis.call('GET', KEYS[4]) or '0'
local function cut_follows(me, other, profile, following, followers, channel)
  if redis.call('ZREM', following, other) == 1 then
    redis.call('HINCRBY', profile, 'following', -1)
    redis.call('PUBLISH', channel, '{"t":"f","follower":"' .. me .. '","followee":"' ..
               other .. '","on":false,"after":' .. head .. '}')
  end
  if redis.call('ZREM', followers, other) == 1 then
    redis.call('HINCRBY', profile, 'followers', -1)
  end
end
if mine then
  redis.call('ZADD', KEYS[5], redis.call('INCR', KEYS[3]), target)
  cut_follows(actor, target, KEYS[1], KEYS[7], KEYS[8], ARGV[4])
end
if theirs then
  redis.call('SADD', KEYS[6], actor)
  cut_follows(target, actor, KEYS[2], KEYS[9], KEYS[10], ARGV[5])
end
if mine then relation(ARGV[4], 'block', 'true', actor, '') end
if theirs then relation(ARGV[5], 'block', 'true', target, '') end
return 1
"""
)

# KEYS: A blocks, T blocked_by. ARGV: side, A, T, A channel, T channel
_UNBLOCK = (
    _SIDES
    + """
local was = mine and redis.call('ZREM', KEYS[1], target) or 0
local seen = theirs and redis.call('SREM', KEYS[2], actor) or 0
if mine and was == 0 or not mine and seen == 0 then return 0 end
if mine then relation(ARGV[4], 'block', 'false', actor, '') end
if theirs then relation(ARGV[5], 'block', 'false', target, '') end
return 1
"""
)

# KEYS: A profile, T profile, seq:relation, A mutes, A mute_until, T muted_by, mutes:ends.
# ARGV: side, A, T, A channel, until ('' for none)
_MUTE = (
    _SIDES
    + """
local missing = mine and must_exist(KEYS[1], actor) or theirs and must_exist(KEYS[2], target)
if missing then return missing end
if theirs then redis.call('HSET', KEYS[6], actor, ARGV[5]) end
if not mine then return 1 end
redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[3]), target)
redis.call('HSET', KEYS[5], target, ARGV[5])
if ARGV[5] == '' then redis.call('ZREM', KEYS[7], actor .. ' ' .. target)
else redis.call('ZADD', KEYS[7], ARGV[5], actor .. ' ' .. target) end
relation(ARGV[4], 'mute', 'true', actor, ',"until":' .. (ARGV[5] == '' and 'null' or ARGV[5]))
return 1
"""
)

# KEYS: A mutes, A mute_until, T muted_by, mutes:ends. ARGV: side, A, T, A channel
_UNMUTE = (
    _SIDES
    + """
if theirs then redis.call('HDEL', KEYS[3], actor) end
if not mine then return 1 end
if redis.call('ZREM', KEYS[1], target) == 0 then return 0 end
redis.call('HDEL', KEYS[2], target)
redis.call('ZREM', KEYS[4], actor .. ' ' .. target)
relation(ARGV[4], 'mute', 'false', actor, '')
return 1
"""
)

BLOCKS_LUA = """
local function refuse_if_blocked(user, other)
  if redis.call('ZSCORE', user_key(user, 'blocks'), other)
     or redis.call('SISMEMBER', user_key(user, 'blocked_by'), other) == 1 then
    return redis.error_reply('BLOCKED a block between ' .. user .. ' and ' .. other)
  end
end
"""
"""For the store's write scripts (after ``redis_append``'s ``user_key``):
``refuse_if_blocked(user, other)`` is an error reply to return when a block separates
the two users, else nil. A follow, reply or like checks it in its own script, so that a
block committed after the domain's check still stops it."""

# KEYS: mutes:ends. ARGV: ns, now, most, side ('both', or 'actor': the muted users'
# ``muted_by`` entries are the caller's to delete). Deletes the mutes that ran out by now
# and returns them ("muter muted" each).
_PRUNE_MUTES = """
local function key(user, what) return ARGV[1] .. '{u:' .. user .. '}:' .. what end
local ends = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, pair in ipairs(ends) do
  local muter, muted = string.match(pair, '^(%S+) (%S+)$')
  redis.call('ZREM', key(muter, 'mutes'), muted)
  redis.call('HDEL', key(muter, 'mute_until'), muted)
  if ARGV[4] == 'both' then redis.call('HDEL', key(muted, 'muted_by'), muter) end
  redis.call('ZREM', KEYS[1], pair)
end
return ends
"""

_PRUNE_BATCH = 500
"""Mutes one prune script deletes at most (the round repeats until none is left)."""

Script = Callable[[list[str], list[Any]], Awaitable[Any]]


def _until(value: str | None) -> int | None:
    return int(value) if value else None


def _active(until: int | None, now: int) -> bool:
    return until is None or until > now


Side = Literal["both", "actor", "target"]
"""Which half of a relation write a script does (see the scripts above)."""


@translate_errors
class RelationReads:
    """Block and mute reads of the Redis store (any :class:`Keys`: one Redis's, or the
    routed keys of a cluster)."""

    _r: aioredis.Redis
    _k: Keys

    async def relations(self, user: str, now: int) -> Relations:
        """Whom ``user`` blocked, who blocked them, and their mutes in effect at ``now``."""
        k = self._k
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zrange(k.user(user, "blocks"), 0, -1)
            pipe.smembers(k.user(user, "blocked_by"))
            pipe.hgetall(k.user(user, "mute_until"))
            blocked, blocked_by, mutes = await pipe.execute()
        muted = {u: _until(end) for u, end in cast("dict[str, str]", mutes).items()}
        return Relations(
            frozenset(blocked),
            frozenset(blocked_by),
            {u: end for u, end in muted.items() if _active(end, now)},
        )

    async def barriers(self, actor: str, others: Sequence[str], now: int) -> Barriers:
        """Which of ``others`` have a block with ``actor`` (either way) or mute them."""
        k = self._k
        async with self._r.pipeline(transaction=False) as pipe:
            for other in others:
                pipe.zscore(k.user(actor, "blocks"), other)
                pipe.sismember(k.user(actor, "blocked_by"), other)
                pipe.hget(k.user(actor, "muted_by"), other)
            found = await pipe.execute()
        blocked, muting = set(), set()
        for index, other in enumerate(others):
            blocks, blocked_by, mute = found[3 * index : 3 * index + 3]
            if blocks is not None or blocked_by:
                blocked.add(other)
            if mute is not None and _active(_until(mute), now):
                muting.add(other)
        return Barriers(frozenset(blocked), frozenset(muting))

    async def relations_page(
        self, user: str, kind: RelationKind, now: int, before: str | None, limit: int
    ) -> Page[Relation]:
        """Whom ``user`` blocked (or muted, mutes in effect at ``now``), newest first."""
        k = self._k
        bound = cursor_id(before, _NO_BOUND)
        rows = cast(
            "list[tuple[str, float]]",
            await self._r.zrevrangebyscore(
                k.user(user, "blocks" if kind is RelationKind.BLOCK else "mutes"),
                f"({bound}", "-inf", start=0, num=limit + 1, withscores=True,
            ),
        )  # fmt: skip
        more = len(rows) > limit
        rows = rows[:limit]
        if kind is RelationKind.BLOCK or not rows:
            items = [Relation(other) for other, _ in rows]
        else:
            ends = await self._r.hmget(k.user(user, "mute_until"), [other for other, _ in rows])
            items = [
                Relation(other, _until(end))
                for (other, _), end in zip(rows, cast("list[str | None]", ends), strict=True)
                if _active(_until(end), now)
            ]
        return Page(tuple(items), str(int(rows[-1][1])) if more and rows else None)


@translate_errors
class RedisRelations(RelationReads):
    """Block and mute writes (and reads) of the Redis store.

    Each write takes ``side``: ``"both"`` on one Redis; on a cluster the caller runs the
    ``"actor"`` half in the actor's partition and the ``"target"`` half in the target's
    (docs/cluster.md 4); the value is the actor half's answer (for ``"target"`` alone:
    whether that half changed anything).
    """

    def _relation_scripts(self, writer: aioredis.Redis, *, sharded: bool) -> None:
        """Register the write scripts on ``writer`` (called by the store's constructor;
        ``sharded``: they publish on shard channels)."""
        self._block_script = script_runner(writer, _BLOCK, sharded=sharded)
        self._unblock_script = script_runner(writer, _UNBLOCK, sharded=sharded)
        self._mute_script = script_runner(writer, _MUTE, sharded=sharded)
        self._unmute_script = script_runner(writer, _UNMUTE, sharded=sharded)
        self._prune_mutes_script = script_runner(writer, _PRUNE_MUTES, sharded=sharded)

    def _channel(self, user: str) -> str:
        return self._k.channel(DevicesKey(user))

    async def block(
        self, blocker: str, target: str, now: int, *, side: Side = "both"
    ) -> Committed[bool]:
        """Make ``blocker`` block ``target``, ending the follows between them."""
        k = self._k
        keys = [
            k.user(blocker, "profile"), k.user(target, "profile"),
            k.global_("seq:relation"), k.global_("seq:change"),
            k.user(blocker, "blocks"), k.user(target, "blocked_by"),
            k.user(blocker, "following"), k.user(blocker, "followers"),
            k.user(target, "following"), k.user(target, "followers"),
        ]  # fmt: skip
        args = [side, blocker, target, self._channel(blocker), self._channel(target)]
        return Committed(bool(await self._block_script(keys, args)))

    async def unblock(self, blocker: str, target: str, *, side: Side = "both") -> Committed[bool]:
        """Lift a block."""
        keys = [self._k.user(blocker, "blocks"), self._k.user(target, "blocked_by")]
        args = [side, blocker, target, self._channel(blocker), self._channel(target)]
        return Committed(bool(await self._unblock_script(keys, args)))

    async def mute(
        self, muter: str, target: str, until: int | None, now: int, *, side: Side = "both"
    ) -> Committed[bool]:
        """Mute ``target`` for ``muter`` until ``until`` (None: until unmuted)."""
        k = self._k
        keys = [
            k.user(muter, "profile"), k.user(target, "profile"), k.global_("seq:relation"),
            k.user(muter, "mutes"), k.user(muter, "mute_until"), k.user(target, "muted_by"),
            k.global_("mutes:ends"),
        ]  # fmt: skip
        args = [side, muter, target, self._channel(muter), "" if until is None else until]
        return Committed(bool(await self._mute_script(keys, args)))

    async def unmute(self, muter: str, target: str, *, side: Side = "both") -> Committed[bool]:
        """Lift a mute."""
        k = self._k
        keys = [
            k.user(muter, "mutes"), k.user(muter, "mute_until"), k.user(target, "muted_by"),
            k.global_("mutes:ends"),
        ]  # fmt: skip
        args = [side, muter, target, self._channel(muter)]
        return Committed(bool(await self._unmute_script(keys, args)))

    async def prune_mutes(self, now: int) -> int:
        """Delete the mutes that ran out at or before ``now``; return how many."""
        return len(await self.pruned_mutes(now, side="both"))

    async def pruned_mutes(self, now: int, *, side: Literal["both", "actor"]) -> list[str]:
        """Delete the mutes that ran out at or before ``now``; return them ("muter muted"
        each). ``side`` ``"actor"`` leaves the muted users' ``muted_by`` entries to the
        caller (on a cluster they are in other partitions)."""
        removed: list[str] = []
        while True:
            args = [self._k.ns, now, _PRUNE_BATCH, side]
            batch = await self._prune_mutes_script([self._k.global_("mutes:ends")], args)
            removed.extend(batch)
            if len(batch) < _PRUNE_BATCH:
                return removed
