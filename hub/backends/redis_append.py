"""Appending changes from inside a Redis write script: one write, one script.

Theory of operation: every write script of the Redis backend is :data:`APPEND_LUA`
followed by the write's own Lua. The write does its record updates, leaves the numbers
only it can know in the table ``vals`` (the new post's id, a notification's id, an
unread count, a post's counters after the write), then calls ``append_changes()``,
which for each change takes the next number of ``seq:change`` (``numbered``: on one
Redis simply the next integer; in partition ``i`` of ``P`` the next one congruent to ``i``,
docs/cluster.md 2), ``XADD`` to the change's log stream (and
to ``log:posts`` for a post change) and ``PUBLISH`` on the channel of each of its route
keys. Redis runs a script as one unit, so the record, its changes, their sequence
numbers and their publication happen together or not at all (``hub.backends.base``).

Deleted means gone: a stream entry cannot be rewritten, and ``XDEL`` only marks an entry
deleted (its bytes stay in the stream's memory and in every dump of it). So a post
change's entries hold only its time and post id (``t``, ``p``); its body lives in the
post's ``{p:<id>}:log`` hash (sequence -> body). An edit or a deletion calls
``scrub(post, stream)`` before appending: it deletes (``XDEL``) the post's entries from its
author's stream and ``log:posts``, deletes that hash (and with it every old text, tag
and mention) and bumps ``seq:scrub``, which readers watch to read again. ``origin_of``
leaves the post's creation sequence in ``vals.origin`` for the restating change. A
notification's entry holds its body (``c``). A change's ``route_tags`` (tags it is
routed by live, never stored) go into the published body only.

The change bodies are built in Python, by the same builders the embedded store uses
(``hub.changes``), as *templates*: a number the script decides is written as a random
18-digit placeholder (:meth:`Templates.hole`), and the serialised body is cut at each
placeholder into text pieces and hole names. The script joins the pieces with the
values it computed (a number, or JSON text the script built, such as a notification's
actor list: ``redis_notes``), so a body is never parsed or re-encoded in Lua, and user
text cannot forge a hole (it would have to guess a fresh 60-bit number). The script
returns each appended change's sequence number and published body, from which
:func:`committed_changes` builds the :class:`~hub.records.Change` records.

Calling convention: ``KEYS[1..3]`` are ``seq:change``, ``log:posts`` and ``logs``
(:meth:`Templates.keys`), the write's own keys follow; ``ARGV[1]`` is the namespace and
``ARGV[2]`` the index in ARGV where the changes section starts: the partition, the
partition count and a floor (``numbered(key)`` numbers any counter of the script that way,
above the floor, and ``post_here(id)`` tells whether a post lives in the script's
partition), then the changes (:meth:`Templates.args` builds both ends around the write's
own arguments).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any, cast

import orjson

from hub.backends.base import RouteKeys
from hub.backends.partitions import NUMBERING_LUA
from hub.backends.redis_link import Keys
from hub.records import Change, ChangeKind, NewChange

__all__ = [
    "APPEND_LUA",
    "Templates",
    "body_of",
    "change_from_json",
    "committed_changes",
    "route_suffix",
]


APPEND_LUA = (
    NUMBERING_LUA
    + """
local ns = ARGV[1]
local vals = {}
local function user_key(user, what) return ns .. '{u:' .. user .. '}:' .. what end
local function numbered(key)
  local at = tonumber(ARGV[2])
  return next_number(key, tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]))
end
local function post_here(id)
  local at = tonumber(ARGV[2])
  return tonumber(id) % tonumber(ARGV[at + 1]) == tonumber(ARGV[at])
