"""The Redis Store: social data in hashes and sorted sets (key layout in ``redis_link``).

Every write is one Lua script, so it is atomic and lands in the AOF as one unit before
the method returns (with ``appendfsync always`` that means on disk; see the README).

Post hash fields: ``id author text created_at edited_at reply_to root tags mentions
likes replies deleted``; absent optional values are empty strings, tags and mentions are
space-separated, ``deleted`` is ``0`` or ``1`` (posts are soft-deleted; ids never reused).

Home feeds, fan-out on write: a new post's id is added to the capped ``home`` set
(newest :data:`FEED_CAP` ids) of every follower of its author - unless the author has
``fanout_limit`` followers or more, in which case the author joins the ``big`` set for
good and their posts are merged on read instead (``redis_pages``). A write thus costs at
most ``fanout_limit`` set insertions, whatever the follower count. A new follow
back-fills the follower's home set with the followee's newest posts.

A follow or unfollow also publishes a small control message on the follower's user
channel (``{"t": "f", ...}``) carrying the change-sequence head, so that every node
updates the route keys of that user's sessions (see ``redis_bus``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from hub.backends.redis_link import Keys, script_runner, translate_errors
from hub.backends.redis_pages import PROFILE_FIELDS, RedisPages, profile_from_fields
from hub.records import Notification, Post, Profile

__all__ = ["FEED_CAP", "RedisStore"]

FEED_CAP = 1000
"""How many post ids a fanned-out home set keeps."""

_ENSURE_PROFILE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'name', ARGV[1], 'bio', '', 'created_at', ARGV[2],
             'followers', 0, 'following', 0, 'posts', 0)
end
return redis.call('HMGET', KEYS[1], unpack(ARGV, 3))
"""

_UPDATE_PROFILE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('MISSING no user') end
if ARGV[1] == '1' then redis.call('HSET', KEYS[1], 'name', ARGV[2]) end
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'bio', ARGV[4]) end
return 1
"""

# KEYS: follower profile, followee profile, following, followers, seq:follow, home,
#       followee posts, seq:change.  ARGV: follower, followee, cap, channel
_FOLLOW = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('MISSING no user ' .. ARGV[1] .. ' or ' .. ARGV[2])
end
if redis.call('ZSCORE', KEYS[3], ARGV[2]) then return 0 end
local id = redis.call('INCR', KEYS[5])
redis.call('ZADD', KEYS[3], id, ARGV[2])
redis.call('ZADD', KEYS[4], id, ARGV[1])
redis.call('HINCRBY', KEYS[1], 'following', 1)
redis.call('HINCRBY', KEYS[2], 'followers', 1)
local cap = tonumber(ARGV[3])
for _, post in ipairs(redis.call('ZREVRANGE', KEYS[7], 0, cap - 1)) do
  redis.call('ZADD', KEYS[6], post, post)
end
redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -(cap + 1))
local head = redis.call('GET', KEYS[8]) or '0'
redis.call('PUBLISH', ARGV[4], '{"t":"f","follower":"' .. ARGV[1] .. '","followee":"' ..
           ARGV[2] .. '","on":true,"after":' .. head .. '}')
return 1
"""

# KEYS and ARGV: as FOLLOW's
_UNFOLLOW = """
if redis.call('ZREM', KEYS[3], ARGV[2]) == 0 then return 0 end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'following', -1)
redis.call('HINCRBY', KEYS[2], 'followers', -1)
local head = redis.call('GET', KEYS[8]) or '0'
redis.call('PUBLISH', ARGV[4], '{"t":"f","follower":"' .. ARGV[1] .. '","followee":"' ..
           ARGV[2] .. '","on":false,"after":' .. head .. '}')
return 1
"""

