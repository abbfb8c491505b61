"""The Redis Store: social data in hashes and sorted sets (key layout in ``redis_link``).

Every write is one Lua script that also appends and publishes the changes and
notifications it produces (``redis_append``), so the record, its changes and their
cursors are atomic and land in the AOF as one unit before the method returns (with
``appendfsync always`` that means on disk; see the README).

Post hash fields: ``id author text created_at edited_at reply_to root tags mentions
likes replies deleted origin``; absent optional values are empty strings, tags and
mentions are space-separated, ``deleted`` is ``0`` or ``1`` (posts are soft-deleted; ids
never reused; a deleted post's text, tags and mentions are emptied), ``origin`` is the
sequence of the post's creation change (an edit or a deletion scrubs the post's earlier
changes and restates it, see ``redis_append``).

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
from typing import Any, cast

import redis.asyncio as aioredis

from hub import changes
from hub.backends.base import MissingRecord, RouteKeys
from hub.backends.partitions import NumberClock
from hub.backends.redis_append import Templates, committed_changes
from hub.backends.redis_link import Keys, script_runner, translate_errors
from hub.backends.redis_notes import NotePruner, notified_template
from hub.backends.redis_pages import PROFILE_FIELDS, RedisPages, profile_from_fields
from hub.backends.redis_relations import RedisRelations
from hub.backends.redis_scripts import Script, counted, write_script
from hub.backends.redis_steps import FEED_CAP, PartitionSteps
from hub.names import DevicesKey, posts_log
from hub.records import Committed, Notice, Post, Profile

__all__ = ["FEED_CAP", "RedisStore"]

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

# KEYS: (change log), follower profile, followee profile, following, followers, seq:follow,
#       home, followee posts.  ARGV: ns, (changes at), follower, followee, cap, channel, now
_FOLLOW = """
if redis.call('EXISTS', KEYS[4]) == 0 or redis.call('EXISTS', KEYS[5]) == 0 then
  return redis.error_reply('MISSING no user ' .. ARGV[3] .. ' or ' .. ARGV[4])
end
local blocked = refuse_if_blocked(ARGV[3], ARGV[4])
if blocked then return blocked end
if redis.call('ZSCORE', KEYS[6], ARGV[4]) then return {0} end
local id = redis.call('INCR', KEYS[8])
redis.call('ZADD', KEYS[6], id, ARGV[4])
redis.call('ZADD', KEYS[7], id, ARGV[3])
redis.call('HINCRBY', KEYS[4], 'following', 1)
redis.call('HINCRBY', KEYS[5], 'followers', 1)
back_fill(KEYS[9], KEYS[10], tonumber(ARGV[5]))
local out = {1}
if notify(1, ARGV[4], 'follow', ARGV[3], '', ARGV[7]) then out = committed(1) end
redis.call('PUBLISH', ARGV[6], '{"t":"f","follower":"' .. ARGV[3] .. '","followee":"' ..
           ARGV[4] .. '","on":true,"after":' .. (redis.call('GET', KEYS[1]) or '0') .. '}')
return out
"""

# KEYS and ARGV: as FOLLOW's
_UNFOLLOW = """
if redis.call('ZREM', KEYS[6], ARGV[4]) == 0 then return {0} end
redis.call('ZREM', KEYS[7], ARGV[3])
redis.call('HINCRBY', KEYS[4], 'following', -1)
redis.call('HINCRBY', KEYS[5], 'followers', -1)
local head = redis.call('GET', KEYS[1]) or '0'
redis.call('PUBLISH', ARGV[6], '{"t":"f","follower":"' .. ARGV[3] .. '","followee":"' ..
           ARGV[4] .. '","on":false,"after":' .. head .. '}')
return {1}
"""


# KEYS: (change log), seq:post, profile, author posts, public, author followers, big
# ARGV: ns, (changes at), author, text, reply_to, root, tags, mentions, now, fanout_limit,
#       cap, then notices: count, (user, kind) each
_CREATE_POST = """
local author, reply_to, tags, now = ARGV[3], ARGV[5], ARGV[7], ARGV[9]
if redis.call('EXISTS', KEYS[5]) == 0 then return redis.error_reply('MISSING no user') end
local parent = ns .. '{p:' .. reply_to .. '}:post'
local local_parent = reply_to ~= '' and post_here(reply_to)  -- else the caller checked it
if local_parent and redis.call('HGET', parent, 'deleted') ~= '0' then
  return redis.error_reply('MISSING no post ' .. reply_to)