end
local function append_changes()
  local out = {}
  local i = tonumber(ARGV[2]) + 3
  local count = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, count do
    local stream, log, t, post, channels, route = ARGV[i], ARGV[i + 1], ARGV[i + 2],
      ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    local holes = tonumber(ARGV[i + 6])
    local pieces = {ARGV[i + 7]}
    i = i + 8
    for _ = 1, holes do
      local v = vals[ARGV[i]]
      pieces[#pieces + 1] = type(v) == 'string' and v or string.format('%d', v)
      pieces[#pieces + 1] = ARGV[i + 1]
      i = i + 2
    end
    local body = table.concat(pieces)
    local seq = numbered(KEYS[1])
    local id = seq .. '-0'
    if post == '' then
      redis.call('XADD', stream, id, 't', t, 'c', body)
    else
      if string.sub(post, 1, 1) == '=' then post = vals[string.sub(post, 2)] end
      redis.call('XADD', stream, id, 't', t, 'p', post)
      redis.call('XADD', KEYS[2], id, 't', t, 'p', post)
      redis.call('HSET', ns .. '{p:' .. post .. '}:log', seq, body)
    end
    redis.call('SADD', KEYS[3], log)
    if route ~= '' then body = string.sub(body, 1, -2) .. route .. '}' end
    local message = '{"t":"c","seq":' .. seq .. ',"c":' .. body .. '}'
    for channel in string.gmatch(channels, '%S+') do redis.call('PUBLISH', channel, message) end
    out[#out + 1] = seq
    out[#out + 1] = body
  end
  return out
end
local function scrub(post, stream)
  local bodies = ns .. '{p:' .. post .. '}:log'
  for _, seq in ipairs(redis.call('HKEYS', bodies)) do
    redis.call('XDEL', stream, seq .. '-0')
    redis.call('XDEL', KEYS[2], seq .. '-0')
  end
  redis.call('DEL', bodies)
  redis.call('INCR', ns .. 'seq:scrub')
end
local function origin_of(post_key)
  vals['origin'] = tonumber(redis.call('HGET', post_key, 'origin') or '0')
end
local function committed(value)
  local out = append_changes()
  table.insert(out, 1, value)
  return out
end
"""
)
"""Lua prepended to every write script (see the module docstring)."""

_HOLE_LOW = 10**17
_HOLE_SPAN = 9 * 10**17


def body_of(change: NewChange) -> bytes:
    """The JSON body a change is logged with (it is published with its ``route_tags``
    added, see :func:`route_suffix`)."""
    return orjson.dumps(
        {
            "log": change.log,
            "kind": change.kind,
            "created_at": change.created_at,
            "author": change.author,
            "post": change.post,
            "root": change.root,
            "reply_to": change.reply_to,
            "tags": change.tags,
            "recipient": change.recipient,
            "data": change.data,
            "origin": change.origin,
        }
    )


def route_suffix(change: NewChange) -> str:
    """What the script adds to the end of the published body: the ``route_tags``."""
    if not change.route_tags:
        return ""
    return ',"route_tags":' + orjson.dumps(list(change.route_tags)).decode()


def change_from_json(seq: int, body: str | bytes | dict[str, Any]) -> Change:
    """A Change from the JSON body a write script logged or published (an ``origin`` of
    0 is an unknown one)."""
    d = orjson.loads(body) if isinstance(body, str | bytes) else body
    return Change(
        seq, d["log"], ChangeKind(d["kind"]), d["created_at"], d["author"], d["post"], d["root"],
        d["reply_to"], tuple(d["tags"]), d["recipient"], d["data"], d.get("origin") or None,
        tuple(d.get("route_tags", ())),
    )  # fmt: skip


def committed_changes(flat: Sequence[Any]) -> tuple[Change, ...]:
    """The changes a script appended, from its ``seq, body, seq, body, ...`` reply."""
    pairs = zip(flat[::2], flat[1::2], strict=True)
    return tuple(change_from_json(int(seq), cast("str", body)) for seq, body in pairs)


class Templates:
    """Builds the changes section of one write script's arguments."""

    def __init__(
        self,
        keys: Keys,
        route_keys: RouteKeys,
        part: int = 0,
        partitions: int = 1,
        *,
        floor: int = 0,
    ) -> None:
        """``part`` of ``partitions``: where the script numbers; ``floor``: every number
        it hands out is above it (a step of a write spanning partitions numbers above the
        step before it)."""
        self._k = keys
        self._route_keys = route_keys
        self._numbering = [part, partitions, floor]
        self._holes: dict[str, str] = {}
        self._changes: list[NewChange] = []

    def hole(self, name: str) -> int:
        """A placeholder number the script replaces with ``vals[name]`` (a number, or a
        string of JSON text inserted as it is)."""
        value = _HOLE_LOW + secrets.randbelow(_HOLE_SPAN)
        self._holes[str(value)] = name
        return value

    def add(self, *changes: NewChange) -> None:
        """Append ``changes`` (possibly holding holes) to what the script commits."""
        self._changes.extend(changes)

    def keys(self, *own: str) -> list[str]:
        """KEYS of the script: the change-log keys, then the write's ``own``."""
        k = self._k
        return [k.global_("seq:change"), k.global_("log:posts"), k.global_("logs"), *own]

    def _post_of(self, new: NewChange) -> str:
        """The script's post argument of a change: '' for a notification, else the post
        id, or ``=<hole name>`` when the script decides it."""
        if new.kind == ChangeKind.NOTIFICATION or new.post is None:
            return ""
        hole = self._holes.get(str(new.post))
        return str(new.post) if hole is None else "=" + hole

    def args(self, *own: Any) -> list[Any]:
        """ARGV of the script: namespace, where the changes start, ``own``, then the
        partition, the partition count and the floor the script numbers with, and the
        changes."""
        section: list[Any] = [*self._numbering, len(self._changes)]
        pattern = re.compile("(" + "|".join(self._holes) + ")") if self._holes else None
        for new in self._changes:
            body = body_of(new).decode()
            pieces = pattern.split(body) if pattern else [body]
            channels = " ".join(map(self._k.channel, self._route_keys(new.sequenced(0))))
            section += [self._k.log(new.log), new.log, new.created_at, self._post_of(new)]
            section += [channels, route_suffix(new), len(pieces) // 2, pieces[0]]
            for hole, text in zip(pieces[1::2], pieces[2::2], strict=True):
                section += [self._holes[hole], text]
        return [self._k.ns, 3 + len(own), *own, *section]
