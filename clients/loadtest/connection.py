"""One simulated user's WebSocket connection, speaking the protocol package directly.

A :class:`SimConnection` opens a :class:`~clients.loadtest.rawws.RawWebSocket`,
authenticates, and takes every frame the socket hands it: replies resolve the request
that is waiting for them, post events go to the
:class:`~clients.loadtest.recorder.Recorder`, and the cursor of each durable event is
kept for ``resume``. Requests refused with ``rate_limited`` are retried after the
``retry_after`` the hub asked for. When the hub closes the socket with a code that asks
for a reconnect, :attr:`SimConnection.on_lost` lets the worker reconnect and resume.
Subclasses (the benchmark's baseline peers) override :meth:`handshake`, :meth:`follow`,
:meth:`post` and :meth:`receive`.

Two receive paths. A *decoded* connection decodes every frame and records each post by
(author, seq), so the recorder knows exactly which ones were missed or repeated. A
*counted* connection (the worker picks them: all but a sample, see ``--decode-every``)
decodes nothing on the hot path: :meth:`SimConnection.frame_received` counts the post
events of a JSON frame in its bytes, reads the frame's first and last cursor and the
send times of its first and last post, and checks that the cursors went up since the
previous frame. A frame that fails a check (a reply in it, a cursor at or below one
already seen, a first or last post without a load-test text) is decoded instead, event
by event, so repeats are counted exactly. Only the first and last post are looked at:
another client's post between two load-test posts is counted too, and shows as
``unexpected`` (the decoded sample skips it). The recorder then compares each counted user's count
with what their followees published.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import msgpack
import orjson
from websockets.typing import Subprotocol

from clients.loadtest.rawws import ConnectionClosed, RawWebSocket
from clients.loadtest.recorder import Recorder
from protocol import CODECS, Codec, ErrorReply, Event, Reply, Request, ops, wire
from protocol.errors import ErrorCode, ProtocolError

__all__ = ["REQUEST_TIMEOUT", "RequestError", "SimConnection"]

REQUEST_TIMEOUT = 30.0
"""Seconds a request may wait for its reply (a slow hub under load is still allowed)."""

IDEMPOTENT = frozenset({"follow", "unfollow", "like", "unlike"})
"""Operations a simulated user repeats after ``unavailable``: doing them twice is harmless."""
UNAVAILABLE_BACKOFF = 0.25
"""Seconds before repeating such an operation; doubles per try, given up after ~10 s."""

POST_EVENTS = frozenset({"feed.insert"})
RECENT_POSTS = 32
MAX_FRAME = 2**21
"""Largest frame accepted from a server (the hub's own bound is 1 MiB)."""

# The markers a counted connection looks for in a JSON frame. Keys come in the
# canonical order (SPEC section 3), and a quote inside a string is escaped, so each
# marker starts a real key: ``{"re":`` a reply, ``{"ev":"feed.insert"`` a post event.
_REPLY = b'{"re":'
_INSERT = b'{"ev":"feed.insert"'
_CURSOR = b'"cursor":"'
_LT_TEXT = b'"text":"lt:'


class RequestError(Exception):
    """A request failed for good (an error reply other than rate_limited, or no reply)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class SimConnection:
    """The client side of one simulated user."""

    PERSISTENT_FOLLOWS: ClassVar[bool] = True
    """Follows outlive the connection (the hub stores them); peers re-join per connection."""

    NEEDS_TOKEN: ClassVar[bool] = True
    """Whether :meth:`open` needs a signed token (the baseline peers do not)."""

    COUNTS_RAW: ClassVar[bool] = True
    """Whether :attr:`counted` may be set: the frames are the hub's JSON events."""

    def __init__(self, user: int, name: str, recorder: Recorder, codec: str) -> None:
        self.user = user
        self.name = name
        self.recorder = recorder
        self.codec: Codec = CODECS[codec]
        self.cursor: str | None = None
        self.auth_cursor: str | None = None
        self.recent: deque[int] = deque(maxlen=RECENT_POSTS)
        self.counted = False
        """Count post events in the raw frames instead of decoding them (set by the worker)."""
        self.high_water = -1
        """The highest decimal cursor received so far, on any of this user's sockets."""
        self._socket: RawWebSocket | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Reply | ErrorReply]] = {}
        self._cut = False
        self.on_lost: Callable[[], None] | None = None
        """Called when the hub ends the connection with a code that asks for a reconnect."""
        self.tls: ssl.SSLContext | None = None
        """The TLS settings of ``wss://`` URLs (None: the system's CAs; set by the worker)."""

    # -- the socket -----------------------------------------------------------------

    def subprotocols(self) -> list[Subprotocol] | None:
        """Subprotocols offered in the handshake."""
        return [Subprotocol(self.codec.subprotocol)]

    def address(self, url: str) -> str:
        """The URL to connect to for the server at ``url``."""
        return url

    async def open(self, url: str, token: str, resume_from: str | None = None) -> None:
        """Connect and authenticate (and resume after ``resume_from``); raise on failure.

        Failures raise RequestError, OSError, TimeoutError or HandshakeFailed.
        """
        self._socket = await RawWebSocket.connect(
            self.address(url), self, self.subprotocols(), MAX_FRAME, REQUEST_TIMEOUT, tls=self.tls
        )
        self._cut = False  # only now: a socket cut earlier may still be ending
        try:
            await self.handshake(token, resume_from)
        except Exception:
            await self._discard()
            raise
        self.recorder.connections_up += 1

    async def _discard(self) -> None:
        """Close a socket whose handshake failed (an ``auth`` answered ``unavailable``
        leaves it open): it never counted as up, and the caller records the failure, so
        its close is neither counted nor handed to :attr:`on_lost` (the worker retries
        connects itself; a hub's later auth-timeout close must not start a second retry)."""
        self._cut = True
        if self._socket is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._socket.close()

    async def handshake(self, token: str, resume_from: str | None) -> None:
        """Authenticate on a fresh socket, keeping the auth cursor; with ``resume_from``
        the ``auth`` itself resumes, so the hub replays before any live event."""
        replies = await self._request_batch([ops.Auth(token, cursor=resume_from)])
        auth = self._result(replies[0])
        if auth.get("resync"):
            self.recorder.resyncs += 1
        self.cursor = auth.get("cursor")
        if self.auth_cursor is None:
            self.auth_cursor = self.cursor

    async def send(self, frame: str | bytes) -> None:
        """Send one frame (raise ConnectionClosed when the socket is closing)."""
        assert self._socket is not None, "open() first"
        self._socket.send(frame, text=isinstance(frame, str) or not self.codec.binary)

    def connection_closed(self, socket: RawWebSocket) -> None:
        """The socket is gone: fail what waits on it, count an unexpected close, and
        ask the worker for a reconnect unless the hub said not to come back."""
        if socket is not self._socket:
            return
        self._fail_waiting()
        if self._cut:
            return
        self.recorder.connections_up -= 1
        code = socket.close_code
        if code not in (None, 1000):
            self.recorder.error(f"close:{code}")
        if self.on_lost is not None and not (code is not None and 4500 <= code <= 4999):
            self.on_lost()

    def frame_received(self, data: bytes, start: int, end: int, binary: bool) -> None:
        """One frame from the socket: counted in place when possible, else decoded."""
        if not (self.counted and not binary and self._count_frame(data, start, end)):
            self.receive(data[start:end])

    def _count_frame(self, data: bytes, start: int, end: int) -> bool:
        """Count the post events of a JSON frame without decoding it.

        One scan of the whole frame (the count of post events); everything else is
        found near its ends. A reply can only come while a request waits, so the scan
        for one is skipped otherwise. Returns False, having changed nothing, when the
        frame must be decoded instead.
        """
        if self._waiting and data.find(_REPLY, start, end) >= 0:
            return False
        first = data.find(_CURSOR, start, end)
        if first < 0:
            return _INSERT not in data[start:end]  # no durable event: nothing to count
        last = data.rfind(_CURSOR, first, end)
        try:
            low = int(data[first + 10 : data.index(b'"', first + 10, end)])
            close = data.index(b'"', last + 10, end)
            high = int(data[last + 10 : close])
        except ValueError:
            return False
        if low <= self.high_water or high < low:
            return False
        posts = data.count(_INSERT, start, end)
        if posts:
            try:
                first_sent = _sent_ns(data, data.index(_LT_TEXT, first, end), end)
                last_sent = _sent_ns(data, data.rindex(_LT_TEXT, first, end), end)
            except (ValueError, IndexError):
                return False
            self.recorder.counted(self.user, posts, first_sent, last_sent)
        self.high_water = high
        self.cursor = data[last + 10 : close].decode()
        return True

    def receive(self, frame: str | bytes) -> None:
        """Decode and handle one frame from the server.

        Events, nearly every message under load, take a fast path as plain maps
        (their fields are checked by use); replies go through the protocol package.
        """
        try:
            loaded = msgpack.unpackb(frame, raw=False) if self.codec.binary else orjson.loads(frame)
            for item in wire.frame_items(loaded):
                if isinstance(item, dict) and "ev" in item:
                    self._event(item.get("cursor"), item["ev"], item["data"])
                else:
                    self._reply(wire.server_message_from_wire(item))
        except (ProtocolError, ValueError, KeyError, TypeError) as exc:
            self.recorder.error(f"decode:{getattr(exc, 'code', 'bad_request')}")

    def _event(self, cursor: str | None, kind: str, data: dict[str, Any]) -> None:
        repeat = False
        if cursor is not None:
            self.recorder.cursor_moved(self.cursor, cursor)
            self.cursor = cursor
            if cursor.isdigit():
                repeat = int(cursor) <= self.high_water
                self.high_water = max(self.high_water, int(cursor))
        if kind in POST_EVENTS:
            self.recent.append(data["id"])
            if self.counted:
                self.recorder.tallied(self.user, data["text"], repeat)
            else:
                self.recorder.delivered(self.user, data["text"])

    def _reply(self, message: Reply | ErrorReply | Event) -> None:
        if isinstance(message, Event):
            self._event(message.cursor, message.type, dict(message.data))
        elif message.id is not None and message.id in self._waiting:
            future = self._waiting.pop(message.id)
            if not future.done():  # cancelled by a close whose cleanup has not run yet
                future.set_result(message)
        elif isinstance(message, ErrorReply):
            self.recorder.error(message.code.value)

    def _fail_waiting(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(RequestError("closed", "the connection closed"))

    def cut(self) -> None:
        """Drop the TCP connection abruptly (no close handshake), as a network cut would."""
        if self._socket is not None:
            self._cut = True
            self.recorder.connections_up -= 1
            self._socket.abort()

    async def close(self) -> None:
        """Close the connection politely and stop reading."""
        if self._socket is not None:
            self._cut = True
            self.recorder.connections_up -= 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._socket.close()
            self._socket.abort()

    # -- requests -------------------------------------------------------------------

    async def call(self, op: ops.Operation) -> dict[str, Any]:
        """Send ``op`` and return the result, retrying after ``retry_after`` while rate
        limited and, for operations that are safe to repeat, while the hub's backend is
        ``unavailable`` (as the protocol advises); a post is never sent twice."""
        backoff = UNAVAILABLE_BACKOFF
        while True:
            reply = await self._request(op)
            if isinstance(reply, Reply):
                return dict(reply.result)
            self.recorder.error(reply.code.value)
            if reply.code is ErrorCode.RATE_LIMITED:
                await asyncio.sleep(reply.retry_after or 0.1)
            elif reply.code is ErrorCode.UNAVAILABLE and op.NAME in IDEMPOTENT and backoff < 10:
                await asyncio.sleep(backoff)
                backoff *= 2
            else:
                raise RequestError(reply.code.value, reply.message)

    def _result(self, reply: Reply | ErrorReply) -> dict[str, Any]:
        if isinstance(reply, ErrorReply):
            self.recorder.error(reply.code.value)
            raise RequestError(reply.code.value, reply.message)
        return dict(reply.result)

    async def _request(self, op: ops.Operation) -> Reply | ErrorReply:
        return (await self._request_batch([op]))[0]

    async def _request_batch(self, batch: list[ops.Operation]) -> list[Reply | ErrorReply]:
        loop = asyncio.get_running_loop()
        requests = [Request(next(self._ids), op) for op in batch]
        futures: list[asyncio.Future[Reply | ErrorReply]] = []
        for request in requests:
            futures.append(loop.create_future())
            self._waiting[request.id] = futures[-1]
        encoded = [self.codec.encode_request(request) for request in requests]
        try:
            await self.send(encoded[0] if len(encoded) == 1 else self.codec.join(encoded))
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return list(await asyncio.gather(*futures))
        except TimeoutError:
            raise RequestError("timeout", f"no reply to {batch[0].NAME} in time") from None
        except ConnectionClosed:
            raise RequestError("closed", "the connection closed") from None
        finally:
            for request in requests:
                self._waiting.pop(request.id, None)

    async def follow(self, names: list[str]) -> None:
        """Follow each of ``names``."""
        for name in names:
            await self.call(ops.Follow(name))

    async def post(self, reply_to: int | None = None) -> None:
        """Publish one load-test post (a reply when ``reply_to``); record it when acked."""
        seq, text = self.recorder.post_text(self.user)
        await self.call(ops.CreatePost(text, reply_to))
        self.recorder.acknowledged(self.user, seq)

    async def like(self, post: int) -> None:
        """Like a post."""
        await self.call(ops.Like(post))


def _sent_ns(data: bytes, text: int, end: int) -> int:
    """The send time in the ``lt:<author>:<seq>:<send ns>`` text starting at ``text``."""
    start = text + len(_LT_TEXT)
    return int(data[start : data.index(b'"', start, end)].split(b":", 3)[2])
