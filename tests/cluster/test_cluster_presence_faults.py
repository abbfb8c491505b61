"""Presence under moves, drains and Redis faults: offline is announced only for users
connected nowhere, nobody flaps when Redis freezes, and a presence change published while
Redis is down arrives once it is back.

Each test waits past the moment a false offline would have been announced by waiting for
a *marker*: another user's presence change that the same mechanism announces later.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable

import pytest

from hub.backends.base import BusMessage
from hub.backends.bundle import Backends, open_redis
from hub.backends.redis_presence import RedisPresence
from hub.names import FollowersKey
from hub.records import PresenceChange
from hub.routing import route_keys
from tests.cluster.conftest import PRESENCE_TTL, Cluster, Inbox, NodeProcess
from tests.hub.wsclient import WAIT
from tests.redisproc import RedisServer
from tests.tcpproxy import TcpProxy

GRACE = 1.5
"""The nodes' --presence-grace here: room for a client to reconnect to another node."""
FREEZE = PRESENCE_TTL + 0.5
"""Seconds redis-server stays stopped in the freeze test: longer than the TTL."""
SWEPT_WITHIN = GRACE + PRESENCE_TTL + PRESENCE_TTL / 3 + WAIT
"""Seconds a marker announced by a sweep may take (slack for a loaded machine)."""


def start_nodes(cluster: Cluster, count: int, redis_url: str = "") -> list[NodeProcess]:
    """``count`` more nodes with the grace period of these tests (on Redis, or on
    ``redis_url``: a proxy)."""
    for _ in range(count):
        url = redis_url or cluster.redis.url
        node = NodeProcess(cluster.tmp_path / f"node{len(cluster.nodes)}", url)
        node.extra = (*node.extra, "--presence-grace", str(GRACE))
        node.start()
        cluster.nodes.append(node)
    return cluster.nodes


def presence_of(inbox: Inbox, user: str) -> list[bool]:
    """The presence states of ``user`` announced to ``inbox``, in order."""
    return [e.data["online"] for e in inbox.of("presence") if e.data["user"] == user]


def announced(inbox: Inbox, user: str, *states: bool) -> Callable[[object], bool]:
    """A condition: ``user``'s announced presence ends with ``states``."""
    return lambda events: presence_of(inbox, user)[-len(states) :] == list(states)


async def follower_of(cluster: Cluster, node: int, *users: str) -> Inbox:
    """``fol`` on ``node``, following ``users``."""
    fol = await cluster.connect("fol", node)
    for user in users:
        await fol.client.call("follow", user=user)
    return fol


async def posted_after(author: Inbox, follower: Inbox) -> None:
    """A marker: ``author`` posts and ``follower`` receives it. Pub/sub delivers in
    publish order, so every presence change published before (such as a sweep's other
    offlines) has reached ``follower`` by then."""
    post = await author.client.call("post", text="marker")
    await follower.wait_for(
        lambda events: any(e.data.get("id") == post["id"] for e in follower.of("feed.insert"))
    )


async def test_a_move_to_another_node_within_the_grace_is_never_offline(
    cluster: Cluster,
) -> None:
    start_nodes(cluster, 3)
    ann = await cluster.connect("ann", 0)
    zed = await cluster.connect("zed", 0)
    await cluster.connect("yan", 0)
    fol = await follower_of(cluster, 2, "ann", "zed", "yan")

    left = time.monotonic()
    await ann.client.close()
    await cluster.connect("ann", 1)
    moved_in = time.monotonic() - left
    assert moved_in < GRACE, f"the move took {moved_in:.2f} s, not within the {GRACE} s grace"
    await zed.client.close()  # node 0 announces zed offline after ann's grace expired
    await fol.wait_for(announced(fol, "zed", False))
    cluster.nodes[0].kill()  # yan is swept offline after the TTL, by another node
    await fol.wait_for(announced(fol, "yan", False), wait=SWEPT_WITHIN)

    assert presence_of(fol, "ann") == [], f"ann moved in {moved_in:.2f} s, yet was announced"
    assert (await fol.client.call("presence", users=["ann"]))["online"] == ["ann"]


async def test_a_drained_nodes_users_reconnecting_elsewhere_are_never_offline(
    cluster: Cluster,
) -> None:
    movers = ("ann", "bob", "cat")
    start_nodes(cluster, 3)
    clients = [await cluster.connect(user, 0) for user in movers]
    await cluster.connect("zed", 0)  # does not come back: the marker
    mark = await cluster.connect("mark", 2)
    fol = await follower_of(cluster, 2, *movers, "zed", "mark")

    drained = cluster.nodes[0].process
    assert drained is not None
    drained.send_signal(signal.SIGTERM)
    for inbox in clients:
        assert await inbox.client.closed_code() == 4000
    closed = time.monotonic()
    for user in movers:
        await cluster.connect(user, 1)
    moved_in = time.monotonic() - closed
    assert moved_in < GRACE, f"reconnecting took {moved_in:.2f} s, not within the grace"
    await fol.wait_for(announced(fol, "zed", False), wait=SWEPT_WITHIN)
    await posted_after(mark, fol)

    announcements = {user: presence_of(fol, user) for user in movers if presence_of(fol, user)}
    assert not announcements, f"movers announced (want none): {announcements}"
    online = (await fol.client.call("presence", users=list(movers)))["online"]
    assert online == list(movers), f"{len(movers) - len(online)} movers shown offline"