end
if local_parent then
  local blocked = refuse_if_blocked(author, redis.call('HGET', parent, 'author'))
  if blocked then return blocked end
end
local notices = tonumber(ARGV[12])
for n = 1, notices do
  if redis.call('EXISTS', user_key(ARGV[11 + 2 * n], 'profile')) == 0 then
    return redis.error_reply('MISSING no user ' .. ARGV[11 + 2 * n])
  end
end
local id = numbered(KEYS[4])
vals['post'] = id
redis.call('HSET', ns .. '{p:' .. id .. '}:post', 'id', id, 'author', author,
  'text', ARGV[4], 'created_at', now, 'edited_at', '', 'reply_to', reply_to,
  'root', ARGV[6], 'tags', tags, 'mentions', ARGV[8], 'likes', 0, 'replies', 0,
  'deleted', 0)
redis.call('HINCRBY', KEYS[5], 'posts', 1)
redis.call('ZADD', KEYS[6], id, id)
redis.call('ZADD', KEYS[7], id, id)
if local_parent then
  redis.call('HINCRBY', parent, 'replies', 1)
  counts_of(parent)
  redis.call('ZADD', ns .. '{p:' .. reply_to .. '}:replies', id, id)
end
for tag in string.gmatch(tags, '%S+') do
  redis.call('ZADD', ns .. '{t:' .. tag .. '}:posts', id, id)
end
local followers = tonumber(redis.call('HGET', KEYS[5], 'followers'))
if followers >= tonumber(ARGV[10]) or redis.call('SISMEMBER', KEYS[9], author) == 1 then
  redis.call('SADD', KEYS[9], author)
else
  local cap = tonumber(ARGV[11])
  for _, follower in ipairs(redis.call('ZRANGE', KEYS[8], 0, -1)) do
    local home = user_key(follower, 'home')
    redis.call('ZADD', home, id, id)
    if redis.call('ZCARD', home) > cap then redis.call('ZREMRANGEBYRANK', home, 0, 0) end
  end
end
for n = 1, notices do  -- the groups of a new post are new: notify adds every one
  notify(n, ARGV[11 + 2 * n], ARGV[12 + 2 * n], author, id, now)
end
local out = committed(id)
redis.call('HSET', ns .. '{p:' .. id .. '}:post', 'origin', out[2])
return out
"""

# KEYS: (change log), post, author's post log. ARGV: ns, (changes at), text, tags, mentions,
#       now
_EDIT_POST = """
local old = redis.call('HMGET', KEYS[4], 'id', 'tags', 'deleted')
if old[3] ~= '0' then return redis.error_reply('MISSING no post') end
for tag in string.gmatch(old[2], '%S+') do
  redis.call('ZREM', ns .. '{t:' .. tag .. '}:posts', old[1])
end
for tag in string.gmatch(ARGV[4], '%S+') do
  redis.call('ZADD', ns .. '{t:' .. tag .. '}:posts', old[1], old[1])
end
redis.call('HSET', KEYS[4], 'text', ARGV[3], 'tags', ARGV[4], 'mentions', ARGV[5],
           'edited_at', ARGV[6])
counts_of(KEYS[4])
origin_of(KEYS[4])
scrub(old[1], KEYS[5])
return committed(1)
"""

# KEYS: (change log), post, public, author's post log. ARGV: ns, (changes at), id
_DELETE_POST = """
local id = ARGV[3]
local post = redis.call('HMGET', KEYS[4], 'author', 'reply_to', 'tags', 'deleted')
if post[4] ~= '0' then return redis.error_reply('MISSING no post ' .. id) end
redis.call('HSET', KEYS[4], 'deleted', 1, 'text', '', 'tags', '', 'mentions', '')
origin_of(KEYS[4])
scrub(id, KEYS[6])
redis.call('ZREM', KEYS[5], id)
redis.call('ZREM', user_key(post[1], 'posts'), id)
redis.call('HINCRBY', user_key(post[1], 'profile'), 'posts', -1)
for tag in string.gmatch(post[3], '%S+') do
  redis.call('ZREM', ns .. '{t:' .. tag .. '}:posts', id)
