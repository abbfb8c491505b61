"""The embedded database: opening the connection, the schema and its migrations.

The schema version is SQLite's ``PRAGMA user_version``. ``MIGRATIONS[i]`` takes the
database from version ``i`` to ``i + 1``; :func:`migrate` applies the missing ones in one
transaction each. Add a migration by appending to the list; never edit an old one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

__all__ = [
    "DB_FILENAME",
    "MIGRATIONS",
    "NOTIFICATION_GROUPS",
    "Synchronous",
    "connect",
    "migrate",
    "transaction",
]

DB_FILENAME = "hubbub.sqlite3"
"""The database file's name inside the data directory."""

Synchronous = Literal["normal", "full"]
"""SQLite ``synchronous`` modes the backend supports (NORMAL survives a process kill)."""

_V1 = """
CREATE TABLE profiles (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    bio        TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    followers  INTEGER NOT NULL DEFAULT 0,
    following  INTEGER NOT NULL DEFAULT 0,
    posts      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE follows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    follower   TEXT NOT NULL REFERENCES profiles(id),
    followee   TEXT NOT NULL REFERENCES profiles(id),
    created_at INTEGER NOT NULL,
    UNIQUE (follower, followee)
);
CREATE INDEX follows_by_follower ON follows(follower, id);
CREATE INDEX follows_by_followee ON follows(followee, id);

CREATE TABLE posts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    author     TEXT NOT NULL REFERENCES profiles(id),
    text       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    edited_at  INTEGER,
    reply_to   INTEGER REFERENCES posts(id),
    root       INTEGER REFERENCES posts(id),
    tags       TEXT NOT NULL DEFAULT '',
    mentions   TEXT NOT NULL DEFAULT '',
    likes      INTEGER NOT NULL DEFAULT 0,
    replies    INTEGER NOT NULL DEFAULT 0,
    deleted    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX posts_by_author ON posts(author, deleted, id);
CREATE INDEX posts_by_parent ON posts(reply_to, deleted, id);

CREATE TABLE post_tags (
    tag     TEXT NOT NULL,
    post_id INTEGER NOT NULL REFERENCES posts(id),
    PRIMARY KEY (tag, post_id)
) WITHOUT ROWID;

CREATE TABLE likes (
    post_id INTEGER NOT NULL REFERENCES posts(id),
    user    TEXT NOT NULL REFERENCES profiles(id),
    PRIMARY KEY (post_id, user)
) WITHOUT ROWID;

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user       TEXT NOT NULL REFERENCES profiles(id),
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL REFERENCES profiles(id),
    post       INTEGER REFERENCES posts(id),
    created_at INTEGER NOT NULL,
    read       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notifications_by_user ON notifications(user, id);
CREATE INDEX notifications_unread ON notifications(user, id) WHERE read = 0;

CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    log        TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    author     TEXT NOT NULL,
    post       INTEGER,
    root       INTEGER,
    reply_to   INTEGER,
    tags       TEXT NOT NULL,
    recipient  TEXT,
    data       BLOB NOT NULL
);
CREATE INDEX changes_by_log ON changes(log, seq);

CREATE TABLE pruned (
    log     TEXT PRIMARY KEY,
    through INTEGER NOT NULL
) WITHOUT ROWID;
"""

_V2 = """
CREATE TABLE change_tags (
    tag TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tag, seq)
) WITHOUT ROWID;
INSERT INTO change_tags (tag, seq)
    WITH RECURSIVE split(seq, tag, rest) AS (
        SELECT seq, '', tags || ' ' FROM changes WHERE kind <> 'notification' AND tags <> ''
        UNION ALL
        SELECT seq, substr(rest, 1, instr(rest, ' ') - 1), substr(rest, instr(rest, ' ') + 1)
        FROM split WHERE rest <> ''
    )
    SELECT DISTINCT tag, seq FROM split WHERE tag <> '';

CREATE INDEX changes_of_posts ON changes(seq) WHERE kind <> 'notification';
CREATE INDEX changes_by_post ON changes(post, seq)
    WHERE kind <> 'notification' AND post IS NOT NULL;
CREATE INDEX changes_by_root ON changes(root, seq)
    WHERE kind <> 'notification' AND root IS NOT NULL;
CREATE INDEX changes_by_parent ON changes(reply_to, seq)
    WHERE kind <> 'notification' AND reply_to IS NOT NULL;

INSERT INTO pruned (log, through)
    SELECT 'posts', max(through) FROM pruned WHERE log GLOB 'u:*'
    HAVING max(through) IS NOT NULL;
"""
"""Resume reads through indexes, never a scan (``hub.backends.sqlite_changelog``):
``change_tags`` holds one row per tag of each post change (written with the change,
deleted with it; back-filled here); partial indexes find the post changes in sequence
order (``public``) and those of a thread by ``post``, ``root`` or ``reply_to``; the
``pruned`` row ``posts`` is the highest sequence pruned from any post log."""

_V3 = """
CREATE TABLE counts_pending (
    post_id INTEGER PRIMARY KEY,
    since   INTEGER NOT NULL
);
"""
"""A like or unlike marks its post here in its own transaction; the ``post.counts``
change that carries the new counter clears the mark in its transaction, so a counter no
change has logged yet is always findable (``SqliteStore.pending_counts``)."""

