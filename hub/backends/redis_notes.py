"""Notification groups on Redis: the Lua that adds an actor, the pruning, the records.

Theory of operation (the contract is ``Store.notifications_page`` in
``hub.backends.base``): a notification is the group of every actor who did ``kind`` to
``post`` for one user. Per user (keys in ``redis_link``):

- ``notes`` (zset of ids), ``unread`` (zset of unread ids) and ``notes:data`` (hash id ->
  ``"kind actor post created_at count actors"``, ``actors`` comma-separated, newest
  first, at most ``SHOWN_ACTORS``; a follow's ``post`` is empty) hold the groups;
- ``notes:groups`` (hash ``kind:post`` -> id) finds a group's current id;
- ``na:<kind>:<post>`` (set) holds every actor of the group: the deduplication key.

:data:`NOTES_LUA`'s ``notify`` runs inside the write script (after ``APPEND_LUA``, whose
``ns``, ``vals`` and ``user_key`` it uses): an actor the set already holds adds nothing
and ``notify`` answers false (the script then appends no change); otherwise the group's
old id is forgotten and the group is stored under a new id from ``seq:note``, unread,
with the actor first and the count one higher. ``notes:age`` (global zset
``<id>:<user>`` -> created_at) and ``notes:added`` (global set of users who got a new
group since the last count prune) serve :class:`NotePruner`, which drops a group with
its actor set, so an actor may start a new group after its group was pruned.

Notifications stored before groups existed (``notes:data`` of four fields) read as
groups of one; they are not in ``notes:age`` and leave only through the count prune.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import redis.asyncio as aioredis

from hub import changes
from hub.backends.redis_append import APPEND_LUA, Templates
from hub.backends.redis_link import Keys, script_runner
from hub.records import SHOWN_ACTORS, NewChange, Notification

__all__ = ["NOTES_LUA", "PRUNE_BATCH", "NotePruner", "notification_from_data", "notified_template"]

PRUNE_BATCH = 500
"""Notification groups one prune script removes at most."""

NOTES_LUA = (
    f"local shown_actors = {SHOWN_ACTORS}\n"
    """
