"""Reading the Redis store: records from hashes, and keyset pages over sorted sets.

Every listing is one or more sorted sets of ids (scored by id, or by follow id for the
follow lists). A page takes the next ``limit + 1`` ids below (above, for replies) the
cursor from each source, merges them, loads the records and drops what is deleted or
filtered out, fetching further batches only when filtering thinned the page out.

Home feed, merge on read: a user's page merges their fanned-out ``home`` set, their
own ``posts`` and the ``posts`` of each followee in the ``big`` set (authors whose
posts are not fanned out), keeping only posts by the user or a current followee.
So a page costs O((1 + big followees) x limit) however many followers anyone has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

import redis.asyncio as aioredis

from hub.backends.base import cursor_id
from hub.backends.redis_link import Keys, translate_errors
from hub.backends.redis_notes import notification_from_data
from hub.records import Notification, Page, Post, Profile

__all__ = ["RedisPages", "post_from_hash"]

_NO_BOUND = 2**63 - 1
_MAX_BATCH = 1000
PROFILE_FIELDS = ("name", "bio", "created_at", "followers", "following", "posts")
"""The fields of a profile hash, in Profile's order after the id."""


def _opt_int(text: str) -> int | None:
    return int(text) if text else None


def post_from_hash(fields: Mapping[str, str]) -> Post:
    """A Post from its hash (see ``redis_store`` for the field encoding)."""
    return Post(
        id=int(fields["id"]),
        author=fields["author"],
        text=fields["text"],
        created_at=int(fields["created_at"]),
        edited_at=_opt_int(fields["edited_at"]),
        reply_to=_opt_int(fields["reply_to"]),
        root=_opt_int(fields["root"]),
        tags=tuple(fields["tags"].split()),
        mentions=tuple(fields["mentions"].split()),
        likes=int(fields["likes"]),
        replies=int(fields["replies"]),
        deleted=fields["deleted"] == "1",
    )


def profile_from_fields(user: str, values: Sequence[str | None]) -> Profile | None:
    """A Profile from the HMGET of :data:`PROFILE_FIELDS`, None when the hash is absent."""
    name, bio, created, followers, following, posts = values
    if name is None:
        return None
    return Profile(
        user, name, bio or "", int(created or 0), int(followers or 0), int(following or 0),
        int(posts or 0),
    )  # fmt: skip


