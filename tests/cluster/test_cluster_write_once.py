"""A write whose reply is lost is never run twice: Redis ran the script, the connection
broke before the reply came back, and the hub answers ``unavailable`` instead of
re-sending it (which would create the post a second time)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

from hub.node import Node
from hub.tokens import issue_token
from tests.hub.conftest import SECRET, make_settings
from tests.hub.wsclient import RequestFailed, WsClient
from tests.redisproc import RedisServer

CHUNK = 65536


class ReplyLossProxy:
    """A TCP proxy to Redis that passes everything on, except that a connection whose
    request carried ``marker`` is cut instead of getting its reply."""

    def __init__(self, target_port: int, marker: bytes) -> None:
        self.target_port = target_port
        self.marker = marker
        self.replies_lost = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free port; return the Redis URL to give the hub."""
        self._server = await asyncio.start_server(self._pair, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def close(self) -> None:
        """Stop listening (open pairs end with their peers)."""
        if self._server is not None:
            self._server.close()

    async def _pair(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        marked = False

        async def requests() -> None:
            nonlocal marked
            while data := await client_r.read(CHUNK):
                marked = marked or self.marker in data
                redis_w.write(data)
                await redis_w.drain()
            redis_w.close()

        async def replies() -> None:
            while data := await redis_r.read(CHUNK):
                if marked:  # Redis has run the marked command: lose its reply
                    self.replies_lost += 1
                    client_w.transport.abort()
                    redis_w.close()
                    return
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        with contextlib.suppress(ConnectionError):
            await asyncio.gather(requests(), replies())


async def test_a_post_whose_reply_is_lost_is_created_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    proxy = ReplyLossProxy(redis_server.port, b"reply-lost")
    url = await proxy.start()
    node = await Node.start(dataclasses.replace(make_settings(tmp_path), redis_url=url))
    try:
        bob = await WsClient.open(f"ws://127.0.0.1:{node.port}/")
        await bob.call("auth", token=issue_token("bob", SECRET))
        await bob.call("post", text="warm-up")  # loads the script: EVALSHA finds it next time
        try:
            await bob.call("post", text="reply-lost")
        except RequestFailed as failed:
            assert failed.reply.code == "unavailable"
        else:
            raise AssertionError("the post's reply was lost, yet the hub acknowledged it")
        assert proxy.replies_lost == 1  # sent once: no second try to lose
        timeline = await bob.call("feed.user", user="bob")
        assert [p["text"] for p in timeline["items"]] == ["reply-lost", "warm-up"]
        await bob.close()
    finally:
        await node.drain()
        await proxy.close()
