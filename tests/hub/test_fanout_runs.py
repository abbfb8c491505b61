"""Runs: a tick's worth of one author's posts goes out as one batch per recipient
(``LocalFanout.deliver_all``), and nothing a client sees changes: every follower gets
every post once, in cursor order, the author too; a follower reached by two routes
(its feed and the public stream) still gets the events interleaved in cursor order; a
follower resuming meanwhile misses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from hub.node import Node
from hub.tokens import issue_token
from tests.hub.conftest import SECRET, Connect

POSTS = 120
WAIT = 10.0


class Recording:
    """A raw client that logs, in arrival order, every reply id and event cursor."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.log: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Recording:
        self.connection = await connect(self.url, subprotocols=["hubbub.v1.json"])  # type: ignore[list-item]
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()
        self._reader.cancel()

    async def _read(self) -> None:
        async for frame in self.connection:
            loaded = orjson.loads(frame)
            for item in loaded if isinstance(loaded, list) else [loaded]:
                if "re" in item:
                    self.log.append(("reply", item["re"]))
                else:
                    self.log.append((item["ev"], item["cursor"]))
            self._changed.set()

    async def send(self, requests: list[dict[str, Any]]) -> None:
        """Send requests in one batch frame."""
        await self.connection.send(orjson.dumps(requests).decode())

    async def wait_for(self, count: int, kind: str) -> None:
        """Until ``count`` entries of ``kind`` arrived."""
        async with asyncio.timeout(WAIT):
            while sum(entry[0] == kind for entry in self.log) < count:
                self._changed.clear()
                await self._changed.wait()

    def cursors(self, kind: str) -> list[int]:
        """The cursors of ``kind`` events, as received."""
        return [int(cursor) for entry, cursor in self.log if entry == kind]


def auth(user: str, request_id: int = 1) -> dict[str, Any]:
    """An ``auth`` request map."""
    return {"id": request_id, "op": "auth", "args": {"token": issue_token(user, SECRET)}}


def posts(first_id: int, count: int) -> list[dict[str, Any]]:
    """``count`` post request maps."""
    return [{"id": first_id + i, "op": "post", "args": {"text": f"p{i}"}} for i in range(count)]


@pytest.mark.node_settings(write_rate=10_000, write_burst=10_000)
async def test_a_burst_reaches_every_follower_and_the_author_once_in_order(
    node: Node, connect: Connect
) -> None:
    """Posts sent in batch frames (many in one tick): followers and the author get each
    exactly once, in cursor order, and the author's replies all come."""
    await connect("ann")  # signing in creates the profile
    followers = [await connect(f"f{i}") for i in range(5)]
    for follower in followers:
        await follower.call("follow", user="ann")
    async with Recording(f"ws://127.0.0.1:{node.port}/") as ann:
        await ann.send([auth("ann")])
        await ann.wait_for(1, "reply")
        for start in range(0, POSTS, 40):
            await ann.send(posts(2 + start, 40))
        await ann.wait_for(POSTS + 1, "reply")
        await ann.wait_for(POSTS, "feed.insert")
        mine = ann.cursors("feed.insert")
        assert mine == sorted(mine) and len(set(mine)) == POSTS
    for follower in followers:
        got = [int((await follower.next_event("feed.insert")).cursor or 0) for _ in range(POSTS)]
        assert got == mine


@pytest.mark.node_settings(write_rate=10_000, write_burst=10_000)
async def test_a_follower_on_two_routes_gets_both_events_in_cursor_order(
    node: Node, connect: Connect
) -> None:
    """A follower also subscribed to the public stream: a run reaching two routes goes
    out change by change, so its feed.insert and stream.insert events interleave."""
    ann = await connect("ann")
    async with Recording(f"ws://127.0.0.1:{node.port}/") as bob:
        await bob.send([auth("bob"), {"id": 2, "op": "follow", "args": {"user": "ann"}}])
        await bob.send([{"id": 3, "op": "subscribe", "args": {"stream": "public"}}])
        await bob.wait_for(3, "reply")
        await ann.call_many([("post", {"text": f"p{i}"}) for i in range(40)])
        await bob.wait_for(40, "feed.insert")
        await bob.wait_for(40, "stream.insert")
        cursors = [int(value) for kind, value in bob.log if kind != "reply"]
        assert cursors == sorted(cursors)
        assert cursors[::2] == cursors[1::2]  # each post's two events side by side


@pytest.mark.node_settings(write_rate=10_000, write_burst=10_000)
async def test_a_follower_resuming_during_bursts_misses_nothing(
    node: Node, connect: Connect
) -> None:
    """A follower reconnects with its cursor while bursts keep coming: the replay and
    the runs together give every post once, in order."""
    ann = await connect("ann")
    first = await connect("cat")
    await first.call("follow", user="ann")
    await ann.call_many([("post", {"text": f"a{i}"}) for i in range(30)])
    got = [int((await first.next_event("feed.insert")).cursor or 0) for _ in range(30)]
    await first.close()
    burst = asyncio.ensure_future(ann.call_many([("post", {"text": f"b{i}"}) for i in range(60)]))
    again = await connect("cat", resume=str(got[-1]))
    await burst
    got += [int((await again.next_event("feed.insert")).cursor or 0) for _ in range(60)]
    assert got == sorted(got) and len(set(got)) == 90
