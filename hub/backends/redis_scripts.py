"""What every write script of the Redis store is made of, and how one is run.

A write script is the change-log library (``redis_append``), the notification groups
(``redis_notes``), the block check (``redis_relations``), the counters and home helpers
below, and its own source; on a cluster its publishes go to shard channels (``SPUBLISH``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from hub.backends.redis_append import APPEND_LUA, Templates
from hub.backends.redis_link import script_runner
from hub.backends.redis_notes import NOTES_LUA
from hub.backends.redis_relations import BLOCKS_LUA
from hub.records import Post

__all__ = ["COUNTS_LUA", "HOME_LUA", "Script", "counted", "write_script"]

Script = Callable[[list[str], list[Any]], Awaitable[Any]]
"""A loaded script: called with its keys and its arguments."""

# Sets vals.likes and vals.replies to the counters of post hash ``key``.
COUNTS_LUA = """
local function counts_of(key)
  local counts = redis.call('HMGET', key, 'likes', 'replies')
  vals['likes'], vals['replies'] = tonumber(counts[1]), tonumber(counts[2])
end
"""
"""For write scripts: ``counts_of(key)`` fills a template's ``likes`` and ``replies``
holes from the post hash at ``key`` (after the script's own write)."""


HOME_LUA = """
local function back_fill(home, posts, cap)
  for _, post in ipairs(redis.call('ZREVRANGE', posts, 0, cap - 1)) do
    redis.call('ZADD', home, post, post)
  end
  redis.call('ZREMRANGEBYRANK', home, 0, -(cap + 1))
end
"""
"""For write scripts: ``back_fill(home, posts, cap)`` adds an author's newest ``cap`` post
ids (set ``posts``) to a follower's ``home`` set and keeps its newest ``cap`` (a follow)."""


def write_script(writer: aioredis.Redis, source: str, *, sharded: bool) -> Script:
    """A write script: the change-log library, the notification groups, the block check,
    the counters and home helpers, then ``source`` (publishing with SPUBLISH when ``sharded``)."""
    source = APPEND_LUA + NOTES_LUA + BLOCKS_LUA + COUNTS_LUA + HOME_LUA + source
    return script_runner(writer, source, sharded=sharded)


def counted(templates: Templates, post: Post) -> Post:
    """``post`` with its counters left for the script to fill in (after its write)."""
    return dataclasses.replace(
        post, likes=templates.hole("likes"), replies=templates.hole("replies")
    )
