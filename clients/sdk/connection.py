"""The reconnecting transport: request/reply matching, cursors, resume and backoff.

Theory of operation. A :class:`Connection` owns at most one WebSocket at a time and
a *supervisor* task that outlives it. Each WebSocket goes through:

1. *dial* (negotiating the codec's subprotocol) and a reader task for its frames;
2. *handshake*: ``auth``; on a reconnect it carries the last cursor processed and the
   streams held, so the hub replays what was missed before its reply and before any
   live event. Events arriving during the handshake are *held* and released after the
   reply (or turned into a reload on ``resync``), so nothing is missed, repeated or
   reordered;
3. *ready*: requests flow; every reply is matched to its request by id.

When the WebSocket closes, the close code decides: 4500-4999 end the connection for
good (4500 raises :class:`Unauthorized`), anything else (4000-4499, 1006, ...)
reconnects after a full-jitter exponential backoff. A reconnect whose ``auth`` the hub
refuses is retried the same way, each delay bound doubling: ``conflict`` with close
4004 (the user already holds the most connections the hub allows: one may close
later), ``unavailable``; only a rejected token ends it. Requests issued meanwhile wait
for the connection (up to ``request_timeout``); requests in flight are sent again
if repeating them is harmless, and fail with :class:`ConnectionLost` if not
(``post``, ``delete``).

Events go to *listeners*: plain callables run in wire order on the reader's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Subprotocol

from clients.sdk.errors import (
    ConnectionLost,
    HubError,
    RequestTimeout,
    SdkError,
    TooLarge,
    Unauthorized,
    error_from_reply,
)
from clients.sdk.events import Closed, HubEvent, Reconnected, Resync, event_from_wire
from protocol import CODECS, ErrorReply, Event, Operation, ProtocolError, Reply, Request, ops
from protocol.errors import CloseCode
from protocol.limits import MAX_CLIENT_FRAME_BYTES, MAX_SERVER_FRAME_BYTES

__all__ = ["Connection", "Listener", "Options", "Stats"]

log = logging.getLogger(__name__)

Listener = Callable[[HubEvent], None]
"""A callable that receives every event, in order, on the connection's reader task."""

ONCE = frozenset({"post", "delete", "auth", "resume"})
"""Operations never sent twice: repeating them after a drop could act twice or mislead."""


@dataclass(frozen=True, slots=True)
class Options:
    """How a connection behaves; every field has a sensible default."""

    codec: str = "json"
    """``json`` or ``msgpack``: the wire encoding to negotiate."""
    request_timeout: float = 10.0
    """Seconds a request may wait for its answer, including time spent reconnecting."""
    connect_timeout: float = 10.0
    """Seconds one connection attempt (dial and handshake) may take."""
    backoff_base: float = 0.1
    """First reconnect delay bound, in seconds; doubles per failed attempt."""
    backoff_max: float = 10.0
    """Largest reconnect delay bound, in seconds."""
    rate_limit_retries: int = 0
    """How often a ``rate_limited`` request is retried after its ``retry_after``."""
    tls: ssl.SSLContext | None = None
    """For ``wss://`` URLs: the TLS settings, e.g. ``ssl.create_default_context(cafile=
    "ca.pem")`` for a hub whose certificate a private CA signed (None: the system's
    certificate authorities)."""

    def subprotocol(self) -> str:
        """The WebSocket subprotocol of ``codec``; raises ValueError if unknown."""
        for name, codec in CODECS.items():
            if codec.name == self.codec:
                return name
        raise ValueError(f"unknown codec {self.codec!r}: use 'json' or 'msgpack'")

    def backoff(self, attempt: int) -> float:
        """The delay before reconnect ``attempt`` (0-based): full jitter."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))


@dataclass(slots=True)
class _Pending:
    request: Request
    future: asyncio.Future[Reply | ErrorReply]
    sent_on: int | None = None
    """The generation of the WebSocket it was sent on; None while unsent."""


@dataclass(slots=True)
class Stats:
    """Counters of a connection's life, for logs and tests."""

    reconnects: int = 0
    resumes: int = 0
    resyncs: int = 0
    refused: int = 0
    """Reconnect attempts whose ``auth`` the hub refused (e.g. too many connections, 4004)."""
    last_close_code: int | None = None


def _fatal(code: int | None, reason: str) -> SdkError | None:
    """The error a close code ends the connection with, or None to reconnect."""
    if code == CloseCode.UNAUTHORIZED:
        return Unauthorized(f"the hub rejected the token ({reason or 'close 4500'}): get a new one")
    if code is not None and 4500 <= code <= 4999:
        return ConnectionLost(f"the hub closed the connection with {code} ({reason}); not retrying")
    return None