@translate_errors
class RedisPages:
    """The read side of the Redis store."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._k = keys

    async def get_profile(self, user: str) -> Profile | None:
        """Return the user's profile, or None when the user is unknown."""
        values = await self._r.hmget(self._k.user(user, "profile"), list(PROFILE_FIELDS))
        return profile_from_fields(user, cast("list[str | None]", values))

    async def _profiles(self, users: Sequence[str]) -> list[Profile]:
        async with self._r.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.hmget(self._k.user(user, "profile"), list(PROFILE_FIELDS))
            rows = await pipe.execute()
        found = (profile_from_fields(u, row) for u, row in zip(users, rows, strict=True))
        return [p for p in found if p is not None]

    async def followee_ids(self, user: str) -> list[str]:
        """The ids of everyone ``user`` follows."""
        return cast("list[str]", await self._r.zrange(self._k.user(user, "following"), 0, -1))

    async def _follow_page(self, key: str, before: str | None, limit: int) -> Page[Profile]:
        bound = cursor_id(before, _NO_BOUND)
        rows = cast(
            "list[tuple[str, float]]",
            await self._r.zrevrangebyscore(
                key, f"({bound}", "-inf", start=0, num=limit + 1, withscores=True
            ),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        profiles = await self._profiles([user for user, _ in rows])
        return Page(tuple(profiles), str(int(rows[-1][1])) if more and rows else None)

    async def followers_page(self, user: str, before: str | None, limit: int) -> Page[Profile]:
        """The profiles following ``user``, most recent follow first."""
        return await self._follow_page(self._k.user(user, "followers"), before, limit)

    async def following_page(self, user: str, before: str | None, limit: int) -> Page[Profile]:
        """The profiles ``user`` follows, most recent follow first."""
        return await self._follow_page(self._k.user(user, "following"), before, limit)

    async def get_post(self, post_id: int) -> Post | None:
        """The post, or None when it does not exist or was deleted."""
        fields = cast("dict[str, str]", await self._r.hgetall(self._k.post(post_id)))
        if not fields or fields["deleted"] == "1":
            return None
        return post_from_hash(fields)

    async def _posts(self, ids: Sequence[int]) -> list[Post]:
        async with self._r.pipeline(transaction=False) as pipe:
            for post_id in ids:
                pipe.hgetall(self._k.post(post_id))
            rows: list[dict[str, str]] = await pipe.execute()
        return [post_from_hash(row) for row in rows if row and row["deleted"] == "0"]

    async def _ids_after(
        self, sources: Sequence[str], bound: int, count: int, ascending: bool
    ) -> list[list[str]]:
        async with self._r.pipeline(transaction=False) as pipe:
            for key in sources:
                if ascending:
                    pipe.zrangebyscore(key, f"({bound}", "+inf", start=0, num=count)
                else:
                    pipe.zrevrangebyscore(key, f"({bound}", "-inf", start=0, num=count)
            return list(await pipe.execute())

    async def _collect(
        self,
        sources: Sequence[str],
        before: str | None,
        limit: int,
        *,
        ascending: bool = False,
        keep: Callable[[Post], bool] = lambda post: True,
    ) -> Page[Post]:
        """A page of live posts from the id sets ``sources`` (see the module docstring)."""
        bound = cursor_id(before, 0 if ascending else _NO_BOUND)
        found: list[Post] = []
        batch = limit + 1
        while len(found) <= limit:
            results = await self._ids_after(sources, bound, batch, ascending)
            merged = sorted({int(i) for ids in results for i in ids}, reverse=not ascending)
            taken = merged[:batch]
            if not taken:
                break
            found.extend(post for post in await self._posts(taken) if keep(post))
            if len(merged) <= batch and all(len(ids) < batch for ids in results):
                break
            bound = taken[-1]
            batch = min(batch * 2, _MAX_BATCH)
        more = len(found) > limit
        found = found[:limit]
        return Page(tuple(found), str(found[-1].id) if more else None)

    async def _big_among(self, followees: list[str]) -> list[str]:
        """Which of ``followees`` are big authors (their posts are merged on read)."""
        flags = await self._r.smismember(self._k.global_("big"), followees)
        return [f for f, flag in zip(followees, flags, strict=True) if flag]

    def _homes(self, user: str) -> list[str]:
        """The fanned-out home sets of ``user`` (one on one Redis)."""
        return [self._k.user(user, "home")]

    def _everywhere(self, name: str) -> list[str]:
        """The sets named ``name`` that together hold all of it (one on one Redis)."""
        return [self._k.global_(name)]

    def _tag_lists(self, tag: str) -> list[str]:
        """The sets of live post ids with ``tag`` (one on one Redis)."""
        return [self._k.tag(tag)]

    async def home_page(self, user: str, before: str | None, limit: int) -> Page[Post]:
        """Posts of ``user`` and their followees, newest first (merge of fan-out and big
        authors' own sets; see the module docstring)."""
        followees = await self.followee_ids(user)
        big = await self._big_among(followees) if followees else []
        authors = {user, *followees}
        sources = [*self._homes(user), *(self._k.user(a, "posts") for a in [user, *big])]
        return await self._collect(sources, before, limit, keep=lambda p: p.author in authors)

    async def user_page(self, user: str, before: str | None, limit: int) -> Page[Post]:
        """Posts of ``user``, newest first."""
        return await self._collect([self._k.user(user, "posts")], before, limit)

    async def public_page(self, before: str | None, limit: int) -> Page[Post]:
        """All posts, newest first."""
        return await self._collect(self._everywhere("public"), before, limit)

    async def hashtag_page(self, tag: str, before: str | None, limit: int) -> Page[Post]:
        """Posts carrying ``tag``, newest first."""
        return await self._collect(self._tag_lists(tag), before, limit)

    async def replies_page(self, post_id: int, before: str | None, limit: int) -> Page[Post]:
        """Direct replies to ``post_id``, oldest first."""
        return await self._collect(
            [self._k.post(post_id, "replies")], before, limit, ascending=True
        )

    async def liked_among(self, user: str, post_ids: Sequence[int]) -> set[int]:
        """Which of ``post_ids`` ``user`` likes (unknown ids are simply not in the set)."""
        async with self._r.pipeline(transaction=False) as pipe:
            for post_id in post_ids:
                pipe.sismember(self._k.post(post_id, "likes"), user)
            found = await pipe.execute()
        return {post_id for post_id, liked in zip(post_ids, found, strict=True) if liked}

    async def notifications_page(
        self, user: str, before: str | None, limit: int
    ) -> Page[Notification]:
        """The user's notifications, newest first."""
        bound = cursor_id(before, _NO_BOUND)
        ids = cast(
            "list[str]",
            await self._r.zrevrangebyscore(
                self._k.user(user, "notes"), f"({bound}", "-inf", start=0, num=limit + 1
            ),
        )
        more = len(ids) > limit
        ids = ids[:limit]
        if not ids:
            return Page((), None)
        data = await self._r.hmget(self._k.user(user, "notes:data"), ids)
        unread = await self._r.zmscore(self._k.user(user, "unread"), ids)
        items = tuple(
            notification_from_data(int(nid), user, fields, score is None)
            for nid, fields, score in zip(ids, data, unread, strict=True)
        )
        return Page(items, ids[-1] if more else None)

    async def unread_count(self, user: str) -> int:
        """How many of the user's notifications are unread."""
        return int(await self._r.zcard(self._k.user(user, "unread")))
