"""Redis fan-out benchmark: Redis commands per post, and time to the last online follower.

For authors with 10, 1,000 and 100,000 followers (half of them connected, spread over two
``hubbub serve --redis`` nodes; capped by ``--max-online`` because this machine allows
20,000 open files per process), each post's Redis commands are counted from ``INFO
commandstats`` (commands run inside scripts included) and the time from sending the post
to the last online follower's ``feed.insert`` is measured.

Followers are seeded straight into Redis with the store's own follow script. Authors up to
``--fanout-limit`` followers (default 10,000) are fanned out on write into capped home
feeds; bigger ones are merged on read, so their write path stays constant.

Run: ``.venv/bin/python bench/redis_fanout.py`` (needs redis-server on PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.backends.redis_link import Keys
from hub.backends.redis_store import RedisStore
from hub.tokens import issue_token
from protocol import JSON, Event, Reply, Request, ops
from tests.redisproc import RedisServer

SECRET = "bench-secret-0123456789-0123456789-0123"
COUNTED = ("publish", "xadd", "zadd", "evalsha", "hset", "incr")


def start_node(
    data_dir: Path, redis_url: str, fanout_limit: int
) -> tuple[subprocess.Popen[str], str]:
    """A ``hubbub serve --redis`` child and its WebSocket URL."""
    command = [sys.executable, "-m", "hub.cli", "serve", "--redis", redis_url, "--port", "0"]
    command += ["--data-dir", str(data_dir), "--presence-ttl", "120", "--log-level", "warning"]
    command += ["--fanout-limit", str(fanout_limit), "--request-rate", "10000"]
    command += ["--request-burst", "10000", "--write-rate", "10000", "--write-burst", "10000"]
    env = {**os.environ, "HUBBUB_SECRET": SECRET}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    for line in process.stdout:
        if "listening on" in line:
            return process, line.split("listening on ")[1].split()[0]
    raise SystemExit("hubbub serve exited early")


class Arrivals:
    """When each post reached each follower; an event fires when all ``expected`` have it."""

    def __init__(self) -> None:
        self.times: dict[int, list[float]] = {}
        self.expected = 0
        self.complete: dict[int, asyncio.Event] = {}

    def waiter(self, post_id: int) -> asyncio.Event:
        """The event set once ``post_id`` reached every follower."""
        event = self.complete.setdefault(post_id, asyncio.Event())
        if len(self.times.get(post_id, ())) >= self.expected:
            event.set()
        return event

    def arrived(self, post_id: int, at: float) -> None:
        """One follower received ``post_id``."""
        times = self.times.setdefault(post_id, [])
        times.append(at)
        if len(times) >= self.expected:
            self.waiter(post_id).set()


class Follower:
    """One connected follower, reporting each ``feed.insert`` to ``arrivals``."""

    def __init__(self, connection: ClientConnection, arrivals: Arrivals) -> None:
        self.connection = connection
        self.arrivals = arrivals
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.connection:
            now = time.perf_counter()
            for message in JSON.decode_server_frame(frame):
                if isinstance(message, Event) and message.type == "feed.insert":
                    self.arrivals.arrived(int(message.data["id"]), now)


async def call(connection: ClientConnection, op: ops.Operation, request_id: int = 1) -> None:
    """Send one request (replies are read by whoever reads the connection)."""
    await connection.send(JSON.encode_request(Request(request_id, op)).decode())


async def open_client(url: str, user: str) -> ClientConnection:
    """A connection authenticated as ``user`` (waits for the auth reply)."""
    connection = await connect(url, subprotocols=["hubbub.v1.json"], max_size=2**22)  # type: ignore[list-item]
    await call(connection, ops.Auth(issue_token(user, SECRET)))
    await connection.recv()
    return connection


async def post_reply(connection: ClientConnection, request_id: int) -> int:
    """Read the author's frames until the reply to ``request_id``; return the post id."""
    while True:
        for message in JSON.decode_server_frame(await connection.recv()):
            if isinstance(message, Reply) and message.id == request_id:
                return int(message.result["id"])


async def seed(store: RedisStore, author: str, followers: int) -> None:
    """Create the author and ``followers`` followers of them."""
    await store.ensure_profile(author, 0)
    for start in range(0, followers, 50):
        names = [f"{author}_f{i}" for i in range(start, min(start + 50, followers))]
        await asyncio.gather(*(store.ensure_profile(name, 0) for name in names))
        await asyncio.gather(*(store.follow(name, author, 0) for name in names))


async def command_counts(client: aioredis.Redis) -> dict[str, int]:
    """Calls per command so far (INFO commandstats)."""
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def measure(
    args: argparse.Namespace, urls: list[str], client: aioredis.Redis, followers: int
) -> list[str]:
    """One table row for an author with ``followers`` followers."""
    author = f"a{followers}"
    await seed(RedisStore(client, client, Keys(), args.fanout_limit), author, followers)
    online = min(followers // 2, args.max_online)
    arrivals = Arrivals()
    arrivals.expected = online
    conns: list[Follower] = []
    for start in range(0, online, 200):
        batch = range(start, min(start + 200, online))
        opened = await asyncio.gather(*(open_client(urls[i % 2], f"{author}_f{i}") for i in batch))
        conns.extend(Follower(c, arrivals) for c in opened)
    poster = await open_client(urls[0], author)
    latencies, deltas = [], []
    for n in range(args.posts):
        before = await command_counts(client)
        sent = time.perf_counter()
        await call(poster, ops.CreatePost(f"post {n}", None), n + 2)
        post_id = await post_reply(poster, n + 2)
        async with asyncio.timeout(120):
            await arrivals.waiter(post_id).wait()
        last = max(arrivals.times.get(post_id, [time.perf_counter()]))
        latencies.append((last - sent) * 1000)
        after = await command_counts(client)
        deltas.append({k: after.get(k, 0) - before.get(k, 0) for k in after})
    for f in conns:
        await f.connection.close()
    await poster.close()

    def per_post(name: str) -> float:
        return statistics.mean(d.get(name, 0) for d in deltas) - (1 if name == "info" else 0)

    total = statistics.mean(sum(d.values()) for d in deltas) - 1  # minus our own INFO
    return [
        f"{followers:,}", f"{online:,}", *(f"{per_post(c):.0f}" for c in COUNTED),
        f"{total:.0f}", f"{statistics.median(latencies):.1f}", f"{max(latencies):.1f}",
    ]  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    """Start Redis and two nodes, measure each author size, print the table."""
    work = Path(tempfile.mkdtemp(prefix="hubbub-bench-"))
    redis = RedisServer(work / "redis", fsync=args.appendfsync).start()
    nodes = [start_node(work / f"node{i}", redis.url, args.fanout_limit) for i in range(2)]
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        rows = [await measure(args, [url for _, url in nodes], client, n) for n in args.followers]
    finally:
        await client.aclose()
        for process, _ in nodes:
            process.terminate()
            process.wait(timeout=30)
        redis.stop()
    header = ["followers", "online", *COUNTED, "all cmds", "last ms (median)", "last ms (max)"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"Redis commands per post (appendfsync {args.appendfsync}), {args.posts} posts each")
    print(" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, nargs="+", default=[10, 1_000, 100_000])
    parser.add_argument("--max-online", type=int, default=8_000, help="connected followers cap")
    parser.add_argument("--posts", type=int, default=5, help="posts measured per author")
    parser.add_argument("--fanout-limit", type=int, default=10_000)
    parser.add_argument("--appendfsync", choices=["always", "everysec"], default="everysec")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
