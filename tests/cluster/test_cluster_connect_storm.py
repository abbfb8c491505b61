"""10,000 clients connecting at once onto two nodes get no ``unavailable``, none is
closed by the hub, and every follower sees correct presence afterwards.

Found by a check: "A connect storm drains the Redis pool. 10,000 clients, each following
10 of 100 authors, connecting at once to two nodes on one Redis: the 64-connection pool
runs dry; sign-ins and follows are answered ``unavailable``, catch-ups fail and close
their sessions, and presence announcements are dropped with only a log line, so
followers see wrong presence until the next change."

The storm is ``hubbub loadtest`` in two worker processes (one per node, every handshake
at once), on a graph loaded beforehand: 10,000 users ``lt0..lt9999``, each following 10
of the 100 authors ``lt0..lt99``. Making 100,000 follows through the hub takes about two
minutes on a two-core machine, so the graph is written straight into Redis (the same
keys the follow script writes: both follow sets and the counts), as after an import;
during the storm the users also make a few thousand follows through the hub.

Observers follow, before the storm, the 100 authors (connected by the storm), authors
who were online and leave as the storm begins (``left*``), and authors who never connect
(``gone*``); afterwards each must have been told exactly that, and ``presence`` must
answer the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from clients.loadtest.graph import GraphSpec, SocialGraph
from hub.backends.bundle import open_redis
from hub.backends.redis_link import Keys
from hub.routing import route_keys
from tests.cluster.conftest import SECRET, Cluster, Inbox, NodeProcess

USERS = 10_000
AUTHORS = 100
FOLLOWS = 10
OBSERVERS = 4
"""Observer clients, spread over both nodes; each follows every author below."""
LEFT = [f"left{i}" for i in range(10)]
"""Authors online before the storm who disconnect as it begins."""
GONE = [f"gone{i}" for i in range(10)]
"""Authors who never connect."""
STORM_WITHIN = 45.0
"""Seconds the storm may take to have every user authenticated (about 10 s here)."""
NODE_FLAGS = ("--write-rate", "1000", "--write-burst", "1000", "--presence-ttl", "15")
"""The observers make 120 follows each in a row: the per-connection write limit must not
answer for the test's set-up. The presence TTL is the default: the cluster tests' 1.5 s
(made for killed nodes) is shorter than the seconds a node's event loop lags while 5,000
handshakes arrive at once on a shared two-core machine, so a live node would lapse."""
LOADTEST_FLAGS = (
    "--scenario", "steady", "--post-rate", "0", "--follow-rate", "0.1", "--duration", "5",
    "--workers", "2", "--concurrency", str(USERS), "--ramp", "0", "--settle", "0.5",
)  # fmt: skip
"""Every handshake at once (--concurrency is per worker), then 5 s in which the users
make about 5,000 follows through the hub, while the observers check presence."""

_BULK_FOLLOW = """
for i = 1, #ARGV - 1 do
  local id = redis.call('INCR', KEYS[1])
  redis.call('ZADD', KEYS[3], id, ARGV[i + 1])
  redis.call('ZADD', KEYS[3 + 2 * i], id, ARGV[1])
  redis.call('HINCRBY', KEYS[2 + 2 * i], 'followers', 1)