# KEYS: seq:post, profile, author posts, public, author followers, big
# ARGV: ns, author, text, reply_to, root, tags, mentions, now, fanout_limit, cap
_CREATE_POST = """
local ns, author, reply_to, tags = ARGV[1], ARGV[2], ARGV[4], ARGV[6]
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.error_reply('MISSING no user') end
if reply_to ~= '' then
  local parent = ns .. '{p:' .. reply_to .. '}:post'
  if redis.call('HGET', parent, 'deleted') ~= '0' then
    return redis.error_reply('MISSING no post ' .. reply_to)
  end
  redis.call('HINCRBY', parent, 'replies', 1)
end
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', ns .. '{p:' .. id .. '}:post', 'id', id, 'author', author,
  'text', ARGV[3], 'created_at', ARGV[8], 'edited_at', '', 'reply_to', reply_to,
  'root', ARGV[5], 'tags', tags, 'mentions', ARGV[7], 'likes', 0, 'replies', 0,
  'deleted', 0)
redis.call('HINCRBY', KEYS[2], 'posts', 1)
redis.call('ZADD', KEYS[3], id, id)
redis.call('ZADD', KEYS[4], id, id)
if reply_to ~= '' then redis.call('ZADD', ns .. '{p:' .. reply_to .. '}:replies', id, id) end
for tag in string.gmatch(tags, '%S+') do
  redis.call('ZADD', ns .. '{t:' .. tag .. '}:posts', id, id)
end
local followers = tonumber(redis.call('HGET', KEYS[2], 'followers'))
if followers >= tonumber(ARGV[9]) or redis.call('SISMEMBER', KEYS[6], author) == 1 then
  redis.call('SADD', KEYS[6], author)
else
  local cap = tonumber(ARGV[10])
  for _, follower in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
    local home = ns .. '{u:' .. follower .. '}:home'
    redis.call('ZADD', home, id, id)
    if redis.call('ZCARD', home) > cap then redis.call('ZREMRANGEBYRANK', home, 0, 0) end
  end
end
return id
"""

# KEYS: post. ARGV: ns, text, tags, mentions, now
_EDIT_POST = """
local ns = ARGV[1]
local old = redis.call('HMGET', KEYS[1], 'id', 'tags', 'deleted')
if old[3] ~= '0' then return redis.error_reply('MISSING no post') end
for tag in string.gmatch(old[2], '%S+') do
  redis.call('ZREM', ns .. '{t:' .. tag .. '}:posts', old[1])
end
for tag in string.gmatch(ARGV[3], '%S+') do
  redis.call('ZADD', ns .. '{t:' .. tag .. '}:posts', old[1], old[1])
end
redis.call('HSET', KEYS[1], 'text', ARGV[2], 'tags', ARGV[3], 'mentions', ARGV[4],
           'edited_at', ARGV[5])
return 1
"""

# KEYS: post, public. ARGV: ns, id
_DELETE_POST = """
local ns, id = ARGV[1], ARGV[2]
local post = redis.call('HMGET', KEYS[1], 'author', 'reply_to', 'tags', 'deleted')
if post[4] ~= '0' then return redis.error_reply('MISSING no post ' .. id) end
redis.call('HSET', KEYS[1], 'deleted', 1)
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', ns .. '{u:' .. post[1] .. '}:posts', id)
redis.call('HINCRBY', ns .. '{u:' .. post[1] .. '}:profile', 'posts', -1)
for tag in string.gmatch(post[3], '%S+') do
  redis.call('ZREM', ns .. '{t:' .. tag .. '}:posts', id)
end
if post[2] ~= '' then
  redis.call('HINCRBY', ns .. '{p:' .. post[2] .. '}:post', 'replies', -1)
  redis.call('ZREM', ns .. '{p:' .. post[2] .. '}:replies', id)
end
return 1
"""

