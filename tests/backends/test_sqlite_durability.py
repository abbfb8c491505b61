"""The embedded SQLite backend: files, schema version, and durability across crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hub.backends.sqlite import SqliteBackend
from hub.backends.sqlite_schema import MIGRATIONS, migrate
from tests.backends.backend_harness import interest

# The child writes posts that reply and mention (a post, a counts change and notifications
# per write) forever, printing each post id and its change's seq once acknowledged.
CHILD = """
import asyncio, sys
from hub.backends.sqlite import SqliteBackend
from hub.records import Notice

async def main():
    backend = await SqliteBackend.open(sys.argv[1])
    for user in ("ann", "bob", "cat"):
        await backend.store.ensure_profile(user, 0)
    root = (await backend.store.create_post("bob", "root", None, None, (), (), (), 0)).value
    notices = (Notice("bob", "reply"), Notice("cat", "mention"))
    n = 0
    while True:
        n += 1
        written = await backend.store.create_post(
            "ann", f"post {n} @cat", root.id, root.id, (), ("cat",), notices, n
        )
        print(written.value.id, written.changes[0].seq, flush=True)

asyncio.run(main())
"""


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    backend = await SqliteBackend.open(tmp_path, synchronous="full")
    assert backend.path == tmp_path / "hubbub.sqlite3"
    await backend.store.ensure_profile("ann", 1)
    written = (await backend.store.create_post("ann", "kept", None, None, ("x",), (), (), 2)).value
    await backend.close()

    reopened = await SqliteBackend.open(tmp_path)
    try:
        assert await reopened.store.get_post(written.id) == written
        assert await reopened.changelog.head() == 1
        assert len(await reopened.changelog.read_since(0, interest(), 10) or []) == 1
    finally:
        await reopened.close()


async def test_schema_version_is_recorded(tmp_path: Path) -> None:
    backend = await SqliteBackend.open(tmp_path)
    await backend.close()
    db = sqlite3.connect(backend.path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert migrate(db) == len(MIGRATIONS)  # idempotent
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
        with pytest.raises(RuntimeError, match="newer"):
            migrate(db)
    finally:
        db.close()


async def test_bad_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        await SqliteBackend.open(tmp_path, synchronous="off")  # type: ignore[arg-type]


def test_acknowledged_writes_survive_sigkill_and_no_write_is_a_phantom(tmp_path: Path) -> None:
    """SIGKILL in the middle of a stream of writes: every acknowledged post is there with
    its change, and no post or notification exists without its change (one commit)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acknowledged = [child.stdout.readline() for _ in range(50)]
    os.kill(child.pid, signal.SIGKILL)
    acknowledged += child.stdout.readlines()  # whatever it reported before dying
    child.wait()
    assert child.returncode == -signal.SIGKILL
    reported = [tuple(map(int, line.split())) for line in acknowledged if line.strip()]

    async def check() -> None:
        backend = await SqliteBackend.open(tmp_path)
        try:
            for post_id, seq in reported:
                assert await backend.store.get_post(post_id) is not None
                assert await backend.changelog.head() >= seq
            found = await backend.changelog.read_since(0, interest("ann", ("ann",)), 10**6)
            assert found is not None
            assert {c.seq for c in found} >= {seq for _, seq in reported}
        finally:
            await backend.close()
        db = sqlite3.connect(backend.path)
        try:
            posts, post_changes, notes, note_changes = db.execute(
                "SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM changes WHERE kind ="
                " 'post.created'), (SELECT count(*) FROM notifications), (SELECT count(*) FROM"
                " changes WHERE kind = 'notification')"
            ).fetchone()
        finally:
            db.close()
        assert posts == post_changes, f"{posts} posts but {post_changes} post.created changes"
        assert notes == note_changes, f"{notes} notifications but {note_changes} changes"
        assert posts > len(reported) // 2, f"only {posts} posts for {len(reported)} acknowledged"

    asyncio.run(check())