end
redis.call('HINCRBY', KEYS[2], 'following', #ARGV - 1)
"""
"""The follow relation of one user, as hub.backends.redis_store's follow script writes it
(follow ids from ``seq:follow``, both sets, both counts); no notification, no change.
KEYS: seq:follow, the follower's profile and following set, then per followee its
profile and followers set. ARGV: the follower, then the followees."""


@pytest.fixture
def open_files() -> Iterator[int]:
    """Raise the open-files limit to its hard limit for this process and the children it
    starts (each node holds 5,000 connections, each load-test worker as many)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = USERS // 2 + 1_000
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(f"open-files hard limit {hard} < {needed}: raise it (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _load_graph(cluster: Cluster, graph: SocialGraph) -> None:
    """Profiles for everyone (the hub's own sign-in path), then the follows in bulk."""
    backends = await open_redis(
        cluster.redis.url,
        route_keys=route_keys,
        retention_seconds=900,
        retention_per_log=1000,
        fanout_limit=10_000,
        presence_ttl=15,
    )
    try:
        gate = asyncio.Semaphore(256)
        now = int(time.time() * 1000)

        async def profile(user: str) -> None:
            async with gate:
                await backends.store.ensure_profile(user, now)

        names = [graph.name(u) for u in range(graph.size)] + LEFT + GONE
        await asyncio.gather(*(profile(user) for user in names))
    finally:
        await backends.close()
    keys = Keys()
    client = aioredis.from_url(cluster.redis.url, decode_responses=True)
    try:
        sha = await client.script_load(_BULK_FOLLOW)
        async with client.pipeline(transaction=False) as pipe:
            for user, followees in enumerate(graph.followees):
                name = graph.name(user)
                args = [name, *map(graph.name, followees)]
                at = [keys.global_("seq:follow"), keys.user(name, "profile")]
                at.append(keys.user(name, "following"))
                for followee in args[1:]:
                    at += [keys.user(followee, "profile"), keys.user(followee, "followers")]
                pipe.evalsha(sha, len(at), *at, *args)
            await pipe.execute()
    finally:
        await client.aclose()


def _connections(node: NodeProcess) -> int:
    """The node's authenticated connections (its ``hubbub_connections`` gauge)."""
    return int(_metrics(node).get("hubbub_connections", 0))


def _metrics(node: NodeProcess) -> dict[str, float]:
    """The node's Prometheus samples, by name with labels."""
    url = f"http://127.0.0.1:{node.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    samples = (line.rsplit(" ", 1) for line in lines)
    return {name: float(value) for name, value in samples}


async def _storm_up(nodes: list[NodeProcess], expected: list[int], seen: Seen) -> bool:
    """Wait until the nodes hold ``expected`` connections (polling their metrics, which
    a node too busy to answer in time simply fails); False when the load test ended
    first or the deadline passed. ``seen.counts`` keeps the last counts read."""
    deadline = time.monotonic() + STORM_WITHIN
    while seen.counts != expected:
        if seen.loadtest.returncode is not None or time.monotonic() > deadline:
            return False
        with contextlib.suppress(OSError):  # a timeout or a refusal: look again
            seen.counts = [await asyncio.to_thread(_connections, node) for node in nodes]
        await asyncio.sleep(0.1)  # polling other processes' state
    return True


def _presence(inbox: Inbox) -> dict[str, list[bool]]:
    """The presence states announced to ``inbox``, per user, in order."""
    announced: dict[str, list[bool]] = {}
    for event in inbox.of("presence"):
        announced.setdefault(event.data["user"], []).append(event.data["online"])
    return announced


async def _online(inbox: Inbox, users: list[str]) -> set[str]:
    """Who ``presence`` says is online (at most 100 users per request)."""
    online: set[str] = set()
    for start in range(0, len(users), 100):
        result = await inbox.client.call("presence", users=users[start : start + 100])
        online.update(result["online"])
    return online


def _told(inbox: Inbox, authors: list[str]) -> Callable[[object], bool]:
    """A condition: ``inbox`` was last told the authors online and the leavers offline."""

    def condition(_: object) -> bool:
        states = _presence(inbox)
        return all(states.get(a, [])[-1:] == [True] for a in authors) and all(
            states.get(u, [])[-1:] == [False] for u in LEFT
        )

    return condition


async def _follows_made(cluster: Cluster) -> int:
    """Follows made so far (the follow id counter)."""
    client = aioredis.from_url(cluster.redis.url, decode_responses=True)
    try:
        return int(await client.get(Keys().global_("seq:follow")) or 0)
    finally:
        await client.aclose()


@dataclass
class Seen:
    """What the test saw of a storm while it ran."""

    loadtest: asyncio.subprocess.Process
    began: float = field(default_factory=time.monotonic)
    counts: list[int] = field(default_factory=list)
    """Connections per node, when last read."""
    up_after: float | None = None
    """Seconds from starting the load test until every node held its share."""
    checked_after: float | None = None
    """Seconds from starting the load test until presence was checked."""
    still: list[int] = field(default_factory=list)
    """Connections per node right after presence was checked."""
    answers: list[set[str]] = field(default_factory=list)
    """Who ``presence`` said is online, per observer."""


async def _watch(
    nodes: list[NodeProcess], observers: list[Inbox], authors: list[str], seen: Seen
) -> None:
    """Once every user is up, let the observers take in what they were told and ask
    ``presence``; then read the connection counts again (still all up?)."""
    expected = [USERS // 2 + len(range(n, OBSERVERS, 2)) for n in range(len(nodes))]
    if not await _storm_up(nodes, expected, seen):
        return
    seen.up_after = time.monotonic() - seen.began
    for observer in observers:
        with contextlib.suppress(TimeoutError):  # what each was told is judged afterwards
            await observer.wait_for(_told(observer, authors), wait=STORM_WITHIN)
    watched = authors + LEFT + GONE
    seen.answers = [await _online(observer, watched) for observer in observers]
    seen.still = [await asyncio.to_thread(_connections, node) for node in nodes]
    seen.checked_after = time.monotonic() - seen.began


async def _start_nodes(cluster: Cluster) -> list[NodeProcess]:
    for index in range(2):
        node = NodeProcess(cluster.tmp_path / f"node{index}", cluster.redis.url)
        node.extra = (*node.extra, *NODE_FLAGS)
        await asyncio.to_thread(node.start)
        cluster.nodes.append(node)
    return cluster.nodes


def _wrong_presence(
    seen: Seen, observers: list[Inbox], authors: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per observer: wrong ``presence`` answers, and presence events other than exactly
    one online per author and one offline per leaver (none for the absent)."""
    wrong = {
        f"obs{i}": {
            "online, want offline": sorted(answer - set(authors)),
            "offline, want online": sorted(set(authors) - answer),
        }
        for i, answer in enumerate(seen.answers)
        if answer != set(authors)
    }
    want = {a: [True] for a in authors} | {u: [False] for u in LEFT}
    events = {
        f"obs{i}": {
            user: states
            for user, states in _presence(observer).items()
            if states != want.get(user, [])
        }
        for i, observer in enumerate(observers)
    }
    return wrong, {name: bad for name, bad in events.items() if bad}


async def _storm(
    nodes: list[NodeProcess],
    graph_file: Path,
    leavers: list[Inbox],
    observers: list[Inbox],
    authors: list[str],
) -> Seen:
    """Run the load test (result and output next to ``graph_file``); meanwhile the
    leavers leave and the observers check presence (:func:`_watch`)."""
    result_file = graph_file.parent / "loadtest.json"
    log_file = graph_file.parent / "loadtest.out"
    with log_file.open("w") as output:
        loadtest = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "loadtest", *(node.url for node in nodes),
            *LOADTEST_FLAGS, "--secret", SECRET, "--graph", str(graph_file),
            "--json", str(result_file), "--quiet",
            stdout=output, stderr=output,
        )  # fmt: skip
        seen = Seen(loadtest)
        try:
            for leaver in leavers:  # they leave as the storm begins
                await leaver.client.close()
            await _watch(nodes, observers, authors, seen)
        finally:
            try:
                async with asyncio.timeout(STORM_WITHIN + 60):
                    await loadtest.wait()
            except TimeoutError:
                loadtest.kill()
                await loadtest.wait()
                raise
    return seen


async def test_ten_thousand_connecting_at_once_get_no_unavailable_and_presence_is_right(
    cluster: Cluster, tmp_path: Path, open_files: int
) -> None:
    nodes = await _start_nodes(cluster)
    graph = SocialGraph.generate(GraphSpec(users=USERS, follows=FOLLOWS, authors=AUTHORS))
    began = time.monotonic()
    await _load_graph(cluster, graph)
    loaded_in = time.monotonic() - began
    graph_file = tmp_path / "graph.json"
    graph.save(graph_file)
    authors = [graph.name(u) for u in range(AUTHORS)]
    watched = authors + LEFT + GONE
    leavers = [await cluster.connect(user, i % 2) for i, user in enumerate(LEFT)]
    observers = [await cluster.connect(f"obs{i}", i % 2) for i in range(OBSERVERS)]
    for observer in observers:
        for user in watched:
            await observer.client.call("follow", user=user)

    result_file, log_file = tmp_path / "loadtest.json", tmp_path / "loadtest.out"
    seen = await _storm(nodes, graph_file, leavers, observers, authors)
    report = log_file.read_text()
    assert seen.loadtest.returncode == 0 and result_file.exists(), (
        f"loadtest exit {seen.loadtest.returncode}:\n{report}"
    )
    result = json.loads(result_file.read_text())
    hub_metrics = [await asyncio.to_thread(_metrics, node) for node in nodes]
    storm_follows = await _follows_made(cluster) - graph.edges - OBSERVERS * len(watched)

    connections, errors = result["connections"], result["errors"]
    unavailable = sum(n for code, n in errors.items() if "unavailable" in code)
    closes = {code: n for code, n in errors.items() if code.startswith("close:")}
    hub_unavailable = sum(m.get('hubbub_errors_total{code="unavailable"}', 0) for m in hub_metrics)
    hub_closes = {
        name: value
        for m in hub_metrics
        for name, value in m.items()
        if name.startswith("hubbub_closes_total")
    }
    wrong, events = _wrong_presence(seen, observers, authors)
    up_after = "never" if seen.up_after is None else f"{seen.up_after:.1f} s"
    checked = "never" if seen.checked_after is None else f"{seen.checked_after:.1f} s"
    figures = (
        f"graph of {graph.edges:,} follows loaded in {loaded_in:.1f} s; "
        f"{connections['up']:,}/{connections['target']:,} authenticated "
        f"({connections['failed']:,} failed) in {connections['seconds']:.1f} s by the "
        f"load test; all up on the nodes {up_after} after it was started "
        f"(last counts {seen.counts}); presence checked after {checked} with "
        f"{seen.still} connections still up; {storm_follows:,} follows made during the "
        f"storm; load-test errors {errors or 'none'}, reconnects {result['reconnects']}; "
        f"hub: {hub_unavailable:g} unavailable, closes {hub_closes or 'none'}; presence "
        f"answers wrong: {wrong or 'none'}; wrong presence events: {events or 'none'}"
    )
    print(f"\nconnect storm: {figures}")

    assert connections["up"] == USERS and not connections["failed"], figures
    assert unavailable == 0 and hub_unavailable == 0, f"unavailable replies: {figures}"
    assert not closes and not hub_closes and not result["reconnects"], (
        f"connections closed by the hub: {figures}"
    )
    assert not errors, f"load-test errors: {figures}"
    assert seen.up_after is not None, f"the nodes never held every user: {figures}"
    assert seen.still == seen.counts, f"presence checked after users began to leave: {figures}"
    assert not wrong, f"presence answered wrong: {figures}"
    assert not events, f"observers were told wrong presence: {figures}"
