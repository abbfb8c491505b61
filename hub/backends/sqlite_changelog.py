"""The embedded ChangeLog: sequenced changes in SQLite, with retention and resume.

Theory of operation: every change lives in one table whose ``AUTOINCREMENT`` key is the
global sequence (so a sequence number is never reused, even after pruning); ``log`` names
the per-author (``u:<user>``) or per-recipient (``n:<user>``) log. Pruning deletes the
changes that are both older than the retention window and beyond the newest
``retention_per_log`` of their log, and records in ``pruned`` the highest sequence pruned
from each log (under ``posts``, the highest pruned from any post log).
``read_since(after)`` is exact only when no log the interest could match has
``pruned.through > after``; otherwise it answers None (resync).

A read never scans the log: it seeks, through indexes, only changes the interest
matches — the user's notification log and the followees' post logs (``changes_by_log``),
every post change in sequence order for ``public`` (``changes_of_posts``), the
``change_tags`` rows of a tag, the ``post``/``root``/``reply_to`` indexes of a thread —
at most :data:`READ_CHUNK` entries per statement, yielding to the event loop in between,
and answers None once more than ``limit`` changes match or more than
:data:`~hub.backends.base.MAX_EXAMINED` entries were examined.

Deleted means gone: an edit or a deletion of a post first deletes every earlier change
about the post (:meth:`SqliteChangeLog.scrub`, in the write's transaction), so no stored
change keeps an old text, tag or mention; the new change keeps the post's creation
sequence (``origin``) for a replay to restate the post (``hub.routing.replay_routes``).
``secure_delete`` overwrites the deleted rows in their pages, and every prune round ends
with a truncating WAL checkpoint, which drops the WAL frames still holding them. A read
that a scrub interleaved with is read again (:data:`READ_ATTEMPTS`).

Retention also has a hard bound: a prune round removes every change older than
``retention_max_seconds``, whether or not it is among the newest of its log.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from hub.backends import base
from hub.backends.base import BusMessage
from hub.backends.sqlite_schema import transaction
from hub.names import LogKind, LogName, notes_log, posts_log
from hub.records import RESTATING, Change, ChangeKind, Interest, NewChange

__all__ = ["ANY_TAG", "READ_ATTEMPTS", "READ_CHUNK", "Publish", "SqliteChangeLog", "index_rows"]

Publish = Callable[[BusMessage], None]
"""Hands one committed message to the in-process bus."""


def _publish_all(publish: Publish, messages: list[BusMessage]) -> None:
    for message in messages:
        publish(message)


_COLUMNS = "seq, log, kind, created_at, author, post, root, reply_to, tags, recipient, data, origin"
_ALL_POSTS = "posts"  # the ``pruned`` row of every post log (no log is named so)


ANY_TAG = "*"
"""The ``change_tags`` tag of every edit and deletion (no real tag looks so): every tag
stream's replay reads them, as the tags they removed are not stored."""

READ_ATTEMPTS = 3
"""Reads of one :meth:`SqliteChangeLog.read_since` before it gives up (None) because
scrubs kept interleaving with it."""

READ_CHUNK = 500
"""Entries (or logs, or rows) one statement of a read handles; the read yields to the
event loop between statements."""

_LOG_SEQS = (
    "SELECT seq FROM changes WHERE log IN (SELECT value FROM json_each(?))"
    " AND seq > ? AND seq <= ? LIMIT ?"
)
_POST_SEQS = (
    "SELECT seq FROM changes INDEXED BY changes_of_posts WHERE kind <> 'notification'"
    " AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
)
_TAG_SEQS = (
    "SELECT seq FROM change_tags WHERE tag = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
)
_THREAD_SEQS = tuple(
    f"SELECT seq FROM changes INDEXED BY {index} WHERE {column} = ?"
    " AND kind <> 'notification' AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
    for column, index in (
        ("post", "changes_by_post"),
        ("root", "changes_by_root"),
        ("reply_to", "changes_by_parent"),
    )
)
_ROWS = f"SELECT {_COLUMNS} FROM changes WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq"


