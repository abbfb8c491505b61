"""The embedded ChangeLog: sequenced changes in SQLite, with retention and resume.

Theory of operation: every change lives in one table whose ``AUTOINCREMENT`` key is the
global sequence (so a sequence number is never reused, even after pruning); ``log`` names
the per-author (``u:<user>``) or per-recipient (``n:<user>``) log. Pruning deletes the
changes that are both older than the retention window and beyond the newest
``retention_per_log`` of their log, and records in ``pruned`` the highest sequence pruned
from each log. ``read_since(after)`` is exact only when no log the interest could match
has ``pruned.through > after``; otherwise it answers None (resync).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from hub.backends.sqlite_schema import transaction
from hub.records import Change, Interest, NewChange

__all__ = ["SqliteChangeLog"]

_COLUMNS = "seq, log, kind, created_at, author, post, root, reply_to, tags, recipient, data"
_POST_LOGS = ("u:", "u;")  # the key range of every "u:<author>" log (";" follows ":")


def _change(row: tuple[Any, ...]) -> Change:
    seq, log, kind, created, author, post, root, reply_to, tags, recipient, data = row
    return Change(
        seq=seq,
        log=log,
        kind=kind,
        created_at=created,
        author=author,
        post=post,
        root=root,
        reply_to=reply_to,
        tags=tuple(tags.split()),
        recipient=recipient,
        data=orjson.loads(data),
    )


PRUNE_BATCH = 500
"""Changes deleted per transaction while pruning."""


def _doomed(path: str, cutoff: int, per_log: int) -> list[tuple[int, str]]:
    """``(seq, log)`` of the changes the retention rule removes, oldest first.

    Reads on a connection of its own (it runs in a thread): the changes older than
    ``cutoff`` that are not among the newest ``per_log`` of their log. Changes are
    appended in time order, so the old ones are those below the first young sequence.
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        young = db.execute(
            "SELECT seq FROM changes WHERE created_at > ? ORDER BY seq LIMIT 1", (cutoff,)
        ).fetchone()
        bound = young[0] if young else db.execute("SELECT max(seq) + 1 FROM changes").fetchone()[0]
        if bound is None:
            return []
        rows = db.execute(
            "WITH old_logs AS (SELECT DISTINCT log FROM changes WHERE seq < :bound),"
            " kept AS (SELECT log, (SELECT seq FROM changes AS newer WHERE newer.log = old_logs.log"
            "   ORDER BY seq DESC LIMIT 1 OFFSET :per_log) AS through FROM old_logs)"
            " SELECT c.seq, c.log FROM changes AS c JOIN kept ON c.log = kept.log"
            " WHERE c.seq < :bound AND c.seq <= kept.through AND c.created_at <= :cutoff"
            " ORDER BY c.seq",
            {"bound": bound, "per_log": per_log, "cutoff": cutoff},
        ).fetchall()
        return [(int(seq), str(log)) for seq, log in rows]
    finally:
        db.close()


def _is_broad(interest: Interest) -> bool:
    """Whether the interest may match a post change of any author."""
    return interest.public or bool(interest.tags) or bool(interest.threads)


class SqliteChangeLog:
    """ChangeLog implementation on one SQLite connection (see ``hub.backends.base``)."""

    def __init__(
        self, db: sqlite3.Connection, retention_seconds: float = 900, retention_per_log: int = 1000
    ) -> None:
        self._db = db
        self._retention_ms = round(retention_seconds * 1000)
        self._per_log = retention_per_log
        self._path = str(db.execute("PRAGMA database_list").fetchone()[2])

    async def append(self, changes: Sequence[NewChange]) -> list[Change]:
        """Durably append ``changes`` in order, assigning increasing sequence numbers."""
        appended: list[Change] = []
        with transaction(self._db) as db:
            for new in changes:
                seq = db.execute(
                    "INSERT INTO changes (log, kind, created_at, author, post, root, reply_to,"
                    " tags, recipient, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    ),
                ).lastrowid
                assert seq is not None
                appended.append(new.sequenced(seq))
        return appended

    async def head(self) -> int:
        """The highest sequence number ever assigned (0 when nothing was appended)."""
        return self._head()

    def _head(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
        found = row.fetchone()
        return 0 if found is None else int(found[0])

    def _pruned_through(self, interest: Interest) -> int:
        """The highest sequence pruned from any log the interest could match."""
        logs = [f"n:{interest.user}"]
        if not _is_broad(interest):
            logs.extend(f"u:{author}" for author in interest.authors)
        (through,) = self._db.execute(
            "SELECT max(through) FROM pruned WHERE log IN (SELECT value FROM json_each(?))"
            " OR (? AND log >= ? AND log < ?)",
            (orjson.dumps(logs), _is_broad(interest), *_POST_LOGS),
        ).fetchone()
        return 0 if through is None else int(through)

    async def read_since(self, after: int, interest: Interest, limit: int) -> list[Change] | None:
        """Changes with seq > ``after`` that ``interest`` matches, in seq order.

        None when a change the interest could match was pruned after ``after``, when
        ``after`` lies beyond the head, or when more than ``limit`` changes match.
        """
        if after > self._head() or self._pruned_through(interest) > after:
            return None
        if _is_broad(interest):
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM changes WHERE seq > ? ORDER BY seq", (after,)
            )
        else:
            logs = [f"n:{interest.user}", *(f"u:{author}" for author in interest.authors)]
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM changes WHERE log IN (SELECT value FROM json_each(?))"
                " AND seq > ? ORDER BY seq",
                (orjson.dumps(logs), after),
            )
        found: list[Change] = []
        for row in rows:
            change = _change(row)
            if interest.matches(change):
                found.append(change)
                if len(found) > limit:
                    return None
        return found

    async def prune(self, now: int) -> int:
        """Apply the retention rule at time ``now`` (ms); return how many changes were removed.

        A change survives while younger than the retention window or among the newest
        ``retention_per_log`` changes of its log. Finding the doomed changes is a scan, so
        it runs in a thread on a read-only connection of its own (WAL lets it read while
        the node writes); they are then deleted by key in small transactions that yield
        to the event loop in between, so pruning never stalls live delivery. A change
        doomed in that snapshot stays doomed: newer changes only push it further back.
        """
        cutoff = now - self._retention_ms
        doomed = await asyncio.to_thread(_doomed, self._path, cutoff, self._per_log)
        removed = 0
        for start in range(0, len(doomed), PRUNE_BATCH):
            chunk = doomed[start : start + PRUNE_BATCH]
            through: dict[str, int] = {}
            for seq, log in chunk:
                through[log] = max(through.get(log, 0), seq)
            with transaction(self._db) as db:
                db.executemany(
                    "INSERT INTO pruned (log, through) VALUES (?, ?) ON CONFLICT (log)"
                    " DO UPDATE SET through = max(through, excluded.through)",
                    through.items(),
                )
                removed += db.executemany(
                    "DELETE FROM changes WHERE seq = ?", [(seq,) for seq, _ in chunk]
                ).rowcount
            await asyncio.sleep(0)
        return removed