# KEYS: post, likes, user profile. ARGV: user, +1/-1
_SET_LIKE = """
if redis.call('HGET', KEYS[1], 'deleted') ~= '0' then
  return redis.error_reply('MISSING no post')
end
if redis.call('EXISTS', KEYS[3]) == 0 then return redis.error_reply('MISSING no user') end
local changed
if ARGV[2] == '1' then changed = redis.call('SADD', KEYS[2], ARGV[1])
else changed = redis.call('SREM', KEYS[2], ARGV[1]) end
if changed == 1 then return {1, redis.call('HINCRBY', KEYS[1], 'likes', tonumber(ARGV[2]))} end
return {0, tonumber(redis.call('HGET', KEYS[1], 'likes'))}
"""

# KEYS: user profile, actor profile, seq:note, notes, notes:data, unread
# ARGV: ns, post, record ("kind actor post created_at")
_ADD_NOTIFICATION = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('MISSING no user')
end
if ARGV[2] ~= '' and redis.call('EXISTS', ARGV[1] .. '{p:' .. ARGV[2] .. '}:post') == 0 then
  return redis.error_reply('MISSING no post ' .. ARGV[2])
end
local id = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[4], id, id)
redis.call('ZADD', KEYS[6], id, id)
redis.call('HSET', KEYS[5], id, ARGV[3])
return id
"""


@translate_errors
class RedisStore(RedisPages):
    """Store implementation on Redis (see :class:`hub.backends.base.Store`)."""

    def __init__(
        self, client: aioredis.Redis, writer: aioredis.Redis, keys: Keys, fanout_limit: int
    ) -> None:
        super().__init__(client, keys)
        self.fanout_limit = fanout_limit
        run = script_runner
        self._ensure = run(writer, _ENSURE_PROFILE)
        self._update = run(writer, _UPDATE_PROFILE)
        self._follow = run(writer, _FOLLOW)
        self._unfollow = run(writer, _UNFOLLOW)
        self._create = run(writer, _CREATE_POST)
        self._edit = run(writer, _EDIT_POST)
        self._delete = run(writer, _DELETE_POST)
        self._set_like = run(writer, _SET_LIKE)
        self._notify = run(writer, _ADD_NOTIFICATION)

    def _profile_key(self, user: str) -> str:
        return self._k.user(user, "profile")

    async def ensure_profile(self, user: str, now: int) -> Profile:
        """Return the user's profile, creating it (name = user id) on first sight."""
        values = await self._ensure([self._profile_key(user)], [user, now, *PROFILE_FIELDS])
        profile = profile_from_fields(user, values)
        assert profile is not None
        return profile

    async def _existing_profile(self, user: str) -> Profile:
        found = await self.get_profile(user)
        assert found is not None
        return found

    async def update_profile(self, user: str, name: str | None, bio: str | None) -> Profile:
        """Change the name and/or bio (None keeps the current value); return the profile."""
        args = [int(name is not None), name or "", int(bio is not None), bio or ""]
        await self._update([self._profile_key(user)], args)
        return await self._existing_profile(user)

    def _follow_call(self, follower: str, followee: str) -> tuple[list[str], list[Any]]:
        """The keys and arguments of the _FOLLOW and _UNFOLLOW scripts."""
        k = self._k
        keys = [
            self._profile_key(follower),
            self._profile_key(followee),
            k.user(follower, "following"),
            k.user(followee, "followers"),
            k.global_("seq:follow"),
            k.user(follower, "home"),
            k.user(followee, "posts"),
            k.global_("seq:change"),
        ]
        return keys, [follower, followee, FEED_CAP, k.channel("u:" + follower)]

    async def follow(self, follower: str, followee: str, now: int) -> bool:
        """Make ``follower`` follow ``followee``; True when newly following."""
        return bool(await self._follow(*self._follow_call(follower, followee)))

    async def unfollow(self, follower: str, followee: str) -> bool:
        """Stop following; True when ``follower`` was following ``followee``."""
        return bool(await self._unfollow(*self._follow_call(follower, followee)))

    async def create_post(  # noqa: PLR0917 - the contract's positional signature
        self,
        author: str,
        text: str,
        reply_to: int | None,
        root: int | None,
        tags: Sequence[str],
        mentions: Sequence[str],
        now: int,
    ) -> Post:
        """Store a new post (bumping the parent's reply count for a reply); return it."""
        k = self._k
        keys = [
            k.global_("seq:post"),
            self._profile_key(author),
            k.user(author, "posts"),
            k.global_("public"),
            k.user(author, "followers"),
            k.global_("big"),
        ]
        args = [
            k.ns, author, text, "" if reply_to is None else reply_to,
            "" if root is None else root, " ".join(tags), " ".join(mentions), now,
            self.fanout_limit, FEED_CAP,
        ]  # fmt: skip
        post_id = int(await self._create(keys, args))
        return Post(
            post_id, author, text, now, None, reply_to, root, tuple(tags), tuple(mentions),
            0, 0, False,
        )  # fmt: skip

    async def _existing_post(self, post_id: int) -> Post:
        found = await self.get_post(post_id)
        assert found is not None
        return found

    async def edit_post(
        self, post_id: int, text: str, tags: Sequence[str], mentions: Sequence[str], now: int
    ) -> Post:
        """Replace the text, tags and mentions of a post; return the edited post."""
        args = [self._k.ns, text, " ".join(tags), " ".join(mentions), now]
        await self._edit([self._k.post(post_id)], args)
        return await self._existing_post(post_id)

    async def delete_post(self, post_id: int) -> Post:
        """Soft-delete a post (its id is never reused); return it with ``deleted`` set."""
        post = await self.get_post(post_id)
        keys = [self._k.post(post_id), self._k.global_("public")]
        await self._delete(keys, [self._k.ns, post_id])
        assert post is not None  # the script refused a missing post
        return dataclasses.replace(post, deleted=True)

    async def like(self, user: str, post_id: int) -> tuple[bool, int]:
        """Like a post (idempotent); return (changed?, like count now)."""
        return await self._like(user, post_id, 1)

    async def unlike(self, user: str, post_id: int) -> tuple[bool, int]:
        """Withdraw a like (idempotent); return (changed?, like count now)."""
        return await self._like(user, post_id, -1)

    async def liked_among(self, user: str, post_ids: Sequence[int]) -> set[int]:
        """Which of ``post_ids`` ``user`` likes (unknown ids are simply not in the set)."""
        async with self._r.pipeline(transaction=False) as pipe:
            for post_id in post_ids:
                pipe.sismember(self._k.post(post_id, "likes"), user)
            found = await pipe.execute()
        return {post_id for post_id, liked in zip(post_ids, found, strict=True) if liked}

    async def _like(self, user: str, post_id: int, delta: int) -> tuple[bool, int]:
        keys = [self._k.post(post_id), self._k.post(post_id, "likes"), self._profile_key(user)]
        changed, likes = await self._set_like(keys, [user, delta])
        return bool(changed), int(likes)

    async def add_notification(
        self, user: str, kind: str, actor: str, post: int | None, now: int
    ) -> Notification:
        """Store an unread notification for ``user``; return it."""
        k = self._k
        keys = [
            self._profile_key(user),
            self._profile_key(actor),
            k.global_("seq:note"),
            k.user(user, "notes"),
            k.user(user, "notes:data"),
            k.user(user, "unread"),
        ]
        record = f"{kind} {actor} {'' if post is None else post} {now}"
        nid = int(await self._notify(keys, [k.ns, "" if post is None else post, record]))
        return Notification(nid, user, kind, actor, post, now, False)

    async def mark_read(self, user: str, up_to: int | None) -> int:
        """Mark notifications with id <= ``up_to`` (all when None) read; return unread count."""
        unread = self._k.user(user, "unread")
        await self._r.zremrangebyscore(unread, "-inf", "+inf" if up_to is None else up_to)
        return await self.unread_count(user)

    async def close(self) -> None:
        """Nothing to release here: the shared client is closed by the backend bundle."""