def _index_tags(kind: str, tags: str) -> list[str]:
    """The ``change_tags`` tags of a change of ``kind`` with stored ``tags``."""
    if kind == ChangeKind.NOTIFICATION:
        return []
    return [*tags.split(), *([ANY_TAG] if kind in RESTATING else [])]


def index_rows(db: sqlite3.Connection, seq: int, new: NewChange) -> None:
    """Write the index rows of change ``seq`` in the transaction that inserts it: one
    ``change_tags`` row per tag of a post change, and one of :data:`ANY_TAG` for an
    edit or a deletion. (SQLite keeps the other indexes a resume reads; pruning deletes
    these rows with their change.)"""
    db.executemany(
        "INSERT OR IGNORE INTO change_tags (tag, seq) VALUES (?, ?)",
        [(tag, seq) for tag in _index_tags(new.kind, " ".join(new.tags))],
    )


def _drop(db: sqlite3.Connection, doomed: Sequence[tuple[int, str, str]]) -> int:
    """Delete the changes ``(seq, kind, tags)`` and their index rows inside the open
    transaction; return how many were deleted."""
    db.executemany(
        "DELETE FROM change_tags WHERE tag = ? AND seq = ?",
        [(tag, seq) for seq, kind, tags in doomed for tag in _index_tags(kind, tags)],
    )
    return db.executemany(
        "DELETE FROM changes WHERE seq = ?", [(s,) for s, _, _ in doomed]
    ).rowcount


def _checkpoint(path: str) -> None:
    """Copy the WAL into the database and truncate it (on a connection of its own, in a
    thread): frames that held deleted rows are gone from disk after it."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.close()


def _change(row: tuple[Any, ...]) -> Change:
    seq, log, kind, created, author, post, root, reply_to, tags, recipient, data, origin = row
    return Change(
        seq=seq,
        log=log,
        kind=ChangeKind(kind),
        created_at=created,
        author=author,
        post=post,
        root=root,
        reply_to=reply_to,
        tags=tuple(tags.split()),
        recipient=recipient,
        data=orjson.loads(data),
        origin=origin,
    )


PRUNE_BATCH = 500
"""Changes deleted per transaction while pruning."""


def _first_younger(db: sqlite3.Connection, cutoff: int) -> int | None:
    """The lowest sequence of a change younger than ``cutoff`` (one past the highest
    when there is none; None for an empty log). Changes are appended in time order, so
    the changes below it are the old ones."""
    young = db.execute(
        "SELECT seq FROM changes WHERE created_at > ? ORDER BY seq LIMIT 1", (cutoff,)
    ).fetchone()
    if young:
        return int(young[0])
    highest = db.execute("SELECT max(seq) + 1 FROM changes").fetchone()[0]
    return None if highest is None else int(highest)


Doomed = tuple[int, str, str, str]
"""``(seq, log, kind, tags)`` of a change to delete."""


def _doomed(path: str, cutoff: int, hard_cutoff: int, per_log: int) -> list[Doomed]:
    """The changes the retention rule removes, oldest first.

    Reads on a connection of its own (it runs in a thread): the changes older than
    ``cutoff`` that are not among the newest ``per_log`` of their log, and every change
    older than ``hard_cutoff`` (the hard bound on age).
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        bound = _first_younger(db, cutoff)
        hard = _first_younger(db, hard_cutoff)
        if bound is None or hard is None:
            return []
        rows = db.execute(
            "WITH old_logs AS (SELECT DISTINCT log FROM changes WHERE seq < :bound),"
            " kept AS (SELECT log, (SELECT seq FROM changes AS newer WHERE newer.log = old_logs.log"
            "   ORDER BY seq DESC LIMIT 1 OFFSET :per_log) AS through FROM old_logs)"
            " SELECT c.seq, c.log, c.kind, c.tags FROM changes AS c JOIN kept ON c.log = kept.log"
            " WHERE c.seq < :bound AND c.seq <= kept.through AND c.created_at <= :cutoff"
            " UNION SELECT seq, log, kind, tags FROM changes WHERE seq < :hard"
            " ORDER BY 1",
            {"bound": bound, "hard": hard, "per_log": per_log, "cutoff": cutoff},
        ).fetchall()
        return [(int(seq), str(log), str(kind), str(tags)) for seq, log, kind, tags in rows]
    finally:
        db.close()


