"""Blocks and mutes on the embedded store (tables ``blocks`` and ``mutes``).

A mixin of :class:`hub.backends.sqlite_store.SqliteStore`: each write is one transaction
and publishes, once committed, a :class:`~hub.records.RelationChange` (and, for a block,
a :class:`~hub.backends.base.FollowChange` for each follow it ended) on the in-process
bus, like every write of that store (``hub.backends.base``: one write, one commit).
Nothing here is logged as a change: relations are not events of a feed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from hub.backends.base import BlockedWrite, BusMessage, FollowChange, MissingRecord, cursor_id
from hub.backends.sqlite_changelog import SqliteChangeLog
from hub.backends.sqlite_rows import NO_BOUND, rows_page
from hub.backends.sqlite_schema import transaction
from hub.records import Barriers, Committed, Page, Relation, RelationChange, RelationKind, Relations

__all__ = ["SqliteRelations"]

_ACTIVE = "(until IS NULL OR until > ?)"
"""A mute still in effect at the bound time."""


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


class SqliteRelations:
    """Block and mute writes and reads of the embedded store."""

    _db: sqlite3.Connection
    _log: SqliteChangeLog

    def _drop_follow(self, db: sqlite3.Connection, follower: str, followee: str) -> bool:
        """Delete one follow (and its counts) inside the open transaction ``db``."""
        removed = db.execute(
            "DELETE FROM follows WHERE follower = ? AND followee = ?", (follower, followee)
        ).rowcount
        if removed:
            db.execute("UPDATE profiles SET following = following - 1 WHERE id = ?", (follower,))
            db.execute("UPDATE profiles SET followers = followers - 1 WHERE id = ?", (followee,))
        return bool(removed)

    @staticmethod
    def _refuse_if_blocked(db: sqlite3.Connection, user: str, other: str) -> None:
        """Raise BlockedWrite, inside the open transaction ``db``, when a block separates
        ``user`` and ``other`` (a follow, reply or like checks it in its own commit)."""
        found = db.execute(
            "SELECT 1 FROM blocks WHERE (blocker = ? AND blocked = ?)"
            " OR (blocker = ? AND blocked = ?)",
            (user, other, other, user),
        ).fetchone()
        if found is not None:
            raise BlockedWrite(f"a block between {user} and {other}")

    async def block(self, blocker: str, target: str, now: int) -> Committed[bool]:
        """Make ``blocker`` block ``target``, ending the follows between them."""
        try:
            with transaction(self._db) as db:
                added = db.execute(
                    "INSERT OR IGNORE INTO blocks (blocker, blocked) VALUES (?, ?)",
                    (blocker, target),
                ).rowcount
                if not added:
                    return Committed(False)
                ended = [
                    pair
                    for pair in ((blocker, target), (target, blocker))
                    if self._drop_follow(db, *pair)
                ]
        except sqlite3.IntegrityError as exc:
            raise MissingRecord(f"no user {blocker!r} or {target!r}") from exc
        head = await self._log.head()
        messages: list[BusMessage] = [FollowChange(a, b, False, head) for a, b in ended]
        messages.append(RelationChange(blocker, target, RelationKind.BLOCK, True))
        self._log.announce(messages)
        return Committed(True)

    async def unblock(self, blocker: str, target: str) -> Committed[bool]:
        """Lift a block."""
        with transaction(self._db) as db:
            removed = db.execute(
                "DELETE FROM blocks WHERE blocker = ? AND blocked = ?", (blocker, target)
            ).rowcount
        if removed:
            self._log.announce([RelationChange(blocker, target, RelationKind.BLOCK, False)])
        return Committed(bool(removed))

    async def mute(self, muter: str, target: str, until: int | None, now: int) -> Committed[bool]:
        """Mute ``target`` for ``muter`` until ``until`` (None: until unmuted); muting
        again replaces the end and moves the mute to the top of the list."""
        try:
            with transaction(self._db) as db:
                db.execute("DELETE FROM mutes WHERE muter = ? AND muted = ?", (muter, target))
                db.execute(
                    "INSERT INTO mutes (muter, muted, until) VALUES (?, ?, ?)",
                    (muter, target, until),
                )
        except sqlite3.IntegrityError as exc:
            raise MissingRecord(f"no user {muter!r} or {target!r}") from exc
        self._log.announce([RelationChange(muter, target, RelationKind.MUTE, True, until)])
        return Committed(True)

    async def unmute(self, muter: str, target: str) -> Committed[bool]:
        """Lift a mute."""
        with transaction(self._db) as db:
            removed = db.execute(
                "DELETE FROM mutes WHERE muter = ? AND muted = ?", (muter, target)
            ).rowcount
        if removed:
            self._log.announce([RelationChange(muter, target, RelationKind.MUTE, False)])
        return Committed(bool(removed))

    async def prune_mutes(self, now: int) -> int:
        """Delete the mutes that ran out at or before ``now``; return how many."""
        with transaction(self._db) as db:
            return db.execute(
                "DELETE FROM mutes WHERE until IS NOT NULL AND until <= ?", (now,)
            ).rowcount

    async def relations(self, user: str, now: int) -> Relations:
        """Whom ``user`` blocked, who blocked them, and their mutes in effect at ``now``."""
        db = self._db
        blocked = db.execute("SELECT blocked FROM blocks WHERE blocker = ?", (user,))
        blocked_by = db.execute("SELECT blocker FROM blocks WHERE blocked = ?", (user,))
        muted = db.execute(f"SELECT muted, until FROM mutes WHERE muter = ? AND {_ACTIVE}",
                           (user, now))  # fmt: skip
        return Relations(
            frozenset(b for (b,) in blocked),
            frozenset(b for (b,) in blocked_by),
            dict(muted.fetchall()),
        )

    async def barriers(self, actor: str, others: Sequence[str], now: int) -> Barriers:
        """Which of ``others`` have a block with ``actor`` (either way) or mute them."""
        if not others:
            return Barriers()
        among = _placeholders(len(others))
        blocked = self._db.execute(
            f"SELECT blocked FROM blocks WHERE blocker = ? AND blocked IN ({among})"
            f" UNION SELECT blocker FROM blocks WHERE blocked = ? AND blocker IN ({among})",
            (actor, *others, actor, *others),
        )
        muting = self._db.execute(
            f"SELECT muter FROM mutes WHERE muted = ? AND muter IN ({among}) AND {_ACTIVE}",
            (actor, *others, now),
        )
        return Barriers(frozenset(u for (u,) in blocked), frozenset(u for (u,) in muting))

    async def relations_page(
        self, user: str, kind: RelationKind, now: int, before: str | None, limit: int
    ) -> Page[Relation]:
        """Whom ``user`` blocked (or muted, mutes in effect at ``now``), newest first."""
        bound = cursor_id(before, NO_BOUND)
        if kind is RelationKind.BLOCK:
            query = "SELECT id, blocked, NULL FROM blocks WHERE blocker = ? AND id < ?"
            params: tuple[object, ...] = (user, bound)
        else:
            query = f"SELECT id, muted, until FROM mutes WHERE muter = ? AND id < ? AND {_ACTIVE}"
            params = (user, bound, now)
        rows = self._db.execute(f"{query} ORDER BY id DESC LIMIT ?", (*params, limit + 1))
        return rows_page(rows.fetchall(), limit, lambda row: Relation(row[0], row[1]))