end
if post[2] ~= '' and post_here(post[2]) then  -- else the caller updates the parent
  local parent = ns .. '{p:' .. post[2] .. '}:post'
  redis.call('HINCRBY', parent, 'replies', -1)
  counts_of(parent)
  redis.call('ZREM', ns .. '{p:' .. post[2] .. '}:replies', id)
end
return committed(1)
"""

# KEYS: (change log), post, likes, user profile.
# ARGV: ns, (changes at), user, +1/-1, author to notify ('' for nobody), now, '1' when the
#       caller checked that the user exists (their profile is in another partition)
_SET_LIKE = """
if redis.call('HGET', KEYS[4], 'deleted') ~= '0' then
  return redis.error_reply('MISSING no post')
end
if ARGV[7] ~= '1' and redis.call('EXISTS', KEYS[6]) == 0 then
  return redis.error_reply('MISSING no user')
end
if ARGV[4] == '1' then  -- from the author's side: the post's partition holds both halves
  local blocked = refuse_if_blocked(redis.call('HGET', KEYS[4], 'author'), ARGV[3])
  if blocked then return blocked end
end
local changed
if ARGV[4] == '1' then changed = redis.call('SADD', KEYS[5], ARGV[3])
else changed = redis.call('SREM', KEYS[5], ARGV[3]) end
if changed == 0 then return {0, tonumber(redis.call('HGET', KEYS[4], 'likes'))} end
local likes = redis.call('HINCRBY', KEYS[4], 'likes', tonumber(ARGV[4]))
redis.call('ZADD', ns .. 'counts:pending', 'NX', ARGV[6], redis.call('HGET', KEYS[4], 'id'))
if ARGV[5] == '' or not notify(1, ARGV[5], 'like', ARGV[3],
                               redis.call('HGET', KEYS[4], 'id'), ARGV[6]) then
  return {1, likes}
