"""Key names on Redis Cluster: each user's and each post's keys in their partition.

:class:`RoutedKeys` answers the same questions as :class:`~hub.backends.redis_link.Keys`
for a whole partitioned deployment (docs/cluster.md 1): a user's keys carry the prefix of
the user's partition, a post's that of the partition that numbered it, a log's that of
its owner. A name that exists once per partition (the public list, a hashtag's list, the
counters) has no single answer: :meth:`RoutedKeys.global_` and :meth:`RoutedKeys.tag`
refuse, and :meth:`RoutedKeys.of` gives one partition's :class:`Keys` to ask it there.
"""

from __future__ import annotations

from hub.backends.partitions import Partitions
from hub.backends.redis_link import Keys
from hub.names import LogName, RouteKey

__all__ = ["RoutedKeys"]


class RoutedKeys(Keys):
    """The keys of users, posts and logs, each in its own partition."""

    __slots__ = ("_by_part", "partitions")

    def __init__(self, partitions: Partitions) -> None:
        super().__init__(partitions.ns)
        self.partitions = partitions
        self._by_part = [Keys(partitions.namespace(p)) for p in range(partitions.count)]

    def of(self, part: int) -> Keys:
        """The key names of partition ``part`` (what its scripts use)."""
        return self._by_part[part]

    def of_user(self, user: str) -> Keys:
        """The key names of ``user``'s partition."""
        return self._by_part[self.partitions.of_user(user)]

    def of_post(self, post_id: int) -> Keys:
        """The key names of the partition that holds post ``post_id``."""
        return self._by_part[self.partitions.of_post(post_id)]

    def everywhere(self) -> list[Keys]:
        """The key names of every partition, in partition order."""
        return list(self._by_part)

    def user(self, user: str, what: str) -> str:
        """A key of ``user``, in the user's partition."""
        return self.of_user(user).user(user, what)

    def post(self, post_id: int | str, what: str = "post") -> str:
        """A key of one post, in the post's partition."""
        return self.of_post(int(post_id)).post(post_id, what)

    def log(self, log: str) -> str:
        """The stream of a change log, in its owner's partition."""
        return self.of_user(LogName.parse(log).owner).log(log)

    def channel(self, route_key: RouteKey) -> str:
        """The one shard channel of a user's or a thread's route key (a stream of posts
        has one per partition: ``Partitions.channels``)."""
        channels = self.partitions.channels(route_key)
        if len(channels) != 1:
            raise ValueError(f"{route_key} has a channel in every partition")
        return channels[0][1]

    def tag(self, tag: str) -> str:
        """Refused: a hashtag has a list in every partition (ask ``of(part)``)."""
        raise ValueError(f"tag {tag!r} has a list in every partition")

    def global_(self, name: str) -> str:
        """Refused: ``name`` exists in every partition (ask ``of(part)``)."""
        raise ValueError(f"{name!r} exists in every partition")