async def test_a_redis_freeze_longer_than_the_ttl_flaps_nobody(cluster: Cluster) -> None:
    """Nodes come back from a freeze one after the other (a heartbeat that timed out
    retries a period later); here node 0 stays cut off a little longer through a proxy,
    so that node 1 renews first and, if it swept, would take node 0 for dead."""
    proxy = TcpProxy(cluster.redis.port).start()
    try:
        start_nodes(cluster, 1, proxy.redis_url)  # node 0: ann's, through the proxy
        start_nodes(cluster, 2)
        await cluster.connect("ann", 0)
        await cluster.connect("zed", 2)
        mark = await cluster.connect("mark", 1)
        fol = await follower_of(cluster, 1, "ann", "zed", "mark")
        redis = cluster.redis.process
        assert redis is not None

        redis.send_signal(signal.SIGSTOP)
        proxy.blackhole()
        try:
            cluster.nodes[2].kill()  # zed's node dies during the freeze: swept afterwards
            # The length of the fault (a stimulus, not a wait for something to happen):
            # longer than the TTL, so every node's heartbeat entry lapses meanwhile.
            await asyncio.sleep(FREEZE)
        finally:
            redis.send_signal(signal.SIGCONT)
        await cluster.nodes[1].wait_readyz(200)
        proxy.pass_traffic()  # node 0 renews only now
        await cluster.nodes[0].wait_readyz(200)
        await fol.wait_for(announced(fol, "zed", False), wait=SWEPT_WITHIN)
        await posted_after(mark, fol)

        flaps = {u: presence_of(fol, u) for u in ("ann", "mark") if presence_of(fol, u)}
        assert not flaps, f"connected throughout, yet announced (want nothing): {flaps}"
    finally:
        if cluster.nodes:
            cluster.nodes[0].terminate()
        proxy.close()


# -- a presence change published while Redis is down --------------------------------


async def _open(url: str) -> Backends:
    return await open_redis(
        url,
        route_keys=route_keys,
        retention_seconds=60,
        retention_per_log=100,
        fanout_limit=100,
        presence_ttl=30,
    )


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the test's redis-server."""
    running = TcpProxy(redis_server.port).start()
    yield running
    running.close()


class LogSeen(logging.Handler):
    """Sets :attr:`seen` when a record whose message contains ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        """Check one record."""
        if self.text in record.getMessage():
            self.seen.set()


async def test_presence_published_while_redis_is_down_arrives_after(
    redis_server: RedisServer, proxy: TcpProxy
) -> None:
    publisher = await _open(proxy.redis_url)  # sees Redis go down
    observer = await _open(redis_server.url)  # stays subscribed throughout
    try:
        received: asyncio.Queue[BusMessage] = asyncio.Queue()
        observer.bus.subscribe(received.put_nowait)
        for user in ("ann", "bob"):
            observer.bus.watch(FollowersKey(user))
        await observer.bus.settled()
        changes = [PresenceChange("ann", False), PresenceChange("bob", True)]
        changes.append(PresenceChange("ann", True))

        failed = LogSeen("presence not published yet")
        logging.getLogger("hub.backends.redis_bus").addHandler(failed)
        try:
            proxy.cut(refuse=True)
            for change in changes:
                await publisher.bus.publish(change)  # returns at once: queued
            async with asyncio.timeout(WAIT):
                await failed.seen.wait()  # the first attempt failed: Redis is down
            assert received.empty(), "nothing can have gone out while Redis was down"
            proxy.pass_traffic()
            async with asyncio.timeout(WAIT):
                got = [await received.get() for _ in changes]
        finally:
            logging.getLogger("hub.backends.redis_bus").removeHandler(failed)
        assert got == changes, f"{len(changes)} published while down, got {got}"
    finally:
        await observer.close()
        await publisher.close()


async def test_a_hand_off_holds_the_users_for_the_grace_then_they_are_swept(
    redis_server: RedisServer,
) -> None:
    leaving, staying = await _open(redis_server.url), await _open(redis_server.url)
    try:
        a, b = leaving.presence, staying.presence
        assert isinstance(a, RedisPresence) and isinstance(b, RedisPresence)
        for user in ("ann", "bob"):
            await a.connect(user)
        await b.connect("bob")  # bob is also connected elsewhere
        await a.hand_off(GRACE)
        handed_off = time.monotonic()
        assert await b.online(["ann", "bob"]) == {"ann", "bob"}, "held during the grace"
        assert await b.beat() == [], "nothing swept during the grace"
        while await b.online(["ann"]):  # ann lapses when the grace is over
            assert time.monotonic() - handed_off < GRACE + WAIT, "ann never lapsed"
            await asyncio.sleep(0.05)  # polling Redis' state, not a timer
        assert await b.beat() == [PresenceChange("ann", False)], "ann offline, once"
        assert await b.online(["ann", "bob"]) == {"bob"}
    finally:
        await staying.close()
        await leaving.close()