end
local out = committed(1)
table.insert(out, 2, likes)
return out
"""

# KEYS: (change log), post. ARGV: ns, (changes at), post id
_RECORD_COUNTS = """
redis.call('ZREM', ns .. 'counts:pending', ARGV[3])
if redis.call('HGET', KEYS[4], 'deleted') ~= '0' then return {0} end
counts_of(KEYS[4])
return committed(1)
"""


@translate_errors
class RedisStore(PartitionSteps, RedisRelations, RedisPages):
    """Store implementation on Redis (see :class:`hub.backends.base.Store`)."""

    def __init__(  # noqa: PLR0917 - the store's seams, in the bundle's order
        self,
        client: aioredis.Redis,
        writer: aioredis.Redis,
        keys: Keys,
        fanout_limit: int,
        route_keys: RouteKeys,
        partition: tuple[int, int] = (0, 1),
        clock: NumberClock | None = None,
    ) -> None:
        """``partition``: the partition this store writes in and the partition count
        (docs/cluster.md); with more than one, ``keys`` must be that partition's and the
        scripts publish on shard channels, and every write numbers above ``clock``."""
        super().__init__(client, keys)
        self.fanout_limit = fanout_limit
        self._route_keys = route_keys
        self._partition = partition
        self._clock = clock or NumberClock()
        sharded = partition[1] > 1
        self._ensure = script_runner(writer, _ENSURE_PROFILE)
        self._update = script_runner(writer, _UPDATE_PROFILE)
        self._follow = write_script(writer, _FOLLOW, sharded=sharded)
        self._unfollow = write_script(writer, _UNFOLLOW, sharded=sharded)
        self._create = write_script(writer, _CREATE_POST, sharded=sharded)
        self._edit = write_script(writer, _EDIT_POST, sharded=sharded)
        self._delete = write_script(writer, _DELETE_POST, sharded=sharded)
        self._set_like = write_script(writer, _SET_LIKE, sharded=sharded)
        self._counts = write_script(writer, _RECORD_COUNTS, sharded=sharded)
        self._step_scripts(writer, sharded=sharded)
        self._relation_scripts(writer, sharded=sharded)
        self._notes = NotePruner(writer, keys)

    def _templates(self, floor: int = 0) -> Templates:
        floor = max(floor, self._clock.value)
        return Templates(self._k, self._route_keys, *self._partition, floor=floor)

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

    async def _follow_write(self, script: Script, follower: str, followee: str, now: int) -> Any:
        """Run the _FOLLOW or _UNFOLLOW script; the follow's notification is a template."""
        k = self._k
        templates = self._templates()
        if script is self._follow:
            templates.add(notified_template(templates, 1, followee, "follow", follower, None, now))
        keys = templates.keys(
            self._profile_key(follower),
            self._profile_key(followee),
            k.user(follower, "following"),
            k.user(followee, "followers"),
            k.global_("seq:follow"),
            k.user(follower, "home"),
            k.user(followee, "posts"),
        )
        channel = k.channel(DevicesKey(follower))
        return await script(keys, templates.args(follower, followee, FEED_CAP, channel, now))

    async def follow(self, follower: str, followee: str, now: int) -> Committed[bool]:
        """Make ``follower`` follow ``followee``; value: True when newly following.

        A new follow publishes a FollowChange and commits a ``follow`` notification
        (unless the follower is in the followee's follow group already), in one script.
        """
        added, *flat = await self._follow_write(self._follow, follower, followee, now)
        return Committed(bool(added), committed_changes(flat))

    async def unfollow(self, follower: str, followee: str) -> Committed[bool]:
        """Stop following; value: True when ``follower`` was following ``followee``."""
        (removed,) = await self._follow_write(self._unfollow, follower, followee, 0)
        return Committed(bool(removed))

    async def create_post(  # noqa: PLR0917 - the contract's positional signature
        self,
        author: str,
        text: str,
        reply_to: int | None,
        root: int | None,
        tags: Sequence[str],
        mentions: Sequence[str],
        notices: Sequence[Notice],
        now: int,
        *,
        floor: int = 0,
    ) -> Committed[Post]:
        """Store a new post (bumping the parent's reply count for a reply).

        Commits ``post.created``, the parent's ``post.counts`` for a reply, and one
        notification per notice, in one script, numbered above ``floor`` (on a cluster:
        the head of a remote parent's partition, so that a reply follows its parent).
        """
        k = self._k
        templates = self._templates(floor)
        post_id = templates.hole("post")
        post = Post(post_id, author, text, now, None, reply_to, root, tuple(tags),
                    tuple(mentions), 0, 0, False)  # fmt: skip
        templates.add(changes.created(post, now))
        parent = None if reply_to is None else await self.get_post(reply_to)
        if parent is not None:
            templates.add(changes.counts(counted(templates, parent), now))
        for slot, notice in enumerate(notices, 1):
            templates.add(
                notified_template(templates, slot, notice.user, notice.kind, author, post_id, now)
            )
        keys = templates.keys(
            # post ids: their own counter on one Redis; on a cluster the partition's change
            # numbers, which the partitions keep in step (docs/cluster.md 2)
            k.global_("seq:post" if self._partition[1] == 1 else "seq:change"),
            self._profile_key(author),
            k.user(author, "posts"),
            k.global_("public"),
            k.user(author, "followers"),
            k.global_("big"),
        )
        args = templates.args(
            author, text, "" if reply_to is None else reply_to, "" if root is None else root,
            " ".join(tags), " ".join(mentions), now, self.fanout_limit, FEED_CAP,
            len(notices), *(field for notice in notices for field in (notice.user, notice.kind)),
        )  # fmt: skip
        created_id, *flat = await self._create(keys, args)
        return Committed(dataclasses.replace(post, id=int(created_id)), committed_changes(flat))

    async def _existing_post(self, post_id: int) -> Post:
        found = await self.get_post(post_id)
        if found is None:
            raise MissingRecord(f"no post {post_id}")
        return found

    async def edit_post(
        self, post_id: int, text: str, tags: Sequence[str], mentions: Sequence[str], now: int
    ) -> Committed[Post]:
        """Replace the text, tags and mentions of a post; commit ``post.edited``, which
        scrubs the post's earlier changes (with the old text) from the logs."""
        old = await self._existing_post(post_id)
        new = dataclasses.replace(
            old, text=text, tags=tuple(tags), mentions=tuple(mentions), edited_at=now
        )
        templates = self._templates()
        templates.add(changes.edited(old, counted(templates, new), now, templates.hole("origin")))
        keys = templates.keys(self._k.post(post_id), self._k.log(posts_log(old.author)))
        _, *flat = await self._edit(keys, templates.args(text, " ".join(tags),
                                                          " ".join(mentions), now))  # fmt: skip
        return Committed(await self._existing_post(post_id), committed_changes(flat))

    async def delete_post(self, post_id: int, now: int) -> Committed[Post]:
        """Soft-delete a post (its id is never reused): its hash keeps no text, tags or
        mentions, and its earlier changes are scrubbed from the logs; commit
        ``post.deleted`` and, for a reply, the parent's ``post.counts``."""
        gone = dataclasses.replace(await self._existing_post(post_id), deleted=True)
        templates = self._templates()
        templates.add(changes.deleted(gone, now, templates.hole("origin")))
        parent = None if gone.reply_to is None else await self.get_post(gone.reply_to)
        if parent is not None:
            templates.add(changes.counts(counted(templates, parent), now))
        author_log = self._k.log(posts_log(gone.author))
        keys = templates.keys(self._k.post(post_id), self._k.global_("public"), author_log)
        _, *flat = await self._delete(keys, templates.args(post_id))
        return Committed(gone, committed_changes(flat))

    async def record_counts(self, post_id: int, now: int) -> Committed[None]:
        """Commit one ``post.counts`` change with the post's current counters, and clear
        the post's pending mark."""
        post = await self.get_post(post_id)
        templates = self._templates()
        if post is not None:
            templates.add(changes.counts(counted(templates, post), now))
        keys = templates.keys(self._k.post(post_id))
        _, *flat = await self._counts(keys, templates.args(post_id))
        return Committed(None, committed_changes(flat))

    async def pending_counts(self, marked_before: int, limit: int) -> list[int]:
        """Posts whose changed counter no ``post.counts`` change has logged yet."""
        pending = self._k.global_("counts:pending")
        found = await self._r.zrangebyscore(pending, "-inf", marked_before, start=0, num=limit)
        return [int(cast("str", post_id)) for post_id in found]

    async def like(
        self, user: str, post_id: int, notify: str | None, now: int, *, user_checked: bool = False
    ) -> Committed[tuple[bool, int]]:
        """Like a post (idempotent); value: (changed?, like count now).

        A new like commits a ``like`` notification for ``notify`` (the author), if any,
        unless ``user`` is in the post's like group already. ``user_checked``: the caller
        made sure the user exists (on a cluster, where their profile is elsewhere).
        """
        templates = self._templates()
        if notify is not None:
            templates.add(notified_template(templates, 1, notify, "like", user, post_id, now))
        return await self._like(templates, user, post_id, 1, notify or "", now, user_checked)

    async def unlike(
        self, user: str, post_id: int, now: int, *, user_checked: bool = False
    ) -> Committed[tuple[bool, int]]:
        """Withdraw a like (idempotent); value: (changed?, like count now)."""
        return await self._like(self._templates(), user, post_id, -1, "", now, user_checked)

    async def _like(  # noqa: PLR0917 - the script's arguments, in its order
        self,
        templates: Templates,
        user: str,
        post_id: int,
        delta: int,
        notify: str,
        now: int,
        checked: bool,
    ) -> Committed[tuple[bool, int]]:
        k = self._k
        keys = templates.keys(k.post(post_id), k.post(post_id, "likes"), self._profile_key(user))
        args = templates.args(user, delta, notify, now, int(checked))
        changed, likes, *flat = await self._set_like(keys, args)
        return Committed((bool(changed), int(likes)), committed_changes(flat))

    async def prune_notifications(self, older_than: int, keep: int) -> int:
        """Remove the notification groups created before ``older_than`` (ms) and all but
        the newest ``keep`` of each user (``redis_notes.NotePruner``)."""
        return await self._notes.prune(older_than, keep)

    async def mark_read(self, user: str, up_to: int | None) -> int:
        """Mark notifications with id <= ``up_to`` (all when None) read; return unread count."""
        unread = self._k.user(user, "unread")
        await self._r.zremrangebyscore(unread, "-inf", "+inf" if up_to is None else up_to)
        return await self.unread_count(user)

    async def close(self) -> None:
        """Nothing to release here: the shared client is closed by the backend bundle."""
