"""The generated social graph: who follows whom, with power-law follower counts.

User ``i`` is named ``<prefix><i>``. Follow targets are drawn from the first
``authors`` users with Zipf weights ``1 / (rank + 1) ** alpha``: with ``alpha`` near 1
a few users get most followers (as in real networks); ``alpha`` 0 spreads them evenly.
``star`` makes every user also follow user 0 (one author, everyone a follower).
The graph is saved as JSON so a later run can reuse follows already made on a hub.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from protocol.limits import USER_ID_RE

__all__ = ["GraphError", "GraphSpec", "SocialGraph"]


class GraphError(ValueError):
    """A graph specification or a saved graph file is not usable."""


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """How to generate a graph; equal specs generate equal graphs."""

    users: int
    follows: int
    authors: int = 0
    alpha: float = 1.0
    star: bool = False
    seed: int = 1
    prefix: str = "lt"

    def check(self) -> None:
        """Raise :class:`GraphError` unless the spec is consistent."""
        if self.users < 1:
            raise GraphError("--users must be at least 1")
        if not 0 <= self.authors <= self.users:
            raise GraphError("--authors must be between 0 (all users) and --users")
        pool = self.authors or self.users
        if not 0 <= self.follows < pool:
            raise GraphError(f"--follows must be between 0 and {pool - 1} (authors minus one)")
        if self.alpha < 0:
            raise GraphError("--alpha must be 0 or more")
        if not USER_ID_RE.fullmatch(f"{self.prefix}{self.users}"):
            raise GraphError("--prefix must be a few of a-z, 0-9 and _")


@dataclass(frozen=True, slots=True)
class SocialGraph:
    """Users ``0..n-1`` and each one's followees (sorted user numbers)."""

    spec: GraphSpec
    followees: tuple[tuple[int, ...], ...]

    @property
    def size(self) -> int:
        """Number of users."""
        return len(self.followees)

    def name(self, user: int) -> str:
        """The user id of user number ``user``."""
        return f"{self.spec.prefix}{user}"

    def number(self, name: str) -> int | None:
        """The user number of a user id of this graph, or None."""
        prefix = self.spec.prefix
        if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
            return None
        user = int(name[len(prefix) :])
        return user if user < self.size else None

    def followers(self) -> list[list[int]]:
        """For each user, the users following them."""
        result: list[list[int]] = [[] for _ in self.followees]
        for follower, targets in enumerate(self.followees):
            for target in targets:
                result[target].append(follower)
        return result

    @property
    def edges(self) -> int:
        """Number of follows."""
        return sum(map(len, self.followees))

    @classmethod
    def generate(cls, spec: GraphSpec) -> SocialGraph:
        """Generate the graph ``spec`` describes (deterministic in ``spec.seed``)."""
        spec.check()
        rng = random.Random(spec.seed)
        pool = spec.authors or spec.users
        cumulative = list(itertools.accumulate(1.0 / (r + 1) ** spec.alpha for r in range(pool)))
        total = cumulative[-1]
        followees: list[tuple[int, ...]] = []
        for user in range(spec.users):
            chosen: set[int] = {0} if spec.star and user != 0 else set()
            wanted = min(spec.follows + len(chosen), pool - (user < pool))
            while len(chosen) < wanted:
                target = bisect.bisect_left(cumulative, rng.random() * total)
                if target != user:
                    chosen.add(min(target, pool - 1))
            followees.append(tuple(sorted(chosen)))
        return cls(spec, tuple(followees))

    def save(self, path: Path) -> None:
        """Write the graph (spec and follows) to ``path`` as JSON."""
        data = {"spec": asdict(self.spec), "followees": [list(f) for f in self.followees]}
        path.write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> SocialGraph:
        """Read a graph written by :meth:`save`; raise :class:`GraphError` if unusable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            spec = GraphSpec(**data["spec"])
            followees = tuple(tuple(int(u) for u in f) for f in data["followees"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GraphError(f"cannot read graph file {path}: {exc}") from exc
        if len(followees) != spec.users or any(
            not 0 <= u < spec.users for f in followees for u in f
        ):
            raise GraphError(f"graph file {path} is inconsistent: generate a new one")
        return cls(spec, followees)
