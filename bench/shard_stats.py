"""What each Redis process of a benchmark did: the calls of its commands, from
``INFO commandstats`` (the commands a script runs count too), and per post between two
readings (B4C: the publishes, scripts and commands each shard of a cluster spends)."""

from __future__ import annotations

import redis

__all__ = ["per_post", "shard_calls"]


def shard_calls(ports: list[int]) -> list[dict[str, int]]:
    """Per Redis process (its port): calls of SPUBLISH, of EVALSHA (write scripts) and of
    every command, from ``INFO commandstats`` (commands a script runs count too)."""
    out = []
    for port in ports:
        client = redis.Redis(port=port)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        out.append({
            "spublish": calls.get("spublish", 0) + calls.get("publish", 0),
            "evalsha": calls.get("evalsha", 0),
            "all": sum(calls.values()),
        })  # fmt: skip
    return out


def per_post(before: list[dict[str, int]], after: list[dict[str, int]], posts: int) -> str:
    """Each shard's publishes, scripts and commands per post between two readings."""
    cells = []
    for number, (old, new) in enumerate(zip(before, after, strict=True)):
        rates = {key: (new[key] - old[key]) / max(posts, 1) for key in new}
        cells.append(
            f"shard {number}: {rates['spublish']:.2f} publishes, {rates['evalsha']:.2f} scripts,"
            f" {rates['all']:.1f} commands"
        )
    return "; ".join(cells) + " per post (the whole run: sign-ins and follows included)"
