"""The steps of writes that span partitions on Redis Cluster (docs/cluster.md 4).

A mixin of :class:`hub.backends.redis_store.RedisStore`: each method is one write
script in the store's partition, atomic there, committing and publishing its own
changes. The cluster store (``redis_cluster_store``) runs them in order, each in the
partition that holds its keys: the parent's reply count, a notification for a user of
another partition, and the two halves of a follow between partitions (the followee's:
followers, count, home back-fill and notification; then the follower's: following,
count and the control message carrying the followee partition's counter).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from hub import changes
from hub.backends.redis_append import Templates, committed_changes
from hub.backends.redis_link import Keys
from hub.backends.redis_notes import notified_template
from hub.backends.redis_scripts import counted, write_script
from hub.names import DevicesKey
from hub.records import Committed, Post

__all__ = ["FEED_CAP", "PartitionSteps"]

FEED_CAP = 1000
"""How many post ids a fanned-out home set keeps."""

# KEYS: (change log), parent post, parent replies. ARGV: ns, (changes at), reply id, +1/-1
_REPLIED = """
if redis.call('EXISTS', KEYS[4]) == 0 then return {0} end
local moved
if ARGV[4] == '1' then moved = redis.call('ZADD', KEYS[5], ARGV[3], ARGV[3])
else moved = redis.call('ZREM', KEYS[5], ARGV[3]) end
if moved == 0 then return {0} end  -- counted already: a step run twice counts once
redis.call('HINCRBY', KEYS[4], 'replies', tonumber(ARGV[4]))
counts_of(KEYS[4])
return committed(1)
"""

# KEYS: (change log). ARGV: ns, (changes at), user, kind, actor, post, now
_NOTIFY = """
if notify(1, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]) then return committed(1) end
return {0}
"""

# The followee's half of a follow. KEYS: (change log), followee profile, followers,
# seq:follow, the follower's home set here, followee posts.
# ARGV: ns, (changes at), follower, followee, cap, now, '1' follow / '0' unfollow
_FOLLOWED = """
local follower, followee = ARGV[3], ARGV[4]
local function done(value)
  local out = value == 1 and ARGV[7] == '1' and notify(1, followee, 'follow', follower, '',
    ARGV[6]) and committed(1) or {value}
  table.insert(out, 2, redis.call('GET', KEYS[1]) or '0')
  return out
end
if ARGV[7] == '0' then
  if redis.call('ZREM', KEYS[5], follower) == 0 then return done(0) end
  redis.call('HINCRBY', KEYS[4], 'followers', -1)
  return done(1)
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  return redis.error_reply('MISSING no user ' .. follower .. ' or ' .. followee)
end
local blocked = refuse_if_blocked(followee, follower)
if blocked then return blocked end
if redis.call('ZSCORE', KEYS[5], follower) then return done(0) end
redis.call('ZADD', KEYS[5], redis.call('INCR', KEYS[6]), follower)
redis.call('HINCRBY', KEYS[4], 'followers', 1)
back_fill(KEYS[7], KEYS[8], tonumber(ARGV[5]))
return done(1)
"""

# The follower's half. KEYS: (change log), follower profile, following, seq:follow.
# ARGV: ns, (changes at), follower, followee, channel, after, '1' follow / '0' unfollow
_FOLLOWING = """
local follower, followee = ARGV[3], ARGV[4]
if ARGV[7] == '1' then
  if redis.call('EXISTS', KEYS[4]) == 0 then
    return redis.error_reply('MISSING no user ' .. follower .. ' or ' .. followee)
  end
  if redis.call('ZSCORE', KEYS[5], followee) then return {0} end
  redis.call('ZADD', KEYS[5], redis.call('INCR', KEYS[6]), followee)
  redis.call('HINCRBY', KEYS[4], 'following', 1)
else
  if redis.call('ZREM', KEYS[5], followee) == 0 then return {0} end
  redis.call('HINCRBY', KEYS[4], 'following', -1)
end
-- the follow takes effect here: after the followee's half and after everything this
-- partition numbered, so the merge releases it before any change numbered above it
local after = math.max(tonumber(ARGV[6]), tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('PUBLISH', ARGV[5], '{"t":"f","follower":"' .. follower .. '","followee":"' ..
           followee .. '","on":' .. (ARGV[7] == '1' and 'true' or 'false') .. ',"after":' ..
           string.format('%d', after) .. '}')
return {1}
"""


class PartitionSteps:
    """The cross-partition steps of the Redis store (see the module docstring)."""

    _k: Keys

    def _templates(self, floor: int = 0) -> Templates:
        raise NotImplementedError

    def _profile_key(self, user: str) -> str:
        raise NotImplementedError

    def _step_scripts(self, writer: aioredis.Redis, *, sharded: bool) -> None:
        self._replied = write_script(writer, _REPLIED, sharded=sharded)
        self._notify = write_script(writer, _NOTIFY, sharded=sharded)
        self._followed = write_script(writer, _FOLLOWED, sharded=sharded)
        self._following = write_script(writer, _FOLLOWING, sharded=sharded)

    async def replied(self, parent: Post, reply_id: int, delta: int, now: int) -> Committed[None]:
        """Count a reply to ``parent`` in (``delta`` 1) or out (-1) and commit the parent's
        ``post.counts``; nothing when the parent is gone or the reply counted already."""
        templates = self._templates()
        templates.add(changes.counts(counted(templates, parent), now))
        keys = templates.keys(self._k.post(parent.id), self._k.post(parent.id, "replies"))
        _, *flat = await self._replied(keys, templates.args(reply_id, delta))
        return Committed(None, committed_changes(flat))

    async def notify(
        self, user: str, kind: str, actor: str, post_id: int | None, now: int
    ) -> Committed[bool]:
        """Commit a notification for ``user`` (grouped as every other); value: whether a
        notification was committed (False when ``actor`` is in its group already)."""
        templates = self._templates()
        templates.add(notified_template(templates, 1, user, kind, actor, post_id, now))
        keys = templates.keys()
        post = "" if post_id is None else post_id
        done, *flat = await self._notify(keys, templates.args(user, kind, actor, post, now))
        return Committed(bool(done), committed_changes(flat))

    async def followed(
        self, follower: str, followee: str, now: int, *, on: bool
    ) -> tuple[Committed[bool], int]:
        """The followee's half of a follow (``on``) or an unfollow: the followers list and
        count, the home back-fill and the ``follow`` notification; value: whether it
        changed anything; also this partition's change counter after it."""
        k = self._k
        templates = self._templates()
        if on:
            templates.add(notified_template(templates, 1, followee, "follow", follower, None, now))
        keys = templates.keys(
            self._profile_key(followee),
            k.user(followee, "followers"),
            k.global_("seq:follow"),
            k.user(follower, "home"),
            k.user(followee, "posts"),
        )
        args = templates.args(follower, followee, FEED_CAP, now, int(on))
        changed, head, *flat = await self._followed(keys, args)
        return Committed(bool(changed), committed_changes(flat)), int(head)

    async def following(self, follower: str, followee: str, after: int, *, on: bool) -> bool:
        """The follower's half: the following list and count, and the control message on
        the follower's devices channel (``after``: the followee partition's counter, or this
        partition's when it is higher: where the follow takes effect in the merged order);
        whether it changed anything."""
        k = self._k
        templates = self._templates()
        keys = templates.keys(
            self._profile_key(follower), k.user(follower, "following"), k.global_("seq:follow")
        )
        channel = k.channel(DevicesKey(follower))
        (changed,) = await self._following(
            keys, templates.args(follower, followee, channel, after, int(on))
        )
        return bool(changed)
