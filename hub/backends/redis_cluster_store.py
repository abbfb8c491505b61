"""The Store on Redis Cluster: one :class:`RedisStore` per partition, and the writes
that span partitions as steps (docs/cluster.md 1 and 4).

Reads go through :class:`ClusterPages`, the one-Redis reads with :class:`RoutedKeys`: a
user's keys in the user's partition, a post's in the post's, and the lists that exist
once per partition (public, hashtags, the fanned-out home sets, the big authors) merged
over the partitions. Each write runs in the partition of the record it changes; a write
that concerns two partitions runs as one script per partition, in this order:

- **follow** between partitions: the followee's half (followers, count, the follower's
  home set there back-filled, the ``follow`` notification), then the follower's
  (following, count, and the control message carrying the followee partition's counter);
  in one partition, the one-Redis script.
- **post**: the author's partition, numbering above the head of a remote parent's (so a
  reply comes after its parent in the merged order): the post, the author's lists, that
  partition's public and tag lists, the followers' home sets there (a follower's home set
  for an author lives in the author's partition, so the fan-out never leaves it) and the
  notices of users there; then the parent's partition for a reply (its count and
  ``post.counts``), then each other notified user's partition (the ``notification``),
  each step numbering above the one before.
- **like**: the post's partition, which holds the author's notifications too; the liker's
  existence is checked first when they live elsewhere (and a notification for someone
  other than the author is a step in their partition).
- **block, mute** and their undoing: the actor's half, then the target's
  (``RedisRelations``' ``side``).

A check a step cannot make in its partition (the liker exists, a remote parent exists and
no block separates the two authors) is made before the first step. A failing step leaves
the earlier ones in place and the request fails with ``unavailable``. The steps of a
follow, a like, a block or a mute are idempotent, so the retried request completes the
write; a post whose later step failed stays posted, without its parent's count or some
notifications (a retry would post it again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from hub.backends.base import BlockedWrite, MissingRecord, RouteKeys
from hub.backends.partitions import NumberClock, Partitions
from hub.backends.redis_cluster_keys import RoutedKeys
from hub.backends.redis_link import translate_errors
from hub.backends.redis_pages import RedisPages
from hub.backends.redis_partitions import PartitionCounters
from hub.backends.redis_relations import RelationReads
from hub.backends.redis_store import RedisStore
from hub.records import Change, Committed, Notice, Post, Profile

__all__ = ["ClusterPages", "ClusterStore"]

T = TypeVar("T")


@translate_errors
class ClusterPages(RelationReads, RedisPages):
    """The read side of the store over every partition (see the module docstring)."""

    def __init__(self, client: Any, keys: RoutedKeys) -> None:
        super().__init__(client, keys)
        self._routed = keys

    async def _big_among(self, followees: list[str]) -> list[str]:
        """Which of ``followees`` are big authors (each in their partition's ``big``)."""
        async with self._r.pipeline(transaction=False) as pipe:
            for followee in followees:
                pipe.sismember(self._routed.of_user(followee).global_("big"), followee)
            flags = await pipe.execute()
        return [f for f, flag in zip(followees, flags, strict=True) if flag]

    def _homes(self, user: str) -> list[str]:
        """The user's home set in every partition (each holds that partition's authors)."""
        return [keys.user(user, "home") for keys in self._routed.everywhere()]

    def _everywhere(self, name: str) -> list[str]:
        """The copy of ``name`` in every partition."""
        return [keys.global_(name) for keys in self._routed.everywhere()]

    def _tag_lists(self, tag: str) -> list[str]:
        """The list of ``tag`` in every partition."""
        return [keys.tag(tag) for keys in self._routed.everywhere()]


def _in_order(*parts: Committed[Any]) -> tuple[Change, ...]:
    """The changes the steps of one write committed, in order (each step numbers above
    the one before it: the node's clock saw its changes)."""
    return tuple(c for part in parts for c in part.changes)


@translate_errors
class ClusterStore(ClusterPages):
    """Store implementation on Redis Cluster (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        writer: Any,
        partitions: Partitions,
        fanout_limit: int,
        route_keys: RouteKeys,
        *,
        clock: NumberClock | None = None,
    ) -> None:
        """``client`` and ``writer`` are ``redis.asyncio.RedisCluster`` clients (the
        writer never retries a script); every write numbers above ``clock``, which its
        own changes move (the bundle moves it with what the bus hears too)."""
        super().__init__(client, RoutedKeys(partitions))
        self._parts = partitions
        self._counters = PartitionCounters(client, partitions)
        self._clock = clock or NumberClock()
        self.fanout_limit = fanout_limit
        self._stores = [
            RedisStore(
                client,
                writer,
                self._routed.of(part),
                fanout_limit,
                route_keys,
                partition=(part, partitions.count),
                clock=self._clock,
            )
            for part in range(partitions.count)
        ]

    def _seen(self, committed: Committed[T]) -> Committed[T]:
        """``committed``, its changes shown to the clock (so the next step numbers above)."""
        for change in committed.changes:
            self._clock.saw(change.seq)
        return committed

    def _of_user(self, user: str) -> RedisStore:
        return self._stores[self._parts.of_user(user)]

    def _of_post(self, post_id: int) -> RedisStore:
        return self._stores[self._parts.of_post(post_id)]

    def _apart(self, user: str, other: str) -> bool:
        return self._parts.of_user(user) != self._parts.of_user(other)

    async def _must_exist(self, user: str) -> None:
        if await self.get_profile(user) is None:
            raise MissingRecord(f"no user {user}")

    async def ensure_profile(self, user: str, now: int) -> Profile:
        """Return the user's profile, creating it (name = user id) on first sight."""
        return await self._of_user(user).ensure_profile(user, now)

    async def update_profile(self, user: str, name: str | None, bio: str | None) -> Profile:
        """Change the name and/or bio (None keeps the current value); return the profile."""
        return await self._of_user(user).update_profile(user, name, bio)

    async def follow(self, follower: str, followee: str, now: int) -> Committed[bool]:
        """Make ``follower`` follow ``followee``: one script in one partition, else the
        followee's half then the follower's; value: True when newly following."""
        if not self._apart(follower, followee):
            return self._seen(await self._of_user(follower).follow(follower, followee, now))
        await self._must_exist(follower)
        done, head = await self._of_user(followee).followed(follower, followee, now, on=True)
        self._seen(done)
        await self._of_user(follower).following(follower, followee, head, on=True)
        return done

    async def unfollow(self, follower: str, followee: str) -> Committed[bool]:
        """Stop following; value: True when ``follower`` was following ``followee``."""
        if not self._apart(follower, followee):
            return await self._of_user(follower).unfollow(follower, followee)
        done, head = await self._of_user(followee).followed(follower, followee, 0, on=False)
        changed = await self._of_user(follower).following(follower, followee, head, on=False)
        return Committed(changed or done.value)

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
        """Store a new post in the author's partition, then count it in a parent of
        another partition and notify the users of other partitions (module docstring)."""
        part = self._parts.of_user(author)
        parent, floor = None, 0
        if reply_to is not None and self._parts.of_post(reply_to) != part:
            parent, floor = await asyncio.gather(
                self.get_post(reply_to), self._counters.head(self._parts.of_post(reply_to))
            )
            if parent is None:
                raise MissingRecord(f"no post {reply_to}")
            if (await self.barriers(author, [parent.author], now)).blocked:
                raise BlockedWrite(f"a block between {author} and {parent.author}")
        here = [notice for notice in notices if self._parts.of_user(notice.user) == part]
        created = self._seen(
            await self._stores[part].create_post(
                author, text, reply_to, root, tags, mentions, here, now, floor=floor
            )
        )
        post = created.value
        steps: list[Committed[Any]] = [created]
        if parent is not None:
            store = self._of_post(parent.id)
            steps.append(self._seen(await store.replied(parent, post.id, 1, now)))
        for notice in notices:
            if self._parts.of_user(notice.user) != part:
                store = self._of_user(notice.user)
                notified = await store.notify(notice.user, notice.kind, author, post.id, now)
                steps.append(self._seen(notified))
        return Committed(post, _in_order(*steps))

    async def edit_post(
        self, post_id: int, text: str, tags: Sequence[str], mentions: Sequence[str], now: int
    ) -> Committed[Post]:
        """Replace the text, tags and mentions of a post (in its partition)."""
        return self._seen(
            await self._of_post(post_id).edit_post(post_id, text, tags, mentions, now)
        )

    async def delete_post(self, post_id: int, now: int) -> Committed[Post]:
        """Soft-delete a post in its partition, then count it out of a parent of another
        partition."""
        deleted = self._seen(await self._of_post(post_id).delete_post(post_id, now))
        parent_id = deleted.value.reply_to
        if parent_id is None or self._parts.of_post(parent_id) == self._parts.of_post(post_id):
            return deleted
        parent = await self.get_post(parent_id)
        if parent is None:
            return deleted
        replied = self._seen(await self._of_post(parent_id).replied(parent, post_id, -1, now))
        return Committed(deleted.value, _in_order(deleted, replied))

    async def like(
        self, user: str, post_id: int, notify: str | None, now: int
    ) -> Committed[tuple[bool, int]]:
        """Like a post in its partition, which is its author's: the notification for
        ``notify`` (the author) is committed there too, or as a step of its own for a user
        elsewhere."""
        part = self._parts.of_post(post_id)
        apart = self._parts.of_user(user) != part
        if apart:
            await self._must_exist(user)
        here = notify is None or self._parts.of_user(notify) == part
        liked = self._seen(
            await self._stores[part].like(
                user, post_id, notify if here else None, now, user_checked=apart
            )
        )
        if here or notify is None or not liked.value[0]:
            return liked
        noted = self._seen(await self._of_user(notify).notify(notify, "like", user, post_id, now))
        return Committed(liked.value, _in_order(liked, noted))

    async def unlike(self, user: str, post_id: int, now: int) -> Committed[tuple[bool, int]]:
        """Withdraw a like (in the post's partition)."""
        apart = self._parts.of_user(user) != self._parts.of_post(post_id)
        store = self._of_post(post_id)
        return self._seen(await store.unlike(user, post_id, now, user_checked=apart))

    async def _relate(
        self,
        write: Callable[..., Awaitable[Committed[bool]]],
        actor: str,
        target: str,
        *args: Any,
        target_must_exist: bool = False,
    ) -> Committed[bool]:
        """A relation write (``RedisStore.block`` and the like): one script in one
        partition, else the actor's half then the target's; the value is the actor's."""
        if not self._apart(actor, target):
            return await write(self._of_user(actor), actor, target, *args)
        if target_must_exist:  # the actor's half checks the actor
            await self._must_exist(target)
        done = await write(self._of_user(actor), actor, target, *args, side="actor")
        await write(self._of_user(target), actor, target, *args, side="target")
        return done

    async def block(self, blocker: str, target: str, now: int) -> Committed[bool]:
        """Make ``blocker`` block ``target``, ending the follows between them."""
        return await self._relate(RedisStore.block, blocker, target, now, target_must_exist=True)

    async def unblock(self, blocker: str, target: str) -> Committed[bool]:
        """Lift a block."""
        return await self._relate(RedisStore.unblock, blocker, target)

    async def mute(self, muter: str, target: str, until: int | None, now: int) -> Committed[bool]:
        """Mute ``target`` for ``muter`` until ``until`` (None: until unmuted)."""
        return await self._relate(
            RedisStore.mute, muter, target, until, now, target_must_exist=True
        )

    async def unmute(self, muter: str, target: str) -> Committed[bool]:
        """Lift a mute."""
        return await self._relate(RedisStore.unmute, muter, target)

    async def prune_mutes(self, now: int) -> int:
        """Delete the mutes that ran out at or before ``now`` in every partition, and
        their entries in the muted users' partitions; return how many."""
        removed = 0
        for store in self._stores:
            pairs = [pair.split(" ") for pair in await store.pruned_mutes(now, side="actor")]
            if pairs:
                async with self._r.pipeline(transaction=False) as pipe:
                    for muter, muted in pairs:
                        pipe.hdel(self._routed.user(muted, "muted_by"), muter)
                    await pipe.execute()
            removed += len(pairs)
        return removed

    async def record_counts(self, post_id: int, now: int) -> Committed[None]:
        """Commit one ``post.counts`` change with the post's counters (its partition)."""
        return self._seen(await self._of_post(post_id).record_counts(post_id, now))

    async def pending_counts(self, marked_before: int, limit: int) -> list[int]:
        """Posts whose changed counter no ``post.counts`` change has logged yet, from
        every partition (at most ``limit``)."""
        found = await asyncio.gather(
            *(store.pending_counts(marked_before, limit) for store in self._stores)
        )
        return [post_id for ids in found for post_id in ids][:limit]

    async def prune_notifications(self, older_than: int, keep: int) -> int:
        """Prune the notification groups of every partition (``RedisStore``'s rule)."""
        pruned = 0
        for store in self._stores:
            pruned += await store.prune_notifications(older_than, keep)
        return pruned

    async def mark_read(self, user: str, up_to: int | None) -> int:
        """Mark notifications with id <= ``up_to`` (all when None) read; return unread count."""
        return await self._of_user(user).mark_read(user, up_to)

    async def close(self) -> None:
        """Nothing to release here: the clients are closed by the backend bundle."""
