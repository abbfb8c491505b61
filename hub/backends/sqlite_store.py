"""The embedded Store: social data in SQLite (see ``sqlite_schema`` for the tables).

Calls are synchronous inside the async methods: every statement is an indexed lookup or a
bounded range scan, so they are fast enough to run on the event loop. Each write method
runs in one transaction that holds the record, its notifications and its changes (with
their sequence numbers, through :meth:`SqliteChangeLog.insert`); once committed, the
changes are announced on the in-process bus (``hub.backends.base``: one write, one
commit).

Page cursors are ``str(id)`` of the last item's key (post id, follow id, notification id);
pages are keyset-paginated (``id < before`` newest first, ``id > before`` for replies).

Notifications are groups (``hub.records.Notification``): one ``notifications`` row per
(user, kind, post), and one ``notification_actors`` row per actor of it. A new actor
replaces the row with one under a new (higher) id, so the notification page stays a
plain keyset page over ids, mark-read's ``up_to`` covers exactly what was shown, and an
actor already in the group (a like/unlike/like toggle) adds nothing (see ``sqlite_schema``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import sqlite3
from collections.abc import Sequence

from hub import changes
from hub.backends.base import FollowChange, MissingRecord, cursor_id
from hub.backends.sqlite_changelog import SqliteChangeLog
from hub.backends.sqlite_relations import SqliteRelations
from hub.backends.sqlite_rows import NO_BOUND as _NO_BOUND
from hub.backends.sqlite_rows import Row
from hub.backends.sqlite_rows import rows_page as _page
from hub.backends.sqlite_schema import transaction
from hub.records import (
    SHOWN_ACTORS,
    Change,
    Committed,
    NewChange,
    Notice,
    Notification,
    Page,
    Post,
    Profile,
)

__all__ = ["PRUNE_BATCH", "SqliteStore"]

_PROFILE = "p.id, p.name, p.bio, p.created_at, p.followers, p.following, p.posts"
_POST = (
    "p.id, p.author, p.text, p.created_at, p.edited_at, p.reply_to, p.root, p.tags,"
    " p.mentions, p.likes, p.replies, p.deleted"
)
_NOTIFICATION = "id, user, kind, actor, post, created_at, read, actors, actor_count"
_GROUP = "user = ? AND kind = ? AND ifnull(post, 0) = ?"  # uses notifications_group
_GROUP_ROW = "id, user, kind, ifnull(post, 0)"
PRUNE_BATCH = 500
"""Notification groups one prune transaction removes at most (it yields in between)."""


def _profile(row: Row) -> Profile:
    return Profile(*row)


def _post(row: Row) -> Post:
    pid, author, text, created, edited, reply_to, root, tags, mentions, likes, replies, gone = row
    return Post(
        id=pid,
        author=author,
        text=text,
        created_at=created,
        edited_at=edited,
        reply_to=reply_to,
        root=root,
        tags=tuple(tags.split()),
        mentions=tuple(mentions.split()),
        likes=likes,
        replies=replies,
        deleted=bool(gone),
    )


def _notification(row: Row) -> Notification:
    nid, user, kind, actor, post, created, read, actors, count = row
    shown = tuple(actors.split()) or (actor,)
    return Notification(nid, user, kind, actor, post, created, bool(read), shown, count - 1)


def _drop_groups(db: sqlite3.Connection, doomed: list[Row]) -> int:
    """Delete the notification groups ``doomed`` (rows of :data:`_GROUP_ROW`) and their
    actors inside the open transaction ``db``; return how many."""
    db.executemany("DELETE FROM notifications WHERE id = ?", [row[:1] for row in doomed])
    db.executemany(
        "DELETE FROM notification_actors WHERE user = ? AND kind = ? AND post = ?",
        [row[1:] for row in doomed],
    )
    return len(doomed)


class SqliteStore(SqliteRelations):
    """Store implementation on one SQLite connection (see :class:`hub.backends.base.Store`)."""

    def __init__(self, db: sqlite3.Connection, changelog: SqliteChangeLog) -> None:
        self._db = db
        self._log = changelog

    def _commit_changes(self, db: sqlite3.Connection, new: list[NewChange]) -> tuple[Change, ...]:
        """Insert ``new`` into the change log inside the open transaction ``db``."""
        return tuple(self._log.insert(db, new))

    # -- profiles and follows ------------------------------------------------------------

    def _profile(self, user: str) -> Profile | None:
        row = self._db.execute(f"SELECT {_PROFILE} FROM profiles p WHERE id = ?", (user,))
        found = row.fetchone()
        return None if found is None else _profile(found)

    async def ensure_profile(self, user: str, now: int) -> Profile:
        """Return the user's profile, creating it (name = user id) on first sight."""
        found = self._profile(user)
        if found is not None:
            return found
        with transaction(self._db) as db:
            db.execute(
                "INSERT OR IGNORE INTO profiles (id, name, created_at) VALUES (?, ?, ?)",
                (user, user, now),
            )
        return self._existing_profile(user)

    def _existing_profile(self, user: str) -> Profile:
        found = self._profile(user)
        if found is None:
            raise MissingRecord(f"no user {user!r}")
        return found

    async def get_profile(self, user: str) -> Profile | None:
        """Return the user's profile, or None when the user is unknown."""
        return self._profile(user)

    async def update_profile(self, user: str, name: str | None, bio: str | None) -> Profile:
        """Change the name and/or bio (None keeps the current value); return the profile."""
        with transaction(self._db) as db:
            db.execute(
                "UPDATE profiles SET name = coalesce(?, name), bio = coalesce(?, bio) WHERE id = ?",
                (name, bio, user),
            )
        return self._existing_profile(user)

    def _adjust_follow_counts(self, follower: str, followee: str, delta: int) -> None:
        self._db.execute(
            "UPDATE profiles SET following = following + ? WHERE id = ?", (delta, follower)
        )
        self._db.execute(
            "UPDATE profiles SET followers = followers + ? WHERE id = ?", (delta, followee)
        )

    async def follow(self, follower: str, followee: str, now: int) -> Committed[bool]:
        """Make ``follower`` follow ``followee``; value: True when newly following.

        A new follow publishes a FollowChange and commits a ``follow`` notification,
        unless ``follower`` is in the followee's follow group already (deduplicated).
        """
        try:
            with transaction(self._db) as db:
                self._refuse_if_blocked(db, follower, followee)
                added = db.execute(
                    "INSERT OR IGNORE INTO follows (follower, followee, created_at)"
                    " VALUES (?, ?, ?)",
                    (follower, followee, now),
                ).rowcount
                if not added:
                    return Committed(False)
                self._adjust_follow_counts(follower, followee, 1)
                notice = self._notify(db, Notice(followee, "follow"), follower, None, now)
                committed = self._commit_changes(db, notice)
        except sqlite3.IntegrityError as exc:
            raise MissingRecord(f"no user {follower!r} or {followee!r}") from exc
        after = committed[-1].seq if committed else await self._log.head()
        self._log.announce([*committed, FollowChange(follower, followee, True, after)])
        return Committed(True, committed)

    async def unfollow(self, follower: str, followee: str) -> Committed[bool]:
        """Stop following; value: True when ``follower`` was following ``followee``.

        A removed follow publishes a FollowChange.
        """
        with transaction(self._db) as db:
            removed = self._drop_follow(db, follower, followee)
        if not removed:
            return Committed(False)
        self._log.announce([FollowChange(follower, followee, False, await self._log.head())])
        return Committed(True)

    async def followee_ids(self, user: str) -> list[str]:
        """The ids of everyone ``user`` follows."""
        rows = self._db.execute("SELECT followee FROM follows WHERE follower = ?", (user,))
        return [followee for (followee,) in rows]

    def _follow_page(self, side: str, user: str, before: str | None, limit: int) -> Page[Profile]:
        """Profiles on the other ``side`` of ``user``'s follows, most recent first."""
        other = "follower" if side == "followee" else "followee"
        rows = self._db.execute(
            f"SELECT f.id, {_PROFILE} FROM follows f JOIN profiles p ON p.id = f.{other}"
            f" WHERE f.{side} = ? AND f.id < ? ORDER BY f.id DESC LIMIT ?",
            (user, cursor_id(before, _NO_BOUND), limit + 1),
        ).fetchall()
        return _page(rows, limit, _profile)

    async def followers_page(self, user: str, before: str | None, limit: int) -> Page[Profile]:
        """The profiles following ``user``, most recent follow first."""
        return self._follow_page("followee", user, before, limit)

    async def following_page(self, user: str, before: str | None, limit: int) -> Page[Profile]:
        """The profiles ``user`` follows, most recent follow first."""
        return self._follow_page("follower", user, before, limit)

    # -- posts ---------------------------------------------------------------------------

    def _post(self, post_id: int) -> Post | None:
        found = self._db.execute(
            f"SELECT {_POST} FROM posts p WHERE id = ? AND deleted = 0", (post_id,)
        ).fetchone()
        return None if found is None else _post(found)

    def _existing_post(self, post_id: int) -> Post:
        found = self._post(post_id)
        if found is None:
            raise MissingRecord(f"no post {post_id}")
        return found

    def _set_tags(self, post_id: int, tags: Sequence[str]) -> None:
        self._db.execute("DELETE FROM post_tags WHERE post_id = ?", (post_id,))
        self._db.executemany(
            "INSERT OR IGNORE INTO post_tags (tag, post_id) VALUES (?, ?)",
            [(tag, post_id) for tag in tags],
        )

    def _bump(self, table: str, column: str, key: object, delta: int) -> None:
        """Add ``delta`` to a counter column of an existing (for posts: live) row."""
        live = " AND deleted = 0" if table == "posts" and delta > 0 else ""
        changed = self._db.execute(
            f"UPDATE {table} SET {column} = {column} + ? WHERE id = ?{live}", (delta, key)
        ).rowcount
        if not changed:
            raise MissingRecord(f"no row {key!r} in {table}")

    async def create_post(  # noqa: PLR0917 - the contract's positional signature
        self,
        author: str,
        text: str,
        reply_to: int | None,
        root: int | None,
        tags: Sequence[str],
        mentions: Sequence[str],
        notices: Sequence[Notice],
        now: int,
    ) -> Committed[Post]:
        """Store a new post (bumping the parent's reply count for a reply).

        Commits ``post.created``, the parent's ``post.counts`` for a reply, and one
        notification per notice.
        """
        try:
            with transaction(self._db) as db:
                if reply_to is not None:
                    self._refuse_if_blocked(db, author, self._existing_post(reply_to).author)
                self._bump("profiles", "posts", author, 1)
                if reply_to is not None:
                    self._bump("posts", "replies", reply_to, 1)
                post_id = db.execute(
                    "INSERT INTO posts (author, text, created_at, reply_to, root, tags, mentions)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (author, text, now, reply_to, root, " ".join(tags), " ".join(mentions)),
                ).lastrowid
                assert post_id is not None
                self._set_tags(post_id, tags)
                post = self._existing_post(post_id)
                new = [changes.created(post, now), *self._counts_of(reply_to, now)]
                for notice in notices:
                    new += self._notify(db, notice, author, post_id, now)
                committed = self._commit_changes(db, new)
        except sqlite3.IntegrityError as exc:
            raise MissingRecord(f"no user among {author!r} and the notified") from exc
        self._log.announce(committed)
        return Committed(post, committed)

    def _counts_of(self, post_id: int | None, now: int) -> list[NewChange]:
        """A ``post.counts`` change for a live post (none for no post or a deleted one)."""
        post = None if post_id is None else self._post(post_id)
        return [] if post is None else [changes.counts(post, now)]

    async def record_counts(self, post_id: int, now: int) -> Committed[None]:
        """Commit one ``post.counts`` change with the post's current counters, and clear
        the post's pending mark."""
        with transaction(self._db) as db:
            db.execute("DELETE FROM counts_pending WHERE post_id = ?", (post_id,))
            committed = self._commit_changes(db, self._counts_of(post_id, now))
        self._log.announce(committed)
        return Committed(None, committed)

    async def pending_counts(self, marked_before: int, limit: int) -> list[int]:
        """Posts whose changed counter no ``post.counts`` change has logged yet."""
        rows = self._db.execute(
            "SELECT post_id FROM counts_pending WHERE since <= ? ORDER BY since LIMIT ?",
            (marked_before, limit),
        )
        return [post_id for (post_id,) in rows]

    async def get_post(self, post_id: int) -> Post | None:
        """The post, or None when it does not exist or was deleted."""
        return self._post(post_id)

    async def edit_post(
        self, post_id: int, text: str, tags: Sequence[str], mentions: Sequence[str], now: int
    ) -> Committed[Post]:
        """Replace the text, tags and mentions of a post; commit ``post.edited``, which
        scrubs the post's earlier changes (with the old text) from the log."""
        with transaction(self._db) as db:
            old = self._existing_post(post_id)
            db.execute(
                "UPDATE posts SET text = ?, tags = ?, mentions = ?, edited_at = ? WHERE id = ?",
                (text, " ".join(tags), " ".join(mentions), now, post_id),
            )
            self._set_tags(post_id, tags)
            new = self._existing_post(post_id)
            origin = self._log.scrub(db, post_id)
            committed = self._commit_changes(db, [changes.edited(old, new, now, origin)])
        self._log.announce(committed)
        return Committed(new, committed)

    async def delete_post(self, post_id: int, now: int) -> Committed[Post]:
        """Soft-delete a post (its id is never reused): its row keeps no text, tags or
        mentions, and its earlier changes are scrubbed from the log; commit
        ``post.deleted`` and, for a reply, the parent's ``post.counts``."""
        with transaction(self._db) as db:
            post = self._existing_post(post_id)
            db.execute(
                "UPDATE posts SET deleted = 1, text = '', tags = '', mentions = '' WHERE id = ?",
                (post_id,),
            )
            db.execute("DELETE FROM post_tags WHERE post_id = ?", (post_id,))
            self._bump("profiles", "posts", post.author, -1)
            if post.reply_to is not None:
                self._bump("posts", "replies", post.reply_to, -1)
            gone = dataclasses.replace(post, deleted=True)
            origin = self._log.scrub(db, post_id)
            new = [changes.deleted(gone, now, origin), *self._counts_of(post.reply_to, now)]
            committed = self._commit_changes(db, new)
        self._log.announce(committed)
        return Committed(gone, committed)

    async def like(
        self, user: str, post_id: int, notify: str | None, now: int
    ) -> Committed[tuple[bool, int]]:
        """Like a post (idempotent); value: (changed?, like count now).

        A new like commits a ``like`` notification for ``notify`` (the author), if any,
        unless ``user`` is in the post's like group already (deduplicated).
        """
        statement = "INSERT OR IGNORE INTO likes (post_id, user) VALUES (?, ?)"
        liked = None if notify is None else Notice(notify, "like")
        return self._set_like(user, post_id, statement, 1, liked, now)

    async def unlike(self, user: str, post_id: int, now: int) -> Committed[tuple[bool, int]]:
        """Withdraw a like (idempotent); value: (changed?, like count now)."""
        statement = "DELETE FROM likes WHERE post_id = ? AND user = ?"
        return self._set_like(user, post_id, statement, -1, None, now)

    async def liked_among(self, user: str, post_ids: Sequence[int]) -> set[int]:
        """Which of ``post_ids`` ``user`` likes (unknown ids are simply not in the set)."""
        if not post_ids:
            return set()
        marks = ",".join("?" * len(post_ids))
        rows = self._db.execute(
            f"SELECT post_id FROM likes WHERE user = ? AND post_id IN ({marks})",
            (user, *post_ids),
        )
        return {post_id for (post_id,) in rows}

    def _set_like(  # noqa: PLR0917 - the like/unlike statement and its context
        self,
        user: str,
        post_id: int,
        statement: str,
        delta: int,
        notify: Notice | None,
        now: int,
    ) -> Committed[tuple[bool, int]]:
        """Run the like/unlike ``statement``; keep the post's counter in step and mark it
        pending; commit the notification of a new like, if any."""
        committed: tuple[Change, ...] = ()
        try:
            with transaction(self._db) as db:
                post = self._existing_post(post_id)
                if delta > 0:
                    self._refuse_if_blocked(db, user, post.author)
                likes = post.likes
                changed = db.execute(statement, (post_id, user)).rowcount == 1
                if changed:
                    db.execute("UPDATE posts SET likes = likes + ? WHERE id = ?", (delta, post_id))
                    db.execute(
                        "INSERT OR IGNORE INTO counts_pending (post_id, since) VALUES (?, ?)",
                        (post_id, now),
                    )
                if changed and notify is not None:
                    notice = self._notify(db, notify, user, post_id, now)
                    committed = self._commit_changes(db, notice)
                likes += delta if changed else 0
        except sqlite3.IntegrityError as exc:
            raise MissingRecord(f"no user {user!r}") from exc
        self._log.announce(committed)
        return Committed((changed, likes), committed)

    # -- feeds ---------------------------------------------------------------------------

    def _posts_page(
        self,
        where: str,
        args: tuple[object, ...],
        before: str | None,
        limit: int,
        order: str = "DESC",
    ) -> Page[Post]:
        """Live posts matching ``where`` past the cursor, keyed and ordered by id."""
        bound = cursor_id(before, _NO_BOUND if order == "DESC" else 0)
        op = "<" if order == "DESC" else ">"
        rows = self._db.execute(
            f"SELECT p.id, {_POST} FROM posts p WHERE {where} AND p.deleted = 0"
            f" AND p.id {op} ? ORDER BY p.id {order} LIMIT ?",
            (*args, bound, limit + 1),
        ).fetchall()
        return _page(rows, limit, _post)

    async def home_page(self, user: str, before: str | None, limit: int) -> Page[Post]:
        """Posts of ``user`` and their followees, newest first.

        Merge on read: the embedded store keeps no per-user feed. It takes the newest
        ``limit + 1`` ids of each author through the ``(author, deleted, id)`` index and
        merges them, so a page costs O(followees x limit) index steps, independent of how
        many posts those authors have.
        """
        bound = cursor_id(before, _NO_BOUND)
        authors = [user, *await self.followee_ids(user)]
        newest: list[int] = []
        for author in authors:
            newest.extend(
                pid
                for (pid,) in self._db.execute(
                    "SELECT id FROM posts WHERE author = ? AND deleted = 0 AND id < ?"
                    " ORDER BY id DESC LIMIT ?",
                    (author, bound, limit + 1),
                )
            )
        ids = heapq.nlargest(limit + 1, newest)
        marks = ",".join("?" * len(ids))
        return self._posts_page(f"p.id IN ({marks})", tuple(ids), None, limit)

    async def user_page(self, user: str, before: str | None, limit: int) -> Page[Post]:
        """Posts of ``user``, newest first."""
        return self._posts_page("p.author = ?", (user,), before, limit)

    async def public_page(self, before: str | None, limit: int) -> Page[Post]:
        """All posts, newest first."""
        return self._posts_page("1", (), before, limit)

    async def hashtag_page(self, tag: str, before: str | None, limit: int) -> Page[Post]:
        """Posts carrying ``tag``, newest first."""
        rows = self._db.execute(
            f"SELECT t.post_id, {_POST} FROM post_tags t JOIN posts p ON p.id = t.post_id"
            " WHERE t.tag = ? AND t.post_id < ? AND p.deleted = 0"
            " ORDER BY t.post_id DESC LIMIT ?",
            (tag, cursor_id(before, _NO_BOUND), limit + 1),
        ).fetchall()
        return _page(rows, limit, _post)

    async def replies_page(self, post_id: int, before: str | None, limit: int) -> Page[Post]:
        """Direct replies to ``post_id``, oldest first."""
        return self._posts_page("p.reply_to = ?", (post_id,), before, limit, order="ASC")

    # -- notifications -------------------------------------------------------------------

    def _notify(
        self, db: sqlite3.Connection, notice: Notice, actor: str, post: int | None, now: int
    ) -> list[NewChange]:
        """Add ``actor`` to the notification group (user, kind, post) inside the open
        transaction; return its change (carrying the unread count after it), or nothing
        when the actor is in the group already.

        A group that exists is replaced by one with a new id, unread, at the top, naming
        the actor first and counting one actor more (the module docstring).
        """
        group = (notice.user, notice.kind, post or 0)
        joined = db.execute(
            "INSERT OR IGNORE INTO notification_actors (user, kind, post, actor)"
            " VALUES (?, ?, ?, ?)",
            (*group, actor),
        ).rowcount
        if not joined:
            return []
        old = db.execute(
            f"DELETE FROM notifications WHERE {_GROUP} RETURNING actor, actors, actor_count",
            group,
        ).fetchone()
        if old is None:
            shown, count = [actor], 1
            db.execute("INSERT OR IGNORE INTO notifications_added (user) VALUES (?)", group[:1])
        else:
            old_actor, old_actors, old_count = old
            shown = [actor, *(old_actors.split() or [old_actor])][:SHOWN_ACTORS]
            count = old_count + 1
        row = db.execute(
            "INSERT INTO notifications (user, kind, actor, post, created_at, actors, actor_count)"
            f" VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {_NOTIFICATION}",
            (notice.user, notice.kind, actor, post, now, " ".join(shown), count),
        ).fetchone()
        return [changes.notified(_notification(row), self._unread(notice.user), now)]

    async def prune_notifications(self, older_than: int, keep: int) -> int:
        """Remove the notification groups created before ``older_than`` (ms) and all but
        the newest ``keep`` groups of each user; return how many were removed.

        Each group goes with its actors (so an actor may notify again afterwards), in
        transactions of at most :data:`PRUNE_BATCH` groups that yield to the event loop
        in between. Only users who got a new group since the last prune
        (``notifications_added``) can hold more than ``keep``.
        """
        removed = 0
        while True:
            with transaction(self._db) as db:
                doomed = db.execute(
                    f"SELECT {_GROUP_ROW} FROM notifications"
                    " WHERE created_at < ? ORDER BY created_at LIMIT ?",
                    (older_than, PRUNE_BATCH),
                ).fetchall()
                removed += _drop_groups(db, doomed)
            await asyncio.sleep(0)
            if len(doomed) < PRUNE_BATCH:
                break
        while added := self._db.execute(
            "SELECT user FROM notifications_added LIMIT ?", (PRUNE_BATCH,)
        ).fetchall():
            for (user,) in added:
                removed += await self._trim(user, keep)
        return removed

    async def _trim(self, user: str, keep: int) -> int:
        """Remove all but the newest ``keep`` groups of ``user``; clear its added mark."""
        removed = 0
        while True:
            with transaction(self._db) as db:
                doomed = db.execute(
                    f"SELECT {_GROUP_ROW} FROM notifications WHERE user = ?"
                    " ORDER BY id DESC LIMIT ? OFFSET ?",
                    (user, PRUNE_BATCH, keep),
                ).fetchall()
                removed += _drop_groups(db, doomed)
                if len(doomed) < PRUNE_BATCH:
                    db.execute("DELETE FROM notifications_added WHERE user = ?", (user,))
            await asyncio.sleep(0)
            if len(doomed) < PRUNE_BATCH:
                return removed

    async def notifications_page(
        self, user: str, before: str | None, limit: int
    ) -> Page[Notification]:
        """The user's notifications, newest first."""
        rows = self._db.execute(
            f"SELECT id, {_NOTIFICATION} FROM notifications WHERE user = ? AND id < ?"
            " ORDER BY id DESC LIMIT ?",
            (user, cursor_id(before, _NO_BOUND), limit + 1),
        ).fetchall()
        return _page(rows, limit, _notification)

    async def unread_count(self, user: str) -> int:
        """How many of the user's notifications are unread."""
        return self._unread(user)

    def _unread(self, user: str) -> int:
        (count,) = self._db.execute(
            "SELECT count(*) FROM notifications WHERE user = ? AND read = 0", (user,)
        ).fetchone()
        return int(count)

    async def mark_read(self, user: str, up_to: int | None) -> int:
        """Mark notifications with id <= ``up_to`` (all when None) read; return unread count."""
        with transaction(self._db) as db:
            db.execute(
                "UPDATE notifications SET read = 1 WHERE user = ? AND read = 0 AND id <= ?",
                (user, _NO_BOUND if up_to is None else up_to),
            )
        return self._unread(user)

    async def close(self) -> None:
        """Close the connection (shared with the change log of the same backend)."""
        self._db.close()