BLOCKS_AND_MUTES = """
CREATE TABLE blocks (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    blocker TEXT NOT NULL REFERENCES profiles(id),
    blocked TEXT NOT NULL REFERENCES profiles(id),
    UNIQUE (blocker, blocked)
);
CREATE INDEX blocks_by_blocked ON blocks(blocked);
CREATE INDEX blocks_by_blocker ON blocks(blocker, id);

CREATE TABLE mutes (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    muter TEXT NOT NULL REFERENCES profiles(id),
    muted TEXT NOT NULL REFERENCES profiles(id),
    until INTEGER,
    UNIQUE (muter, muted)
);
CREATE INDEX mutes_by_muted ON mutes(muted);
CREATE INDEX mutes_by_muter ON mutes(muter, id);
CREATE INDEX mutes_by_end ON mutes(until) WHERE until IS NOT NULL;
"""
"""Blocks and mutes (``hub.backends.sqlite_relations``); a mute's ``until`` is NULL when
it lasts until lifted (``mutes_by_end`` finds those that ran out, for the prune round).
Ids order the lists (newest first) and are their page cursors."""


NOTIFICATION_GROUPS = """
ALTER TABLE notifications ADD COLUMN actors TEXT NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN actor_count INTEGER NOT NULL DEFAULT 1;

CREATE TABLE notification_actors (
    user  TEXT NOT NULL,
    kind  TEXT NOT NULL,
    post  INTEGER NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (user, kind, post, actor)
) WITHOUT ROWID;
INSERT OR IGNORE INTO notification_actors (user, kind, post, actor)
    SELECT user, kind, ifnull(post, 0), actor FROM notifications;

UPDATE notifications SET
    actor_count = (
        SELECT count(DISTINCT o.actor) FROM notifications o WHERE o.user = notifications.user
        AND o.kind = notifications.kind AND ifnull(o.post, 0) = ifnull(notifications.post, 0)
    ),
    actors = (
        SELECT group_concat(actor, ' ') FROM (
            SELECT o.actor FROM notifications o WHERE o.user = notifications.user
            AND o.kind = notifications.kind AND ifnull(o.post, 0) = ifnull(notifications.post, 0)
            GROUP BY o.actor ORDER BY max(o.id) DESC LIMIT 3
        )
    )
    WHERE id IN (SELECT max(id) FROM notifications GROUP BY user, kind, ifnull(post, 0));
DELETE FROM notifications
    WHERE id NOT IN (SELECT max(id) FROM notifications GROUP BY user, kind, ifnull(post, 0));
CREATE UNIQUE INDEX notifications_group ON notifications(user, kind, ifnull(post, 0));
CREATE INDEX notifications_by_age ON notifications(created_at);

CREATE TABLE notifications_added (user TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO notifications_added (user) SELECT DISTINCT user FROM notifications;
"""
"""Notifications are groups (``SqliteStore`` and docs/architecture.md, "Notifications"):
one row per (user, kind, post) (``notifications_group``; a follow's post is NULL, 0 in
the key), naming its newest actors (``actors``, space-separated, newest first, at most
3) and counting them all (``actor_count``); ``notification_actors`` holds every actor of
every group (the deduplication key), deleted with its group. Existing rows are merged
into their groups here. ``notifications_by_age`` serves the age prune,
``notifications_added`` (users who got a new group since the last count prune) the count
prune. Independent of the other migrations: it touches only these tables."""


SCRUB = """
ALTER TABLE changes ADD COLUMN origin INTEGER
"""
"""An edit or a deletion deletes its post's earlier changes (``SqliteChangeLog.scrub``)
and keeps in ``origin`` the sequence of the post's creation, for a replay to restate the
post; ``change_tags`` rows of tag ``*`` mark edits and deletions (every tag stream's
replay reads them)."""

MIGRATIONS: list[str] = [_V1, _V2, _V3, BLOCKS_AND_MUTES, NOTIFICATION_GROUPS, SCRUB]
"""SQL scripts; entry ``i`` migrates schema version ``i`` to ``i + 1``."""


def connect(path: Path, synchronous: Synchronous = "normal") -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path``, configured and migrated.

    WAL journal, the given ``synchronous`` mode, foreign keys on, a busy timeout,
    ``secure_delete`` (deleted rows are overwritten with zeros, so a scrubbed post text
    leaves no bytes in the pages; the WAL's old frames go at the checkpoint each prune
    round runs), and autocommit mode so that :func:`transaction` controls every
    transaction explicitly.
    """
    if synchronous not in ("normal", "full"):
        raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA secure_delete = ON")
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema up to date; return the resulting version.

    Refuses a database written by a newer version of the hub.
    """
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise RuntimeError(f"database schema version {version} is newer than this hub")
    for target in range(version + 1, len(MIGRATIONS) + 1):
        with transaction(db):
            for statement in _statements(MIGRATIONS[target - 1]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")
    return len(MIGRATIONS)


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (scripts hold no ``;`` inside literals)."""
    for statement in script.split(";"):
        if statement.strip():
            yield statement


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one write transaction: committed on success, rolled back on error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
