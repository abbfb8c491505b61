"""Appending changes from inside a Redis write script: one write, one script.

Theory of operation: every write script of the Redis backend is :data:`APPEND_LUA`
followed by the write's own Lua. The write does its record updates, leaves the numbers
only it can know in the table ``vals`` (the new post's id, a notification's id, an
unread count, a post's counters after the write), then calls ``append_changes()``,
which for each change does ``INCR seq:change``, ``XADD`` to the change's log stream (and
to ``log:posts`` for a post change) and ``PUBLISH`` on the channel of each of its route
keys. Redis runs a script as one unit, so the record, its changes, their sequence
numbers and their publication happen together or not at all (``hub.backends.base``).

The change bodies are built in Python, by the same builders the embedded store uses
(``hub.changes``), as *templates*: a number the script decides is written as a random
18-digit placeholder (:meth:`Templates.hole`), and the serialised body is cut at each
placeholder into text pieces and hole names. The script joins the pieces with the
values it computed (a number, or JSON text the script built, such as a notification's
actor list: ``redis_notes``), so a body is never parsed or re-encoded in Lua, and user
text cannot forge a hole (it would have to guess a fresh 60-bit number). The script returns
each appended change's sequence number and final body, from which
:func:`committed_changes` builds the :class:`~hub.records.Change` records.

Calling convention: ``KEYS[1..3]`` are ``seq:change``, ``log:posts`` and ``logs``
(:meth:`Templates.keys`), the write's own keys follow; ``ARGV[1]`` is the namespace and
``ARGV[2]`` the index in ARGV where the changes section starts (:meth:`Templates.args`
builds both ends around the write's own arguments).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any, cast

import orjson

from hub.backends.base import RouteKeys
from hub.backends.redis_link import Keys
from hub.records import Change, ChangeKind, NewChange

__all__ = [
    "APPEND_LUA",
    "Templates",
    "body_of",
    "change_from_json",
    "committed_changes",
]


APPEND_LUA = """
local ns = ARGV[1]
local vals = {}
local function user_key(user, what) return ns .. '{u:' .. user .. '}:' .. what end
local function append_changes()
  local out = {}
  local i = tonumber(ARGV[2])
  local count = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, count do
    local stream, log, t, is_post, channels = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
      ARGV[i + 4]
    local holes = tonumber(ARGV[i + 5])
    local pieces = {ARGV[i + 6]}
    i = i + 7
    for _ = 1, holes do
      local v = vals[ARGV[i]]
      pieces[#pieces + 1] = type(v) == 'string' and v or string.format('%d', v)
      pieces[#pieces + 1] = ARGV[i + 1]
      i = i + 2
    end
    local body = table.concat(pieces)
    local seq = redis.call('INCR', KEYS[1])
    local id = seq .. '-0'
    redis.call('XADD', stream, id, 't', t, 'c', body)
    if is_post == '1' then redis.call('XADD', KEYS[2], id, 't', t, 'c', body) end
    redis.call('SADD', KEYS[3], log)
    local message = '{"t":"c","seq":' .. seq .. ',"c":' .. body .. '}'
    for channel in string.gmatch(channels, '%S+') do redis.call('PUBLISH', channel, message) end
    out[#out + 1] = seq
    out[#out + 1] = body
  end
  return out
end
local function committed(value)
  local out = append_changes()
  table.insert(out, 1, value)
  return out
end
"""
"""Lua prepended to every write script (see the module docstring)."""

_HOLE_LOW = 10**17
_HOLE_SPAN = 9 * 10**17


def body_of(change: NewChange) -> bytes:
    """The JSON body a change is logged and published with."""
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
        }
    )


def change_from_json(seq: int, body: str | bytes | dict[str, Any]) -> Change:
    """A Change from the JSON body a write script logged and published."""
    d = orjson.loads(body) if isinstance(body, str | bytes) else body
    return Change(
        seq, d["log"], ChangeKind(d["kind"]), d["created_at"], d["author"], d["post"], d["root"],
        d["reply_to"], tuple(d["tags"]), d["recipient"], d["data"],
    )  # fmt: skip


def committed_changes(flat: Sequence[Any]) -> tuple[Change, ...]:
    """The changes a script appended, from its ``seq, body, seq, body, ...`` reply."""
    pairs = zip(flat[::2], flat[1::2], strict=True)
    return tuple(change_from_json(int(seq), cast("str", body)) for seq, body in pairs)


class Templates:
    """Builds the changes section of one write script's arguments."""

    def __init__(self, keys: Keys, route_keys: RouteKeys) -> None:
        self._k = keys
        self._route_keys = route_keys
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

    def args(self, *own: Any) -> list[Any]:
        """ARGV of the script: namespace, where the changes start, ``own``, the changes."""
        section: list[Any] = [len(self._changes)]
        pattern = re.compile("(" + "|".join(self._holes) + ")") if self._holes else None
        for new in self._changes:
            body = body_of(new).decode()
            pieces = pattern.split(body) if pattern else [body]
            channels = " ".join(map(self._k.channel, self._route_keys(new.sequenced(0))))
            is_post = int(new.kind != ChangeKind.NOTIFICATION)
            section += [self._k.log(new.log), new.log, new.created_at, is_post, channels]
            section += [len(pieces) // 2, pieces[0]]
            for hole, text in zip(pieces[1::2], pieces[2::2], strict=True):
                section += [self._holes[hole], text]
        return [self._k.ns, 3 + len(own), *own, *section]
