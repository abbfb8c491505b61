"""A minimal protocol-level test client: real WebSocket, the protocol package, no SDK."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol import CODECS, Codec, ErrorReply, Event, Reply, Request, ops

WAIT = 10.0
"""Seconds any single expectation may take before the test fails."""


class RequestFailed(Exception):
    """The hub answered a request with an error reply."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(f"{reply.code}: {reply.message}")
        self.reply = reply


class WsClient:
    """One client connection: send requests, await replies, read pushed events."""

    def __init__(self, connection: ClientConnection, codec: Codec) -> None:
        self.connection = connection
        self.codec = codec
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.cursor: str | None = None
        self.auth_result: Mapping[str, Any] = {}
        self._ids = itertools.count(1)
        self._waiting: dict[int | None, asyncio.Future[Reply | ErrorReply]] = {}
        self.errors: list[ErrorReply] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, subprotocol: str = "hubbub.v1.json") -> WsClient:
        """Connect to ``url`` with ``subprotocol``."""
        connection = await connect(url, subprotocols=[subprotocol], max_size=2**21)  # type: ignore[list-item]
        return cls(connection, CODECS[subprotocol])

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.connection:
                for message in self.codec.decode_server_frame(frame):
                    if isinstance(message, Event):
                        if message.cursor is not None:
                            self.cursor = message.cursor
                        self.events.put_nowait(message)
                    else:
                        future = self._waiting.pop(message.id, None)
                        if future is not None:
                            future.set_result(message)
                        elif isinstance(message, ErrorReply):
                            self.errors.append(message)

    async def send_raw(self, frame: bytes | str) -> None:
        """Send a frame as it is."""
        await self.connection.send(frame)

    async def call(self, op: str, **args: Any) -> Mapping[str, Any]:
        """Send one request and return its result; raise RequestFailed on an error reply."""
        reply = await self.call_raw(op, **args)
        if isinstance(reply, ErrorReply):
            raise RequestFailed(reply)
        return reply.result

    async def call_raw(self, op: str, **args: Any) -> Reply | ErrorReply:
        """Send one request and return the reply, error or not."""
        request_id = next(self._ids)
        request = Request(request_id, ops.OPERATIONS[op].from_args(args))
        future: asyncio.Future[Reply | ErrorReply] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        await self.connection.send(self.codec.encode_request(request), text=not self.codec.binary)
        async with asyncio.timeout(WAIT):
            return await future

    async def call_many(
        self, requests: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Reply | ErrorReply]:
        """Send ``(op, args)`` requests in one batch frame; return their replies in order."""
        loop = asyncio.get_running_loop()
        encoded, futures = [], []
        for op, args in requests:
            request_id = next(self._ids)
            future: asyncio.Future[Reply | ErrorReply] = loop.create_future()
            self._waiting[request_id] = future
            futures.append(future)
            encoded.append(
                self.codec.encode_request(Request(request_id, ops.OPERATIONS[op].from_args(args)))
            )
        await self.connection.send(self.codec.join(encoded), text=not self.codec.binary)
        async with asyncio.timeout(WAIT):
            return list(await asyncio.gather(*futures))

    async def call_maps(self, maps: Sequence[Mapping[str, Any]]) -> list[Reply | ErrorReply]:
        """Send request maps as they are (valid or not; each with an ``id``) in one JSON
        frame, a batch when there are several; return their replies in order."""
        assert not self.codec.binary, "call_maps speaks JSON"
        loop = asyncio.get_running_loop()
        futures = []
        for message in maps:
            future: asyncio.Future[Reply | ErrorReply] = loop.create_future()
            self._waiting[message["id"]] = future
            futures.append(future)
        await self.connection.send(orjson.dumps(maps[0] if len(maps) == 1 else list(maps)).decode())
        async with asyncio.timeout(WAIT):
            return list(await asyncio.gather(*futures))

    async def next_event(self, *types: str) -> Event:
        """The next pushed event (of one of ``types`` if given; others are skipped)."""
        async with asyncio.timeout(WAIT):
            while True:
                event = await self.events.get()
                if not types or event.type in types:
                    return event

    async def close(self) -> None:
        """Close the connection and stop reading."""
        await self.connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def closed_code(self) -> int | None:
        """Wait for the hub to close the connection and return its close code."""
        async with asyncio.timeout(WAIT):
            await self.connection.wait_closed()
        return self.connection.close_code


async def assert_held_to_user_rate(clients: Sequence[WsClient], rate: float, burst: int) -> None:
    """Flood posts from every one of ``clients`` (one user) at once, 30 per connection in
    one batch each: at most ``burst`` plus ``rate`` per second elapsed are served, and
    every other one is ``rate_limited`` by the per-user bucket, with a ``retry_after``."""
    started = time.monotonic()
    batches = await asyncio.gather(
        *(c.call_many([("post", {"text": f"spam {i}"}) for i in range(30)]) for c in clients)
    )
    took = time.monotonic() - started
    replies = [reply for batch in batches for reply in batch]
    served = sum(isinstance(reply, Reply) for reply in replies)
    assert burst <= served <= burst + rate * took + 1, (served, took)
    refused = [reply for reply in replies if isinstance(reply, ErrorReply)]
    assert {reply.code.value for reply in refused} == {"rate_limited"}
    assert all("this user" in r.message and (r.retry_after or 0) > 0 for r in refused)
