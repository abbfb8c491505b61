"""The embedded store's migration to notification groups merges what was stored before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.backends.sqlite import SqliteBackend
from hub.backends.sqlite_schema import MIGRATIONS, NOTIFICATION_GROUPS, migrate


async def test_the_migration_merges_notifications_into_groups(tmp_path: Path) -> None:
    path = tmp_path / "hubbub.sqlite3"
    version = MIGRATIONS.index(NOTIFICATION_GROUPS)
    with sqlite3.connect(path, isolation_level=None) as db:  # the schema just before
        for script in MIGRATIONS[:version]:
            db.executescript(script)
        db.execute(f"PRAGMA user_version = {version}")
        db.executemany(
            "INSERT INTO profiles (id, name, created_at) VALUES (?, ?, 0)",
            [(user, user) for user in ("ann", "bob", "cat", "dan", "eve")],
        )
        db.execute("INSERT INTO posts (author, text, created_at) VALUES ('ann', 'hi', 0)")
        db.executemany(
            "INSERT INTO notifications (user, kind, actor, post, created_at, read)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [  # 19 toggles of bob's, then cat, dan, eve; two follows; one for bob
                *[("ann", "like", "bob", 1, at, 1) for at in range(19)],
                ("ann", "like", "cat", 1, 20, 1),
                ("ann", "like", "dan", 1, 21, 1),
                ("ann", "like", "eve", 1, 22, 0),
                ("ann", "like", "bob", 1, 23, 0),
                ("ann", "follow", "bob", None, 24, 0),
                ("ann", "follow", "bob", None, 25, 0),
                ("bob", "follow", "ann", None, 26, 1),
            ],
        )
        assert migrate(db) == len(MIGRATIONS)
    backend = await SqliteBackend.open(tmp_path)
    store = backend.store
    follows, likes = (await store.notifications_page("ann", None, 10)).items
    assert (follows.kind, follows.actors, follows.others, follows.created_at) == (
        "follow", ("bob",), 0, 25
    )  # fmt: skip
    assert (likes.actor, likes.actors, likes.others, likes.read) == (
        "bob", ("bob", "eve", "dan"), 3, False
    )  # fmt: skip
    assert await store.unread_count("ann") == 2
    assert (await store.like("cat", 1, "ann", 30)).changes == ()  # cat is in the group
    assert await store.prune_notifications(0, 1) == 1  # ann had 2: the count prune sees her
    assert len((await store.notifications_page("bob", None, 10)).items) == 1
    await backend.close()