def _logs(interest: Interest) -> list[str]:
    """The logs the interest matches every change of: the user's notifications and the
    followees' posts (unless ``public`` reads every post change anyway)."""
    logs = [notes_log(interest.user)]
    if not interest.public:
        logs.extend(map(posts_log, sorted(interest.authors)))
    return logs


_IndexRead = tuple[str, tuple[Any, ...]]
"""A statement reading one index in seq order, and its key (the statement takes the key,
then ``after``, ``head`` and a row limit)."""


def _stream_reads(interest: Interest) -> list[_IndexRead]:
    """The index reads of the interest's streams (``public`` covers every post change;
    tag streams also read every edit and deletion, see :data:`ANY_TAG`)."""
    if interest.public:
        return [(_POST_SEQS, ())]
    tags = sorted(interest.tags) + ([ANY_TAG] if interest.tags else [])
    reads: list[_IndexRead] = [(_TAG_SEQS, (tag,)) for tag in tags]
    reads += [(sql, (thread,)) for thread in sorted(interest.threads) for sql in _THREAD_SEQS]
    return reads


class _Found:
    """The sequence numbers a read found so far and the index entries it examined."""

    __slots__ = ("cap", "examined", "limit", "seqs")

    def __init__(self, limit: int, cap: int) -> None:
        self.limit = limit
        self.cap = cap
        self.examined = 0
        self.seqs: set[int] = set()

    def room(self) -> int:
        """Rows the next statement may return when all of them are new matches: one
        more than the limit or the cap allows proves the answer is None."""
        return max(0, min(self.limit + 1 - len(self.seqs), self.cap + 1 - self.examined))

    def chunk(self) -> int:
        """Rows the next paged statement may return (some may be known already)."""
        return max(0, min(READ_CHUNK, self.cap + 1 - self.examined))

    def add(self, rows: list[tuple[int]]) -> bool:
        """Count and keep ``rows``; False once over the limit or the cap."""
        self.examined += len(rows)
        self.seqs.update(seq for (seq,) in rows)
        return len(self.seqs) <= self.limit and self.examined <= self.cap


