"""The Redis ChangeLog: the change-log streams, and reading and pruning them.

Theory of operation: every write script of the Redis backend (``redis_store``'s, and
:meth:`RedisChangeLog.append` for changes that go with no record) ends with the
change-log library of ``redis_append``, which for each change does ``INCR
seq:change``, ``XADD`` to the change's log stream (id ``<seq>-0``; post changes also to
the ``log:posts`` stream that public, tag and thread resumes read) and ``PUBLISH`` to
the channel of each of its route keys (the author's ``f:`` key and its stream keys, or
the recipient's ``d:`` key: a bounded number per change, never one per follower). Redis
runs scripts one at a time, so sequence order, log order and publish order are the same
total order, whatever node appended: a node's one subscriber connection receives
changes in increasing ``seq`` (``redis_bus`` relies on this to drop duplicates and to
detect nothing is out of order).

Retention is the embedded backend's promise: a change is kept while younger than
``retention_seconds`` or among the newest ``retention_per_log`` of its log.
:meth:`prune` (every node calls it periodically; it is idempotent) deletes the other
changes log by log in one script each and records the highest pruned seq per log in
``pruned`` (and, for post logs, in ``pruned:posts``) so that :meth:`read_since` knows
exactly when a client must resync. The streams are thus capped by that rule rather than
by a blind ``MAXLEN``, which could not say what it dropped. The rule has a hard bound
too: no change older than ``retention_max_seconds`` survives a prune, however few its
log holds.

A post change's entries hold only its post id; its body is in the post's ``log`` hash
(``redis_append``: an edit or a deletion scrubs them all). A read fetches the bodies of
the entries it examined in one more round trip, and reads again when ``seq:scrub``
moved meanwhile (a scrub removed entries it may have found). Pruning deletes a body
with its entries. (Entries written before bodies moved to the post hashes hold their
body, ``c``; reads still take it, a scrub cannot find them, the hard bound prunes them.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as aioredis

from hub.backends import base
from hub.backends.base import RouteKeys
from hub.backends.redis_append import (
    APPEND_LUA,
    Templates,
    change_from_json,
    committed_changes,
)
from hub.backends.redis_link import Keys, script_runner, translate_errors
from hub.names import LogKind, LogName, notes_log, posts_log
from hub.records import Change, Interest, NewChange

__all__ = ["RedisChangeLog"]


_READ_BATCH = 500
"""Stream entries one round trip of a read fetches at most."""

# KEYS: log stream, log:posts, pruned, pruned:posts.
# ARGV: log, per_log, cutoff, is_post, hard cutoff, namespace
_PRUNE = """
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
local cutoff, hard = tonumber(ARGV[3]), tonumber(ARGV[5])
local removed, through, index, after = 0, 0, 0, '-'
while true do
  local entries = redis.call('XRANGE', KEYS[1], after, '+', 'COUNT', 100)
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    local t = tonumber(fields[2])
    if index >= excess and t > hard then entries = nil break end
    if t <= hard or (index < excess and t <= cutoff) then
      redis.call('XDEL', KEYS[1], entry[1])
      if ARGV[4] == '1' then redis.call('XDEL', KEYS[2], entry[1]) end
      local seq = string.match(entry[1], '^(%d+)')
      if fields[3] == 'p' then
        redis.call('HDEL', ARGV[6] .. '{p:' .. fields[4] .. '}:log', seq)
      end
      removed = removed + 1
      through = tonumber(seq)
    end
    index = index + 1
    after = '(' .. entry[1]
  end
  if entries == nil then break end
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
"""Prunes one log: walking from its oldest entry, deletes those older than the hard
cutoff, and those older than the cutoff among the first ``excess`` (beyond the newest
``per_log``); stops at the first entry past both."""