local function fields_of(text)
  local out = {}
  for field in string.gmatch(text .. ' ', '(.-) ') do out[#out + 1] = field end
  return out
end
local function forget_note(user, id)
  redis.call('ZREM', user_key(user, 'notes'), id)
  redis.call('ZREM', user_key(user, 'unread'), id)
  redis.call('HDEL', user_key(user, 'notes:data'), id)
  redis.call('ZREM', ns .. 'notes:age', id .. ':' .. user)
end
local function drop_note(user, id)
  local data = redis.call('HGET', user_key(user, 'notes:data'), id)
  if data then
    local f = fields_of(data)
    local group = f[1] .. ':' .. f[3]
    local groups = user_key(user, 'notes:groups')
    if redis.call('HGET', groups, group) == tostring(id) then
      redis.call('HDEL', groups, group)
      redis.call('DEL', user_key(user, 'na:' .. group))
    end
  end
  forget_note(user, id)
end
local function notify(slot, user, kind, actor, post, now)
  local group = kind .. ':' .. post
  if redis.call('SADD', user_key(user, 'na:' .. group), actor) == 0 then return false end
  local groups, data = user_key(user, 'notes:groups'), user_key(user, 'notes:data')
  local count, shown = 1, {actor}
  local old = redis.call('HGET', groups, group)
  if old then
    local f = fields_of(redis.call('HGET', data, old) or '')
    count = tonumber(f[5] or '1') + 1
    for prior in string.gmatch(f[6] or f[2] or '', '[^,]+') do
      if #shown < shown_actors then shown[#shown + 1] = prior end
    end
    forget_note(user, old)
  else
    redis.call('SADD', ns .. 'notes:added', user)
  end
  local id = redis.call('INCR', ns .. 'seq:note')
  local unread = user_key(user, 'unread')
  redis.call('ZADD', user_key(user, 'notes'), id, id)
  redis.call('ZADD', unread, id, id)
  redis.call('HSET', data, id, table.concat({kind, actor, post, now, count,
                                             table.concat(shown, ',')}, ' '))
  redis.call('HSET', groups, group, id)
  redis.call('ZADD', ns .. 'notes:age', now, id .. ':' .. user)
  vals['note' .. slot] = id
  vals['unread' .. slot] = redis.call('ZCARD', unread)
  vals['others' .. slot] = count - 1
  vals['actors' .. slot] = '["' .. table.concat(shown, '","') .. '"]'
  return true
end
"""
)
"""Lua of notification groups (see the module docstring); follows ``APPEND_LUA``."""

# KEYS: notes:age (named so that a cluster runs it in its partition). ARGV: ns, cutoff, batch
_PRUNE_AGE = """
local doomed = redis.call('ZRANGEBYSCORE', ns .. 'notes:age', '-inf', '(' .. ARGV[2],
                          'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(doomed) do
  local id, user = string.match(member, '^(%d+):(.+)$')
  drop_note(user, id)
end
return #doomed
"""

# KEYS: notes:added (as above). ARGV: ns, user, keep, batch
_PRUNE_COUNT = """
local user, keep, batch = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local doomed = redis.call('ZREVRANGE', user_key(user, 'notes'), keep, keep + batch - 1)
for _, id in ipairs(doomed) do drop_note(user, id) end
if #doomed < batch then redis.call('SREM', ns .. 'notes:added', user) end
return #doomed
"""


def notified_template(  # noqa: PLR0917 - the notification's fields, in the record's order
    templates: Templates, slot: int, user: str, kind: str, actor: str, post: int | None, now: int
) -> NewChange:
    """The ``notification`` change of ``notify(slot, ...)`` as a template: the id,
    unread count, ``others`` and ``actors`` are left for the script to fill in."""
    notification = Notification(
        templates.hole(f"note{slot}"), user, kind, actor, post, now, False,
        (actor,), templates.hole(f"others{slot}"),
    )  # fmt: skip
    change = changes.notified(notification, templates.hole(f"unread{slot}"), now)
    wire = {**change.data["notification"], "actors": templates.hole(f"actors{slot}")}
    return dataclasses.replace(change, data={**change.data, "notification": wire})


def notification_from_data(nid: int, user: str, data: Any, read: bool) -> Notification:
    """A Notification from its ``notes:data`` value (see the module docstring)."""
    kind, actor, post, created, *group = str(data).split(" ")
    count, shown = (int(group[0]), tuple(group[1].split(","))) if group else (1, (actor,))
    return Notification(
        nid, user, kind, actor, int(post) if post else None, int(created), read, shown, count - 1
    )


class NotePruner:
    """Applies the notification retention (``Store.prune_notifications``) on Redis."""

    def __init__(self, writer: aioredis.Redis, keys: Keys) -> None:
        self._r = writer
        self._k = keys
        self._by_age = script_runner(writer, APPEND_LUA + NOTES_LUA + _PRUNE_AGE)
        self._by_count = script_runner(writer, APPEND_LUA + NOTES_LUA + _PRUNE_COUNT)

    async def prune(self, older_than: int, keep: int) -> int:
        """Drop the groups created before ``older_than`` (ms), then trim each user who got
        a new group since the last prune to ``keep``; one script per batch of at most
        :data:`PRUNE_BATCH` groups; return how many were dropped."""
        ns = self._k.ns
        removed = 0
        while True:
            dropped = int(
                await self._by_age([self._k.global_("notes:age")], [ns, older_than, PRUNE_BATCH])
            )
            removed += dropped
            if dropped < PRUNE_BATCH:
                break
        added = self._k.global_("notes:added")
        while users := await self._r.srandmember(added, PRUNE_BATCH):
            for user in users:
                while True:
                    args = [ns, user, keep, PRUNE_BATCH]
                    dropped = int(await self._by_count([added], args))
                    removed += dropped
                    if dropped < PRUNE_BATCH:
                        break
        return removed