class Connection:
    """A self-healing connection to a hub; see the module docstring."""

    def __init__(self, url: str, token: str, options: Options | None = None) -> None:
        self.url = url
        self.options = options or Options()
        self.codec = CODECS[self.options.subprotocol()]
        self.token = token
        self.cursor: str | None = None
        """The cursor of the last durable event delivered: where a resume starts."""
        self.auth_result: Mapping[str, Any] = {}
        self.subscriptions: set[str] = set()
        self.stats = Stats()
        self._listeners: list[Listener] = []
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._gen = 0
        self._held: list[Event] | None = None
        self._ready = asyncio.Event()
        self._failure: SdkError | None = None
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None

    # -- public -------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every event from now on."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    @property
    def closed(self) -> bool:
        """Whether the connection has ended for good (closed, or refused by the hub)."""
        return self._failure is not None

    @property
    def connected(self) -> bool:
        """Whether requests are flowing right now (not reconnecting, not closed)."""
        return self._ready.is_set()

    async def open(self) -> None:
        """Connect and authenticate once; raise on failure (no retry for the first try)."""
        try:
            reader = await self._connect(resume=False)
        except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
            raise ConnectionLost(f"cannot connect to {self.url}: {exc}") from exc
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(reader))

    async def call(self, op: Operation) -> Mapping[str, Any]:
        """Send ``op`` and return its result; raise the HubError of an error reply.

        Waits for a reconnect if needed; raises RequestTimeout after
        ``request_timeout`` and retries ``rate_limited`` up to ``rate_limit_retries``.
        """
        retries = self.options.rate_limit_retries
        while True:
            reply = await self._exchange(op, self.options.request_timeout)
            if isinstance(reply, Reply):
                if isinstance(op, ops.Subscribe):
                    self.subscriptions.add(op.stream)
                elif isinstance(op, ops.Unsubscribe):
                    self.subscriptions.discard(op.stream)
                return reply.result
            error = error_from_reply(reply)
            if reply.retry_after is None or retries <= 0:
                raise error
            retries -= 1
            log.info("%s rate limited; retrying in %.2f s", op.NAME, reply.retry_after)
            await asyncio.sleep(reply.retry_after)

    async def close(self) -> None:
        """Close for good; pending requests fail with ConnectionLost."""
        if self._closing:
            return
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._finish(None)

    # -- requests -----------------------------------------------------------------

    async def _exchange(
        self, op: Operation, seconds: float, on: ClientConnection | None = None
    ) -> Reply | ErrorReply:
        """Send one request (now on ``on``, or when ready) and await its reply."""
        if self._failure is not None:
            raise self._failure
        request = Request(next(self._ids), op)
        if len(self.codec.encode_request(request)) > MAX_CLIENT_FRAME_BYTES:
            raise TooLarge(f"the {op.NAME!r} request is over {MAX_CLIENT_FRAME_BYTES} bytes")
        pending = _Pending(request, asyncio.get_running_loop().create_future())
        self._pending[request.id] = pending
        try:
            if on is not None:
                await self._send(pending, on)
            elif self._ready.is_set() and self._ws is not None:
                await self._send(pending, self._ws)
            async with asyncio.timeout(seconds):
                return await pending.future
        except TimeoutError:
            state = "" if self._ready.is_set() else " (the hub is unreachable: reconnecting)"
            raise RequestTimeout(f"no answer to {op.NAME!r} within {seconds:g} s{state}") from None
        finally:
            self._pending.pop(request.id, None)

    async def _send(self, pending: _Pending, ws: ClientConnection) -> None:
        pending.sent_on = self._gen
        # A failed send is handled when the reader sees the connection end.
        with contextlib.suppress(ConnectionClosed):
            await ws.send(self.codec.encode_request(pending.request), text=not self.codec.binary)

    async def _handshake_call(self, op: Operation, ws: ClientConnection) -> Mapping[str, Any]:
        reply = await self._exchange(op, self.options.connect_timeout, on=ws)
        if isinstance(reply, ErrorReply):
            raise error_from_reply(reply)
        return reply.result

    # -- connecting ---------------------------------------------------------------

    async def _connect(self, *, resume: bool) -> asyncio.Task[int | None]:
        """Dial, start reading, authenticate (and resume); return the reader task."""
        secure = self.options.tls is not None and self.url.startswith("wss:")
        tls: dict[str, Any] = {"ssl": self.options.tls} if secure else {}
        ws = await ws_connect(
            self.url,
            subprotocols=[Subprotocol(self.codec.subprotocol)],
            max_size=MAX_SERVER_FRAME_BYTES,
            open_timeout=self.options.connect_timeout,
            compression=None,
            proxy=None,
            **tls,
        )
        self._gen += 1
        self._ws = ws
        reader = asyncio.get_running_loop().create_task(self._read(ws, self._gen))
        last = self.cursor if resume else None
        streams = tuple(sorted(self.subscriptions)) if resume else ()
        self._held = [] if resume else None
        try:
            self.auth_result = await self._handshake_call(
                ops.Auth(self.token, cursor=last, streams=streams or None), ws
            )
            if not resume:
                self.cursor = self.auth_result.get("cursor")
                self._ready.set()
                return reader
            self._release_held(resumed=last is not None and not self.auth_result.get("resync"))
        except BaseException:
            self._held = None
            await ws.close()
            raise
        self._ready.set()
        for pending in list(self._pending.values()):
            if pending.sent_on is None:
                await self._send(pending, ws)
        return reader

    def _release_held(self, resumed: bool) -> None:
        held, self._held = self._held or [], None
        if resumed:
            self.stats.resumes += 1
        else:
            self.stats.resyncs += 1
            self.cursor = self.auth_result.get("cursor")
            if not any(e.type == "resync" for e in held):
                self._deliver(Resync(None, "no cursor to resume from"))
        for event in held:
            self._receive_event(event)
        if resumed:
            self.cursor = self.auth_result.get("cursor") or self.cursor
        self._deliver(Reconnected(None, resumed))

    async def _supervise(self, reader: asyncio.Task[int | None]) -> None:
        """Reconnect with backoff whenever the WebSocket ends, until closed or refused."""
        while True:
            code = await reader
            if self._closing:
                return
            reason = self._ws.close_reason if self._ws is not None else ""
            self.stats.last_close_code = code
            failure = _fatal(code, reason or "")
            if failure is not None:
                self._finish(failure)
                return
            log.info("connection to %s ended (%s); reconnecting", self.url, code)
            attempt = 0
            while True:
                await asyncio.sleep(self.options.backoff(attempt))
                attempt += 1
                try:
                    reader = await self._connect(resume=True)
                except Unauthorized as exc:
                    self._finish(exc)
                    return
                except (OSError, TimeoutError, WebSocketException, SdkError) as exc:
                    if isinstance(exc, HubError):
                        self.stats.refused += 1
                    log.info("reconnect attempt %d to %s failed: %s", attempt, self.url, exc)
                    continue
                self.stats.reconnects += 1
                break

    def _finish(self, failure: SdkError | None) -> None:
        """End for good: fail what waits, tell listeners once."""
        if self._failure is not None:
            return
        self._failure = failure or ConnectionLost("the connection was closed")
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(self._failure)
        self._deliver(Closed(None, failure))

    # -- reading ------------------------------------------------------------------

    async def _read(self, ws: ClientConnection, gen: int) -> int | None:
        """Dispatch every frame of ``ws``; return its close code when it ends."""
        try:
            async for frame in ws:
                try:
                    messages = self.codec.decode_server_frame(frame)
                except ProtocolError as exc:
                    log.warning("ignoring an undecodable frame from the hub: %s", exc)
                    continue
                for message in messages:
                    if isinstance(message, Event):
                        self._receive_event(message)
                    else:
                        self._receive_reply(message)
        except ConnectionClosed:
            pass
        self._ready.clear()
        for pending in self._pending.values():
            if pending.sent_on == gen and not pending.future.done():
                if pending.request.op.NAME in ONCE:
                    pending.future.set_exception(
                        ConnectionLost(
                            f"the connection dropped while {pending.request.op.NAME!r} was in "
                            "flight; it may or may not have taken effect"
                        )
                    )
                else:
                    pending.sent_on = None
        return ws.close_code

    def _receive_reply(self, reply: Reply | ErrorReply) -> None:
        pending = self._pending.get(reply.id) if reply.id is not None else None
        if pending is None:
            if isinstance(reply, ErrorReply):
                log.warning("the hub reported an error: %s %s", reply.code, reply.message)
        elif not pending.future.done():
            pending.future.set_result(reply)

    def _receive_event(self, event: Event) -> None:
        if self._held is not None:
            self._held.append(event)
            return
        if event.cursor is not None:
            self.cursor = event.cursor
        try:
            typed = event_from_wire(event)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring a malformed %r event: %s", event.type, exc)
            return
        self._deliver(typed)

    def announce(self, event: HubEvent) -> None:
        """Hand an event the SDK made itself to every listener, like one from the hub."""
        self._deliver(event)

    def _deliver(self, event: HubEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("an event listener failed on %r", event)