def _seq(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


Entries = list[tuple[str, dict[str, str]]]
"""An XRANGE reply: ``[(id, {"t": ms, "c": body} or {"t": ms, "p": post id}), ...]``."""

READ_ATTEMPTS = 3
"""Reads of one :meth:`RedisChangeLog.read_since` before it gives up (None) because
scrubs kept interleaving with it."""


class _Scan:
    """What one read found so far, and the entries it examined, within its bounds:
    seqs after ``after`` up to ``end`` (the head when it started), ``limit`` matches
    and ``cap`` entries."""

    __slots__ = ("after", "cap", "end", "examined", "found", "limit")

    def __init__(self, after: int, head: int, limit: int, cap: int) -> None:
        self.after = after
        self.end = f"{head}-0"
        self.limit = limit
        self.cap = cap
        self.examined = 0
        self.found: list[Change] = []

    def room(self) -> int:
        """Entries the next read may fetch when all of them match: one more than the
        limit or the cap allows proves the answer is None."""
        return max(0, min(self.limit + 1 - len(self.found), self.budget()))

    def budget(self) -> int:
        """Entries the next read may fetch whether or not they match."""
        return max(0, self.cap + 1 - self.examined)

    def take(self, examined: int, matched: list[Change]) -> bool:
        """Count ``examined`` entries and keep the ``matched`` ones; False once over the
        limit or the cap."""
        self.examined += examined
        self.found.extend(matched)
        return len(self.found) <= self.limit and self.examined <= self.cap


@translate_errors
class RedisChangeLog:
    """ChangeLog implementation on Redis streams (see ``hub.backends.base``)."""

    max_examined: int = base.MAX_EXAMINED
    """The cap on stream entries one :meth:`read_since` examines (``base.MAX_EXAMINED``)."""
    examined: int = 0
    """Stream entries the last finished :meth:`read_since` examined (for tests and tuning)."""

    def __init__(
        self,
        client: aioredis.Redis,
        writer: aioredis.Redis,
        keys: Keys,
        route_keys: RouteKeys,
        *,
        retention_seconds: float = 900,
        retention_per_log: int = 1000,
        retention_max_seconds: float = 86_400,
        partition: tuple[int, int] = (0, 1),
    ) -> None:
        """``partition``: the partition these logs live in and the partition count
        (docs/cluster.md); with more than one, ``keys`` must be that partition's, appends
        publish on shard channels, and a cursor beyond this partition's head is no error
        (another partition numbered it: ``redis_cluster_changelog`` checks the head)."""
        self._r = client
        self._k = keys
        self._route_keys = route_keys
        self._partition = partition
        self._retention_ms = round(retention_seconds * 1000)
        self._per_log = retention_per_log
        self._max_ms = round(retention_max_seconds * 1000)
        self._append = script_runner(
            writer, APPEND_LUA + "return committed(1)", sharded=partition[1] > 1
        )
        self._prune = client.register_script(_PRUNE)

    async def append(self, changes: Sequence[NewChange]) -> list[Change]:
        """Durably append ``changes`` in order, assigning increasing sequence numbers,
        and publish each on the channels of its route keys (in the same script)."""
        templates = Templates(self._k, self._route_keys, *self._partition)
        templates.add(*changes)
        _, *flat = await self._append(templates.keys(), templates.args())
        return list(committed_changes(flat))

    async def head(self) -> int:
        """The highest sequence number ever assigned (0 when nothing was appended)."""
        return int(await self._r.get(self._k.global_("seq:change")) or 0)

    async def scrub_mark(self) -> int:
        """The ``seq:scrub`` counter (see :meth:`ChangeLog.scrub_mark`)."""
        return int(await self._r.get(self._k.global_("seq:scrub")) or 0)

    async def read_since(self, after: int, interest: Interest, limit: int) -> list[Change] | None:
        """Changes with seq > ``after`` that ``interest`` matches, in seq order.

        None when a change the interest could match was pruned after ``after``, when
        ``after`` lies beyond the head, when more than ``limit`` changes match, or when
        finding them would examine more than :attr:`max_examined` stream entries.

        Every read is an ``XRANGE`` with ``COUNT`` (at most :data:`_READ_BATCH` entries
        a round trip, whatever the number of logs) and stops at the head read first, so
        that changes appended meanwhile cannot leave a gap below the last one answered.
        The ``pruned`` marks are read *after* the logs, so a prune racing with the read
        shows up there and the answer is None rather than a silent gap; a scrub racing
        with it shows in ``seq:scrub``, and the read starts again.
        """
        scrubs = self._k.global_("seq:scrub")
        for _ in range(READ_ATTEMPTS):
            before = await self._r.get(scrubs)
            changes = await self._read(after, interest, limit)
            if await self._r.get(scrubs) == before:
                return changes
        return None

    async def _read(self, after: int, interest: Interest, limit: int) -> list[Change] | None:
        """One attempt of :meth:`read_since` (a scrub meanwhile may spoil it)."""
        head = await self.head()
        if after > head and self._partition[1] == 1:
            return None
        scan = _Scan(after, head, limit, self.max_examined)
        broad = interest.broad
        logs = [notes_log(interest.user)]
        if not broad:
            logs.extend(map(posts_log, sorted(interest.authors)))
        complete = await self._read_logs(logs, scan)
        if complete and broad:
            complete = await self._read_posts(interest, scan)
        self.examined = scan.examined
        if not complete or await self._pruned_through(logs, broad) > after:
            return None
        return sorted(scan.found, key=lambda change: change.seq)

    async def _read_logs(self, logs: list[str], scan: _Scan) -> bool:
        """Read ``logs``, all of whose entries the interest matches, into ``scan``;
        False once over the limit or the cap.

        Each round trip reads ``per`` entries of up to ``_READ_BATCH // per`` logs, so it
        carries at most :data:`_READ_BATCH` entries, and no more than the room left unless
        it is one entry per log (then the replies are examined only up to the room); a
        log that filled its share is read on from where it stopped.
        """
        pending = [(log, scan.after) for log in logs]
        while pending:
            per = max(1, min(scan.room(), _READ_BATCH) // len(pending))
            batch, pending = pending[: _READ_BATCH // per], pending[_READ_BATCH // per :]
            async with self._r.pipeline(transaction=False) as pipe:
                for log, low in batch:
                    pipe.xrange(self._k.log(log), f"{low + 1}-0", scan.end, count=per)
                replies = await pipe.execute()
            resolved = await self._resolve(replies)
            for (log, _), entries, changes in zip(batch, replies, resolved, strict=True):
                if not scan.take(len(entries), changes):
                    return False
                if len(entries) == per:
                    pending.append((log, _seq(entries[-1][0])))
        return True

    async def _read_posts(self, interest: Interest, scan: _Scan) -> bool:
        """Add to ``scan`` the post changes of ``log:posts`` the interest matches, read
        :data:`_READ_BATCH` entries a round trip; False once over the limit or the cap."""
        stream = self._k.global_("log:posts")
        low = scan.after
        while True:
            count = min(_READ_BATCH, scan.budget())
            entries = cast(
                "Entries", await self._r.xrange(stream, f"{low + 1}-0", scan.end, count=count)
            )
            (changes,) = await self._resolve([entries])
            if not scan.take(len(entries), [c for c in changes if interest.matches(c)]):
                return False
            if len(entries) < count:
                return True
            low = _seq(entries[-1][0])

    async def _resolve(self, replies: list[Any]) -> list[list[Change]]:
        """The changes of XRANGE ``replies`` (each :data:`Entries`): a notification's
        body is in its entry, a post change's in its post's ``log`` hash, all fetched in
        one round trip. An entry whose body a scrub removed meanwhile is left out (the
        read is then done again, see :meth:`read_since`)."""
        replies = [cast("Entries", entries) for entries in replies]
        wanted = [
            (_seq(entry_id), fields["p"])
            for entries in replies
            for entry_id, fields in entries
            if "c" not in fields
        ]
        bodies: dict[int, str | None] = {}
        if wanted:
            async with self._r.pipeline(transaction=False) as pipe:
                for seq, post in wanted:
                    pipe.hget(self._k.post(post, "log"), str(seq))
                found = await pipe.execute()
            bodies = dict(zip((seq for seq, _ in wanted), found, strict=True))
        out: list[list[Change]] = []
        for entries in replies:
            changes = []
            for entry_id, fields in entries:
                seq = _seq(entry_id)
                body = fields.get("c") or bodies.get(seq)
                if body is not None:
                    changes.append(change_from_json(seq, body))
            out.append(changes)
        return out

    async def _pruned_through(self, logs: list[str], broad: bool) -> int:
        """The highest seq pruned from ``logs`` or, when ``broad``, from any post log."""
        k = self._k
        async with self._r.pipeline(transaction=False) as pipe:
            for start in range(0, len(logs), _READ_BATCH):
                pipe.hmget(k.global_("pruned"), logs[start : start + _READ_BATCH])
            if broad:
                pipe.get(k.global_("pruned:posts"))
            replies = await pipe.execute()
        marks = [value for reply in (replies[:-1] if broad else replies) for value in reply]
        if broad:
            marks.append(replies[-1])
        return max((int(value or 0) for value in marks), default=0)

    async def prune(self, now: int) -> int:
        """Apply the retention rule at time ``now`` (ms); return how many changes were removed.

        Each log goes in one script; a change older than ``retention_max_seconds`` goes
        whatever its rank, and a post change's body goes with its entries.
        """
        k = self._k
        cutoff, hard = now - self._retention_ms, now - self._max_ms
        removed = 0
        async for batch in _batches(self._r.sscan_iter(k.global_("logs"), count=500), 500):
            calls = [self._prune_call(log, cutoff, hard) for log in batch]
            if self._partition[1] > 1:  # a cluster pipeline cannot load a missing script
                removed += sum([await self._prune(keys=keys, args=args) for keys, args in calls])
                continue
            async with self._r.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    await self._prune(keys=keys, args=args, client=pipe)
                removed += sum(await pipe.execute())
        return removed

    def _prune_call(self, log: str, cutoff: int, hard: int) -> tuple[list[str], list[Any]]:
        """The keys and arguments of the prune script for ``log``."""
        k = self._k
        keys = [k.log(log), k.global_("log:posts"), k.global_("pruned")]
        keys.append(k.global_("pruned:posts"))
        is_post = LogName.parse(log).kind is LogKind.POSTS
        return keys, [log, self._per_log, cutoff, int(is_post), hard, k.ns]


async def _batches(items: Any, size: int) -> Any:
    batch: list[str] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
