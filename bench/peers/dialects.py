"""Load-generator connections for the baseline peers (``--connection`` of the loadtest).

They keep the load generator's measurement (``lt:`` post texts, the recorder) and
replace the Hubbub protocol with each peer's own: plain JSON for ``ws_broadcast``,
Engine.IO 4 / Socket.IO 5 text packets for ``sio_server``. Neither peer stores
follows, so each connection joins its authors after connecting.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, ClassVar

import orjson
from websockets.typing import Subprotocol

from clients.loadtest.connection import REQUEST_TIMEOUT, RequestError, SimConnection
from clients.loadtest.recorder import Recorder

ACK_TIMEOUT = 120.0
"""Seconds to wait for a peer's acknowledgement: a slow baseline is measured, not failed."""


class PeerConnection(SimConnection):
    """Shared parts: acknowledged requests by id, joins instead of follows."""

    PERSISTENT_FOLLOWS: ClassVar[bool] = False
    NEEDS_TOKEN: ClassVar[bool] = False
    COUNTS_RAW: ClassVar[bool] = False

    def __init__(self, user: int, name: str, recorder: Recorder, codec: str) -> None:
        super().__init__(user, name, recorder, codec)
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ack_ids = itertools.count(1)
        self._connected: asyncio.Future[None] | None = None

    def subprotocols(self) -> list[Subprotocol] | None:
        """No subprotocol: the peers speak plain WebSocket."""
        return None

    async def _acked(self, frame: str, ack: int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack] = future
        try:
            await self.send(frame)
            async with asyncio.timeout(ACK_TIMEOUT):
                return await future
        except TimeoutError:
            raise RequestError("timeout", "no acknowledgement in time") from None
        finally:
            self._acks.pop(ack, None)

    def _ack(self, ack: int, value: Any) -> None:
        future = self._acks.pop(ack, None)
        if future is not None and not future.done():
            future.set_result(value)

    async def post(self, reply_to: int | None = None) -> None:
        """Publish one load-test post to this user's followers."""
        seq, text = self.recorder.post_text(self.user)
        await self.request("post", {"author": self.name, "text": text})
        self.recorder.acknowledged(self.user, seq)

    async def follow(self, names: list[str]) -> None:
        """Join the rooms of ``names`` and of oneself (the hub's home feed has both)."""
        await self.request("join", [*names, self.name])

    async def request(self, kind: str, data: Any) -> Any:
        """Send one acknowledged message."""
        raise NotImplementedError


class WsBroadcastConnection(PeerConnection):
    """Speaks to ``bench/peers/ws_broadcast.py``."""

    async def handshake(self, token: str, resume_from: str | None) -> None:
        """Nothing to do: the baseline has no authentication."""

    async def request(self, kind: str, data: Any) -> Any:
        """``join`` or ``post`` with an id, acknowledged by ``{"re": id}``."""
        ack = next(self._ack_ids)
        body = {"id": ack, "join": data} if kind == "join" else {"id": ack, **data}
        return await self._acked(orjson.dumps(body).decode(), ack)

    def receive(self, frame: str | bytes) -> None:
        """A broadcast post or an acknowledgement."""
        message = orjson.loads(frame)
        if "re" in message:
            self._ack(message["re"], True)
        else:
            self.recorder.delivered(self.user, message["text"])


class SocketIOConnection(PeerConnection):
    """Speaks Socket.IO over the WebSocket transport to ``bench/peers/sio_server.py``."""

    def address(self, url: str) -> str:
        """The Engine.IO WebSocket endpoint."""
        return url.rstrip("/") + "/socket.io/?EIO=4&transport=websocket"

    async def handshake(self, token: str, resume_from: str | None) -> None:
        """Engine.IO open, then connect to the default namespace."""
        connected = self._connected = asyncio.get_running_loop().create_future()
        await self.send("40")
        async with asyncio.timeout(REQUEST_TIMEOUT):
            await connected

    async def request(self, kind: str, data: Any) -> Any:
        """Emit ``kind`` with an acknowledgement id."""
        ack = next(self._ack_ids)
        return await self._acked(f"42{ack}" + orjson.dumps([kind, data]).decode(), ack)

    def receive(self, frame: str | bytes) -> None:
        """Engine.IO packets: open, ping, and Socket.IO connect, event and ack."""
        text = frame if isinstance(frame, str) else frame.decode()
        if text == "2":
            asyncio.get_running_loop().create_task(self.send("3"))
        elif text.startswith("40"):
            if self._connected is not None and not self._connected.done():
                self._connected.set_result(None)
        elif text.startswith("42"):
            kind, data = orjson.loads(text[2:])
            if kind == "post":
                self.recorder.delivered(self.user, data["text"])
        elif text.startswith("43"):
            head, _, body = text[2:].partition("[")
            self._ack(int(head), orjson.loads("[" + body))
