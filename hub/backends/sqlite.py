"""The embedded backend: Store and ChangeLog on one SQLite database in the data directory.

Open it with :meth:`SqliteBackend.open`; it creates ``<data_dir>/hubbub.sqlite3``, migrates
the schema and hands out a :class:`SqliteStore` and a :class:`SqliteChangeLog` sharing the
one connection. The files are private: a directory the backend creates is 0700, and the
database is created 0600 (SQLite gives its ``-wal`` and ``-shm`` files the database's
mode). ``synchronous="normal"`` (the default) survives a killed process, since
the WAL is written at every commit; ``"full"`` also survives a power loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hub.backends.sqlite_changelog import Publish, SqliteChangeLog
from hub.backends.sqlite_schema import DB_FILENAME, Synchronous, connect
from hub.backends.sqlite_store import SqliteStore

__all__ = ["SqliteBackend", "SqliteChangeLog", "SqliteStore"]


@dataclass(frozen=True, slots=True)
class SqliteBackend:
    """The embedded Store and ChangeLog, sharing one SQLite connection."""

    store: SqliteStore
    changelog: SqliteChangeLog
    path: Path

    @classmethod
    async def open(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "normal",
        retention_seconds: float = 900,
        retention_per_log: int = 1000,
        retention_max_seconds: float = 86_400,
        publish: Publish | None = None,
    ) -> SqliteBackend:
        """Open (creating if needed) the database in ``data_dir``.

        ``retention_seconds``, ``retention_per_log`` and ``retention_max_seconds`` are the
        change log's retention rule;
        ``publish`` receives every committed change and follow update (the in-process
        bus's ``deliver``), in commit order.
        """
        path = Path(data_dir) / DB_FILENAME
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create_private(path)
        db = connect(path, synchronous)
        changelog = SqliteChangeLog(
            db, retention_seconds, retention_per_log, publish, retention_max_seconds
        )
        return cls(store=SqliteStore(db, changelog), changelog=changelog, path=path)

    async def close(self) -> None:
        """Close the shared connection; neither the store nor the change log works after."""
        await self.store.close()


def _create_private(path: Path) -> None:
    """Create ``path`` empty (an empty SQLite database) with mode 0600, whatever the umask,
    unless it exists: SQLite would create it 0644, readable by every user."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
