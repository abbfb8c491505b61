"""The load generator's simulated users retry what is safe to retry while Redis is down:
a follow goes through once Redis is back; a post is never sent twice."""

from __future__ import annotations

import asyncio

import pytest

from clients.loadtest.connection import RequestError, SimConnection
from clients.loadtest.recorder import Recorder
from hub.tokens import issue_token
from protocol.codec import JSON
from tests.cluster.conftest import SECRET, Cluster


class RefusalWatch(Recorder):
    """A recorder that wakes the test at the second ``unavailable`` refusal."""

    def __init__(self) -> None:
        super().__init__()
        self.second_refusal = asyncio.Event()

    def error(self, code: str) -> None:
        """Count as usual; signal once two ``unavailable`` replies came."""
        super().error(code)
        if self.errors["unavailable"] >= 2:
            self.second_refusal.set()


async def test_follow_is_retried_through_an_outage_and_a_post_is_not(cluster: Cluster) -> None:
    (node,) = cluster.start_nodes(1)
    await cluster.connect("bob", 0)  # signing in creates bob's profile
    recorder = RefusalWatch()
    ann = SimConnection(0, "ann", recorder, JSON.subprotocol)
    await ann.open(node.url, issue_token("ann", SECRET))
    try:
        cluster.redis.stop(kill=True)
        with pytest.raises(RequestError) as refused:
            await ann.post()
        assert refused.value.code == "unavailable"
        follow = asyncio.ensure_future(ann.follow(["bob"]))
        await asyncio.wait_for(recorder.second_refusal.wait(), 30)  # the follow's first
        cluster.redis.restart()
        await asyncio.wait_for(follow, 30)
        assert recorder.errors["unavailable"] >= 2  # the post's and at least one follow's
        assert recorder.published == {}  # the refused post is not counted as published
    finally:
        await ann.close()
