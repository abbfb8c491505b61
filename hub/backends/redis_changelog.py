"""The Redis ChangeLog: one Lua script sequences, logs and publishes each change.

Theory of operation: :meth:`RedisChangeLog.append` runs one script per batch that, for
each change, does ``INCR seq:change``, ``XADD`` to the change's log stream (id
``<seq>-0``; post changes also to the ``log:posts`` stream that public, tag and thread
resumes read) and ``PUBLISH`` to the channel of each of its route keys (the author's
``f:`` key and its stream keys, or the recipient's ``u:`` key: a bounded number per
change, never one per follower). Redis runs scripts one at a time, so sequence order,
log order and publish order are the same total order, whatever node appended: a node's
one subscriber connection receives changes in increasing ``seq`` (``redis_bus`` relies
on this to drop duplicates and to detect nothing is out of order).

Retention is the embedded backend's promise: a change is kept while younger than
``retention_seconds`` or among the newest ``retention_per_log`` of its log.
:meth:`prune` (every node calls it periodically; it is idempotent) deletes the other
changes log by log in one script each and records the highest pruned seq per log in
``pruned`` (and, for post logs, in ``pruned:posts``) so that :meth:`read_since` knows
exactly when a client must resync. The streams are thus capped by that rule rather than
by a blind ``MAXLEN``, which could not say what it dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from hub.backends.redis_link import Keys, script_runner, translate_errors
from hub.records import Change, ChangeKind, Interest, NewChange

__all__ = ["RedisChangeLog", "RouteKeys", "change_from_json"]

RouteKeys = Callable[[Change], Iterable[str]]
"""The route keys a change is delivered under (the node's routing rule)."""

_READ_BATCH = 500

# KEYS: seq:change, log:posts, logs, then one log stream per change
# ARGV: five per change: log, created_at, is_post, body, channels
_APPEND = """
local out = {}
for i = 4, #KEYS do
  local a = (i - 4) * 5
  local log, t, body = ARGV[a + 1], ARGV[a + 2], ARGV[a + 4]
  local seq = redis.call('INCR', KEYS[1])
  local id = seq .. '-0'
  redis.call('XADD', KEYS[i], id, 't', t, 'c', body)
  if ARGV[a + 3] == '1' then redis.call('XADD', KEYS[2], id, 't', t, 'c', body) end
  redis.call('SADD', KEYS[3], log)
  local message = '{"t":"c","seq":' .. seq .. ',"c":' .. body .. '}'
  for channel in string.gmatch(ARGV[a + 5], '%S+') do redis.call('PUBLISH', channel, message) end
  out[#out + 1] = seq
end
return out
"""

# KEYS: log stream, log:posts, pruned, pruned:posts. ARGV: log, per_log, cutoff, is_post
_PRUNE = """
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
if excess <= 0 then return 0 end
local cutoff = tonumber(ARGV[3])
local removed, through = 0, 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)) do
  if tonumber(entry[2][2]) <= cutoff then
    redis.call('XDEL', KEYS[1], entry[1])
    if ARGV[4] == '1' then redis.call('XDEL', KEYS[2], entry[1]) end
    removed = removed + 1
    through = tonumber(string.match(entry[1], '^(%d+)'))
  end
end
if removed > 0 then
  local old = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
  if through > old then redis.call('HSET', KEYS[3], ARGV[1], through) end
  if ARGV[4] == '1' and through > tonumber(redis.call('GET', KEYS[4]) or '0') then
    redis.call('SET', KEYS[4], through)
  end
end
return removed
"""


def _body(change: NewChange) -> bytes:
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
    """A Change from the JSON body the append script logged and published."""
    d = orjson.loads(body) if isinstance(body, str | bytes) else body
    return Change(
        seq, d["log"], d["kind"], d["created_at"], d["author"], d["post"], d["root"],
        d["reply_to"], tuple(d["tags"]), d["recipient"], d["data"],
    )  # fmt: skip


def _seq(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _changes(entries: Any) -> list[Change]:
    """Changes from XRANGE entries ``[(id, {"t": ..., "c": json}), ...]``."""
    pairs = cast("list[tuple[str, dict[str, str]]]", entries)
    return [change_from_json(_seq(entry_id), fields["c"]) for entry_id, fields in pairs]


def _is_broad(interest: Interest) -> bool:
    return interest.public or bool(interest.tags) or bool(interest.threads)


@translate_errors
class RedisChangeLog:
    """ChangeLog implementation on Redis streams (see ``hub.backends.base``)."""

    def __init__(
        self,
        client: aioredis.Redis,
        writer: aioredis.Redis,
        keys: Keys,
        route_keys: RouteKeys,
        *,
        retention_seconds: float = 900,
        retention_per_log: int = 1000,
    ) -> None:
        self._r = client
        self._k = keys
        self._route_keys = route_keys
        self._retention_ms = round(retention_seconds * 1000)
        self._per_log = retention_per_log
        self._append = script_runner(writer, _APPEND)
        self._prune = client.register_script(_PRUNE)

    async def append(self, changes: Sequence[NewChange]) -> list[Change]:
        """Durably append ``changes`` in order, assigning increasing sequence numbers,
        and publish each on the channels of its route keys (in the same script)."""
        k = self._k
        keys = [k.global_("seq:change"), k.global_("log:posts"), k.global_("logs")]
        args: list[Any] = []
        for new in changes:
            keys.append(k.log(new.log))
            channels = " ".join(map(k.channel, self._route_keys(new.sequenced(0))))
            is_post = int(new.kind != ChangeKind.NOTIFICATION)
            args += [new.log, new.created_at, is_post, _body(new), channels]
        seqs = await self._append(keys, args)
        return [new.sequenced(int(seq)) for new, seq in zip(changes, seqs, strict=True)]

    async def head(self) -> int:
        """The highest sequence number ever assigned (0 when nothing was appended)."""
        return int(await self._r.get(self._k.global_("seq:change")) or 0)

    async def _read(self, stream: str, after: int, count: int) -> list[Change]:
        return _changes(await self._r.xrange(stream, f"{after + 1}-0", "+", count=count))

    async def _read_all(self, stream: str, after: int) -> list[Change]:
        found: list[Change] = []
        while batch := await self._read(stream, after, _READ_BATCH):
            found.extend(batch)
            after = batch[-1].seq
        return found

    async def read_since(self, after: int, interest: Interest, limit: int) -> list[Change] | None:
        """Changes with seq > ``after`` that ``interest`` matches, in seq order.

        None when a change the interest could match was pruned after ``after``, when
        ``after`` lies beyond the head, or when more than ``limit`` changes match.
        One round trip for a narrow interest (the user's and the followees' logs): the
        ``pruned`` marks are read *after* the logs, so a prune racing with the read
        shows up there and the answer is None rather than a silent gap.
        """
        k = self._k
        broad = _is_broad(interest)
        logs = [f"n:{interest.user}"]
        if not broad:
            logs.extend(f"u:{author}" for author in interest.authors)
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.get(k.global_("seq:change"))
            for log in logs:
                pipe.xrange(k.log(log), f"{after + 1}-0", "+", count=limit + 1)
            pipe.hmget(k.global_("pruned"), logs)
            head, *batches, pruned = await pipe.execute()
        found = [change for batch in batches for change in _changes(batch)]
        through = [int(value or 0) for value in pruned]
        if broad:
            found += await self._read_all(k.global_("log:posts"), after)
            through.append(int(await self._r.get(k.global_("pruned:posts")) or 0))
        if after > int(head or 0) or max(through) > after:
            return None
        found.sort(key=lambda change: change.seq)
        matched = [change for change in found if interest.matches(change)]
        return None if len(matched) > limit else matched

    async def prune(self, now: int) -> int:
        """Apply the retention rule at time ``now`` (ms); return how many changes were removed."""
        k = self._k
        cutoff = now - self._retention_ms
        removed = 0
        async for batch in _batches(self._r.sscan_iter(k.global_("logs"), count=500), 500):
            async with self._r.pipeline(transaction=False) as pipe:
                for log in batch:
                    keys = [k.log(log), k.global_("log:posts"), k.global_("pruned")]
                    keys.append(k.global_("pruned:posts"))
                    args = [log, self._per_log, cutoff, int(log.startswith("u:"))]
                    await self._prune(keys=keys, args=args, client=pipe)
                removed += sum(await pipe.execute())
        return removed


async def _batches(items: Any, size: int) -> Any:
    batch: list[str] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