class SqliteChangeLog:
    """ChangeLog implementation on one SQLite connection (see ``hub.backends.base``)."""

    max_examined: int = base.MAX_EXAMINED
    """The cap on index entries one :meth:`read_since` examines (``base.MAX_EXAMINED``)."""
    examined: int = 0
    """Index entries the last finished :meth:`read_since` examined (for tests and tuning)."""

    def __init__(
        self,
        db: sqlite3.Connection,
        retention_seconds: float = 900,
        retention_per_log: int = 1000,
        publish: Publish | None = None,
        retention_max_seconds: float = 86_400,
    ) -> None:
        self._db = db
        self._retention_ms = round(retention_seconds * 1000)
        self._max_ms = round(retention_max_seconds * 1000)
        self._per_log = retention_per_log
        self._path = str(db.execute("PRAGMA database_list").fetchone()[2])
        self._publish = publish
        self._scrubs = 0

    async def append(self, changes: Sequence[NewChange]) -> list[Change]:
        """Durably append ``changes`` in order, assigning increasing sequence numbers,
        and publish them once committed."""
        with transaction(self._db) as db:
            appended = self.insert(db, changes)
        self.announce(appended)
        return appended

    def insert(self, db: sqlite3.Connection, changes: Sequence[NewChange]) -> list[Change]:
        """Insert ``changes`` inside the caller's open transaction; return them sequenced.

        The caller commits, then calls :meth:`announce` with what was inserted.
        """
        appended: list[Change] = []
        for new in changes:
            seq = db.execute(
                "INSERT INTO changes (log, kind, created_at, author, post, root, reply_to,"
                " tags, recipient, data, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new.log,
                    new.kind,
                    new.created_at,
                    new.author,
                    new.post,
                    new.root,
                    new.reply_to,
                    " ".join(new.tags),
                    new.recipient,
                    orjson.dumps(dict(new.data)),
                    new.origin,
                ),
            ).lastrowid
            assert seq is not None
            index_rows(db, seq, new)
            appended.append(new.sequenced(seq))
        return appended

    def scrub(self, db: sqlite3.Connection, post_id: int) -> int | None:
        """Delete every change about post ``post_id`` (its creation, edits and counters;
        not the notifications about it) inside the caller's open transaction, before an
        edit or a deletion inserts the change that restates the post. Returns the
        sequence of the post's creation, None when no change left knows it."""
        rows = db.execute(
            "SELECT seq, kind, tags, origin FROM changes INDEXED BY changes_by_post"
            " WHERE post = ? AND kind <> 'notification'",
            (post_id,),
        ).fetchall()
        origins = [
            seq if kind == ChangeKind.POST_CREATED else origin for seq, kind, _, origin in rows
        ]
        _drop(db, [(seq, kind, tags) for seq, kind, tags, _ in rows])
        self._scrubs += 1
        return min((seq for seq in origins if seq is not None), default=None)

    def announce(self, messages: Sequence[BusMessage]) -> None:
        """Publish committed ``messages`` in order, on the next turn of the event loop.

        In-process subscribers cannot miss them: a process that dies before the turn
        takes its subscribers with it, and they resume from the log. Deferring by one
        turn lets the writer queue its acknowledgement before the events go out.
        """
        if self._publish is not None and messages:
            publish = self._publish
            asyncio.get_running_loop().call_soon(_publish_all, publish, list(messages))

    async def head(self) -> int:
        """The highest sequence number ever assigned (0 when nothing was appended)."""
        return self._head()

    async def scrub_mark(self) -> int:
        """How many scrubs this log has seen (see :meth:`ChangeLog.scrub_mark`)."""
        return self._scrubs

    def _head(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
        found = row.fetchone()
        return 0 if found is None else int(found[0])

    def _pruned_through(self, interest: Interest) -> int:
        """The highest sequence pruned from any log the interest could match."""
        logs = [notes_log(interest.user)]
        if interest.broad:
            logs.append(_ALL_POSTS)
        else:
            logs.extend(map(posts_log, interest.authors))
        (through,) = self._db.execute(
            "SELECT max(through) FROM pruned WHERE log IN (SELECT value FROM json_each(?))",
            (orjson.dumps(logs),),
        ).fetchone()
        return 0 if through is None else int(through)

    async def read_since(self, after: int, interest: Interest, limit: int) -> list[Change] | None:
        """Changes with seq > ``after`` that ``interest`` matches, in seq order.

        None when a change the interest could match was pruned after ``after``, when
        ``after`` lies beyond the head, when more than ``limit`` changes match, or when
        finding them would examine more than :attr:`max_examined` index entries.

        Only changes up to the head at the start are read (a later one arrives live), so
        that changes appended meanwhile cannot leave a gap below the last one answered.
        The ``pruned`` marks are read after the rows: a prune racing with the read (it
        yields between statements) gives None, never a silent gap. A scrub racing with
        it (an edit or a deletion removed changes it found) makes it read again.
        """
        for _ in range(READ_ATTEMPTS):
            scrubs = self._scrubs
            changes = await self._read(after, interest, limit)
            if scrubs == self._scrubs:
                return changes
        return None

    async def _read(self, after: int, interest: Interest, limit: int) -> list[Change] | None:
        """One attempt of :meth:`read_since` (a scrub meanwhile may spoil it)."""
        head = self._head()
        if after > head:
            return None
        found = _Found(limit, self.max_examined)
        complete = await self._find(found, after, head, interest)
        self.examined = found.examined
        if not complete:
            return None
        changes = await self._fetch(sorted(found.seqs))
        if self._pruned_through(interest) > after:
            return None
        return changes

    async def _find(self, found: _Found, after: int, head: int, interest: Interest) -> bool:
        """Collect into ``found`` the seqs in (after, head] the interest matches; False
        once over the limit or the cap. Logs first: their rows are all distinct, so one
        statement per :data:`READ_CHUNK` logs, limited to the room left, decides."""
        logs = _logs(interest)
        for start in range(0, len(logs), READ_CHUNK):
            chunk = orjson.dumps(logs[start : start + READ_CHUNK])
            rows = self._db.execute(_LOG_SEQS, (chunk, after, head, found.room())).fetchall()
            if not found.add(rows):
                return False
            await asyncio.sleep(0)
        for statement, key in _stream_reads(interest):
            low = after
            while True:
                count = found.chunk()
                rows = self._db.execute(statement, (*key, low, head, count)).fetchall()
                if not found.add(rows):
                    return False
                await asyncio.sleep(0)
                if len(rows) < count:
                    break
                low = rows[-1][0]
        return True

    async def _fetch(self, seqs: list[int]) -> list[Change]:
        """The changes ``seqs`` (ascending) that still exist, :data:`READ_CHUNK` a time."""
        changes: list[Change] = []
        for start in range(0, len(seqs), READ_CHUNK):
            rows = self._db.execute(_ROWS, (orjson.dumps(seqs[start : start + READ_CHUNK]),))
            changes.extend(map(_change, rows))
            await asyncio.sleep(0)
        return changes

    async def prune(self, now: int) -> int:
        """Apply the retention rule at time ``now`` (ms); return how many changes were removed.

        A change survives while younger than the retention window or among the newest
        ``retention_per_log`` changes of its log, and never once older than
        ``retention_max_seconds``. Finding the doomed changes is a scan, so
        it runs in a thread on a read-only connection of its own (WAL lets it read while
        the node writes); they are then deleted by key in small transactions that yield
        to the event loop in between, so pruning never stalls live delivery. A change
        doomed in that snapshot stays doomed: newer changes only push it further back.
        The index rows of a change (``change_tags``) go in the transaction that deletes it.
        The round ends with a truncating WAL checkpoint (in a thread), so that the bytes
        of deleted changes and scrubbed posts leave the WAL too.
        """
        cutoff, hard = now - self._retention_ms, now - self._max_ms
        doomed = await asyncio.to_thread(_doomed, self._path, cutoff, hard, self._per_log)
        removed = 0
        for start in range(0, len(doomed), PRUNE_BATCH):
            chunk = doomed[start : start + PRUNE_BATCH]
            through: dict[str, int] = {}
            for seq, log, _, _ in chunk:
                through[log] = max(through.get(log, 0), seq)
                if LogName.parse(log).kind is LogKind.POSTS:
                    through[_ALL_POSTS] = max(through.get(_ALL_POSTS, 0), seq)
            with transaction(self._db) as db:
                db.executemany(
                    "INSERT INTO pruned (log, through) VALUES (?, ?) ON CONFLICT (log)"
                    " DO UPDATE SET through = max(through, excluded.through)",
                    through.items(),
                )
                removed += _drop(db, [(seq, kind, tags) for seq, _, kind, tags in chunk])
            await asyncio.sleep(0)
        await asyncio.to_thread(_checkpoint, self._path)
        return removed
