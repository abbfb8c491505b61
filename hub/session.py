"""One authenticated WebSocket connection: decode, authenticate, dispatch, reply, resume.

Theory of operation: a session starts *unauthenticated* and accepts only ``auth`` and
``ping`` until ``auth_timeout`` passes (then it closes with 4003). A valid token makes
it *live*: it is filed in the node's fan-out index under its route keys (its own user,
the authors it follows, its streams) and live events flow into its outbox. Requests
are handled one at a time, in order; bad input earns an error reply, and only
persistent garbage (4501), persistent flooding (4502), a rejected token (4500) or an
overflowing outbox (4001) ends the connection. During ``resume`` live events are *held*
while the missed changes are read back, then released without duplicates.

The same hold-replay-release runs without a request when a shared bus may have dropped
messages (it reconnected) or a follow made on another node added a route key whose
subscription may lag: the node calls :meth:`Session.hold` at the point after which every
live event is newer than some sequence, then :meth:`Session.catch_up` replays the log
from there. ``_floor`` is the sequence up to which this session is complete: live events
at or below it are dropped, so a replay never repeats what was delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from hub.backends.base import BackendUnavailable, Bus, ChangeLog, Store
from hub.config import Settings
from hub.fanout import LocalFanout
from hub.handlers import Handlers
from hub.metrics import NodeMetrics
from hub.outbox import Flusher, Outbox, cut
from hub.ratelimit import TokenBucket
from hub.routing import follow_key, interest_of, routes_for, stream_key, user_key
from hub.social import SocialService
from hub.social.errors import DomainError
from hub.tokens import TokenError, verify_token
from hub.wire import profile_to_wire
from protocol import Codec, ErrorReply, Event, EventType, PreparedEvent, Reply, Request, ops
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.limits import MAX_RESUME_EVENTS, MAX_SUBSCRIPTIONS

__all__ = ["Session", "SessionHost"]

log = logging.getLogger(__name__)

WRITE_OPS = frozenset(
    {"post", "edit", "delete", "like", "unlike", "follow", "unfollow", "profile.update"}
)
"""Operations that count against the stricter per-connection write rate."""

SETTLE_TIMEOUT = 5.0
"""Seconds sign-in waits for a shared bus to subscribe the session's route keys."""

REPLAY_SHARE = 2
"""A replay may fill at most 1/REPLAY_SHARE of the outbox limit; a bigger one is answered
with ``resync`` (the client reloads), so that a replay always ends, never in an endless
cut-reconnect-replay loop, and live events keep room beside it."""

CATCH_UP_ATTEMPTS = 4
"""Tries of a catch-up replay while the store reports itself unavailable."""

CATCH_UP_BACKOFF = 0.5
"""Seconds before the second try of a catch-up; doubles for each further one."""


class SessionHost(Protocol):
    """What a session needs of its node (``hub.node.Node`` provides it; the session
    never imports the node)."""

    settings: Settings
    metrics: NodeMetrics
    flusher: Flusher
    handlers: Handlers
    secret: str
    service: SocialService
    store: Store
    changelog: ChangeLog
    bus: Bus
    fanout: LocalFanout
    draining: bool

    async def session_started(self, session: Session) -> None:
        """A session authenticated."""

    async def session_ended(self, session: Session) -> None:
        """An authenticated session ended (or its ``auth`` was undone)."""

    def request_started(self) -> None:
        """A request began (drain waits for it)."""

    def request_finished(self) -> None:
        """A request was answered."""


class Session:
    """The hub's side of one client connection."""

    __slots__ = (  # thousands of these live per node: no per-instance dict
        "_closing",
        "_flood_strikes",
        "_floor",
        "_garbage_strikes",
        "_held",
        "_held_bytes",
        "_holders",
        "_release_floor",
        "_replaying",
        "_requests",
        "_writes",
        "codec",
        "connection",
        "keys",
        "node",
        "outbox",
        "user",
    )

    def __init__(self, node: SessionHost, connection: ServerConnection, codec: Codec) -> None:
        settings = node.settings
        self.node = node
        self.connection = connection
        self.codec = codec
        self.user = ""
        self.keys: set[str] = set()
        self.outbox = Outbox(
            connection, codec, node.flusher, settings.outbox_limit, self._on_overflow
        )
        self._requests = TokenBucket(settings.request_rate, settings.request_burst)
        self._writes = TokenBucket(settings.write_rate, settings.write_burst)
        self._flood_strikes = 0
        self._garbage_strikes = 0
        self._held: list[tuple[int | None, bytes]] | None = None
        self._held_bytes = 0
        self._holders = 0
        self._floor = 0
        self._release_floor: int | None = None
        self._replaying = asyncio.Lock()
        self._closing: asyncio.Task[None] | None = None

    # -- outgoing -----------------------------------------------------------------

    def send_event(self, seq: int | None, event: PreparedEvent) -> None:
        """Queue a live event, or hold it while a resume is replaying."""
        if seq is not None and seq <= self._floor:
            return
        if self._held is not None:
            self._hold_event(seq, event.bytes_for(self.codec))
        else:
            self.outbox.push(event.bytes_for(self.codec))

    def send_reply(self, message: Reply | ErrorReply) -> None:
        """Queue a reply to one request."""
        self.node.metrics.messages_out.inc()
        if isinstance(message, ErrorReply):
            self.node.metrics.errors.labels(message.code.value).inc()
        self.outbox.push(self.codec.encode_reply(message))

    def send_error(
        self,
        request_id: int | None,
        code: ErrorCode,
        message: str,
        retry_after: float | None = None,
    ) -> None:
        """Queue an error reply."""
        self.send_reply(ErrorReply(request_id, code, message, retry_after))

    def close(self, code: CloseCode, reason: str) -> None:
        """Close the connection with ``code`` once what is queued has been written.

        The close handshake is bounded (:meth:`_close_within`); an outbox that overflows
        on this last write cuts the connection instead (4001)."""
        if self._closing is None:
            self.outbox.write_pending({})
        if self._closing is None:
            self.node.metrics.closes.labels(str(code.value)).inc()
            self._closing = asyncio.get_running_loop().create_task(self._close_within(code, reason))

    async def _close_within(self, code: CloseCode, reason: str) -> None:
        """The close handshake, bounded by the server's ``close_timeout``: websockets'
        own timeout starts only once the close frame is drained, which a peer that does
        not read never lets happen; past the bound the socket is cut."""
        connection = self.connection
        try:
            async with asyncio.timeout(connection.close_timeout):
                await connection.close(code.value, reason)
        except TimeoutError:
            cut(connection, code, reason)

    def _on_overflow(self) -> None:
        """The outbox overflowed: cut the connection now (a best-effort 4001 close frame,
        then the socket is aborted); the receive loop ends as the connection is lost."""
        self.node.metrics.outbox_drops.inc()
        if self._closing is None:
            self.node.metrics.closes.labels(str(CloseCode.SLOW.value)).inc()
            self._closing = asyncio.get_running_loop().create_task(self.connection.wait_closed())
        cut(self.connection, CloseCode.SLOW, "outbox over its limit: reconnect and resume")

    # -- the connection's life ----------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes."""
        try:
            if await self._authenticate():
                async for frame in self.connection:
                    await self._receive_frame(frame)
                    if self._closing is not None:
                        break
        except ConnectionClosed:
            pass
        finally:
            self.outbox.close()
            if self.user:
                await self.node.session_ended(self)
        if self._closing is not None:
            await self._closing

    async def _authenticate(self) -> bool:
        timeout = self.node.settings.auth_timeout
        try:
            async with asyncio.timeout(timeout):
                async for frame in self.connection:
                    await self._receive_frame(frame)
                    if self.user or self._closing is not None:
                        break
        except TimeoutError:
            self.close(CloseCode.AUTH_TIMEOUT, f"no auth within {timeout:g} s")
        return bool(self.user) and self._closing is None

    async def _receive_frame(self, frame: str | bytes) -> None:
        try:
            items = self.codec.decode_requests(frame)
        except ProtocolError as exc:
            self._garbage(exc)
            return
        for item in items:
            if isinstance(item, ProtocolError):
                self._garbage(item)
            else:
                await self._handle(item)
            if self._closing is not None:
                return

    def _garbage(self, error: ProtocolError) -> None:
        self._garbage_strikes += 1
        self.send_error(error.request_id, error.code, error.message)
        if self._garbage_strikes >= self.node.settings.garbage_strikes:
            self.close(CloseCode.PROTOCOL_ERROR, "too many undecodable or invalid frames")

    async def _handle(self, request: Request) -> None:
        self.node.metrics.messages_in.inc()
        name = request.op.NAME
        retry_after = self._requests.take()
        if retry_after is None and name in WRITE_OPS:
            retry_after = self._writes.take()
        if retry_after is not None:
            self._flood_strikes += 1
            if self._flood_strikes >= self.node.settings.flood_strikes:
                self.close(CloseCode.FLOOD, "kept flooding after rate_limited")
                return
            self.send_error(
                request.id,
                ErrorCode.RATE_LIMITED,
                f"too many requests; retry in {retry_after:.2f} s",
                retry_after,
            )
            return
        self._flood_strikes = 0
        if not self.user and name not in {"auth", "ping"}:
            self.send_error(request.id, ErrorCode.UNAUTHORIZED, "send auth with a token first")
            return
        if self.node.draining:
            message = "node draining: reconnect (to any node) and retry"
            self.send_error(request.id, ErrorCode.UNAVAILABLE, message)
            return
        self.node.request_started()
        try:
            result = await self._dispatch(request.op)
        except DomainError as exc:
            self.send_error(request.id, exc.code, exc.message)
        except BackendUnavailable as exc:
            self.send_error(request.id, ErrorCode.UNAVAILABLE, f"{exc}; retry shortly")
        except ProtocolError as exc:
            self.send_error(request.id, exc.code, exc.message, exc.retry_after)
            if name == "auth" and exc.code is ErrorCode.UNAUTHORIZED:
                self.close(CloseCode.UNAUTHORIZED, "token rejected: get a new token")
        except Exception:
            log.exception("request %s (%s) of %s failed", request.id, name, self.user)
            self.send_error(request.id, ErrorCode.INTERNAL, "internal error; see the hub log")
        else:
            self.send_reply(Reply(request.id, result))
        finally:
            self.node.request_finished()
            self._release_after_reply()

    async def _dispatch(self, op: ops.Operation) -> Mapping[str, Any]:
        """Run one request: session operations here, the rest by the node's handlers."""
        match op:
            case ops.Auth(token=token, cursor=cursor, streams=streams):
                return await self.sign_in(token, cursor, streams or ())
            case ops.Ping():
                return {"time": int(time.time() * 1000)}
            case ops.Subscribe(stream=stream):
                subscriptions = self.subscriptions
                if stream not in subscriptions:
                    if len(subscriptions) >= MAX_SUBSCRIPTIONS:
                        raise ProtocolError(
                            ErrorCode.TOO_LARGE,
                            f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection",
                        )
                    self.subscribe(stream)
                return {"stream": stream, "subscribed": True}
            case ops.Unsubscribe(stream=stream):
                self.unsubscribe(stream)
                return {"stream": stream, "subscribed": False}
            case ops.Resume(cursor=cursor):
                return await self.resume(cursor)
        return await self.node.handlers.dispatch(self.user, op)

    # -- authentication, routing and resume ----------------------------------------

    async def sign_in(
        self, token: str, cursor: str | None = None, streams: Iterable[str] = ()
    ) -> Mapping[str, Any]:
        """Verify ``token``, file this session in the fan-out, return the auth result.

        With ``cursor``, the events missed after it are replayed before the reply, and
        live events are held until the reply is queued: a reconnect has no gap, no
        repeat and no reordering.
        """
        if self.user:
            raise ProtocolError(ErrorCode.CONFLICT, "already authenticated")
        try:
            user = verify_token(token, self.node.secret)
        except TokenError as exc:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, str(exc)) from exc
        profile = await self.node.service.sign_in(user)
        followees = await self.node.store.followee_ids(user)
        self.user = user
        self._hold_until_replied()
        self.add_keys([user_key(user), follow_key(user), *map(follow_key, followees)])
        for stream in streams:
            self.subscribe(stream)
        await self.node.session_started(self)
        try:
            result = await self._signed_in(profile_to_wire(profile), cursor)
        except BaseException:
            await self._undo_sign_in()
            raise
        return result

    async def _signed_in(self, user: Mapping[str, Any], cursor: str | None) -> dict[str, Any]:
        """The rest of ``auth`` once filed: wait for the bus, replay, answer."""
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT):
                await self.node.bus.settled()
        except TimeoutError:
            raise BackendUnavailable("the bus has not subscribed yet") from None
        head = self._release_floor = await self.node.changelog.head()
        result: dict[str, Any] = {"user": user}
        if cursor is not None:
            async with self._replaying:
                result.update((await self._replay(cursor, upto=head))[0])
        result["cursor"] = str(head)
        return result

    async def _undo_sign_in(self) -> None:
        """A failed ``auth`` leaves nothing behind: the session is unfiled, its held
        events and replay dropped, and it is unauthenticated again (it may retry)."""
        if self._held is not None:
            self._held.clear()
            self._held_bytes = 0
        await self.node.session_ended(self)
        self.keys.clear()
        self.user = ""

    def add_keys(self, keys: list[str]) -> None:
        """File this session under more route keys."""
        new = [k for k in keys if k not in self.keys]
        self.keys.update(new)
        self.node.fanout.add(self, new)

    def remove_keys(self, keys: list[str]) -> None:
        """Take this session out from under route keys."""
        gone = [k for k in keys if k in self.keys]
        self.keys.difference_update(gone)
        self.node.fanout.remove(self, gone)

    @property
    def subscriptions(self) -> set[str]:
        """The extra live streams of this session, derived from its route keys."""
        return {key[2:] for key in self.keys if key.startswith("s:")}

    def subscribe(self, stream: str) -> None:
        """Add a live stream (``public``, ``tag:x``, ``thread:n``) to this session."""
        self.add_keys([stream_key(stream)])

    def unsubscribe(self, stream: str) -> None:
        """Stop a live stream."""
        self.remove_keys([stream_key(stream)])

    async def resume(self, cursor: str) -> Mapping[str, Any]:
        """Replay what this session missed after ``cursor``, then continue live.

        Live events arriving meanwhile are held and released after the reply, minus
        those the replay already covered. Events delivered live between ``auth`` and
        this request may come again (``auth`` with a cursor avoids that).
        """
        self._hold_until_replied()
        async with self._replaying:
            result, self._release_floor = await self._replay(cursor)
        return result

    def _hold_until_replied(self) -> None:
        """Hold live events until the current request's reply has been queued."""
        self.hold()
        self._release_floor = 0

    def _release_after_reply(self) -> None:
        if self._release_floor is not None:
            floor, self._release_floor = self._release_floor, None
            self._release_held(floor)

    def hold(self) -> None:
        """Hold live events until the matching release (after a replay)."""
        self._holders += 1
        if self._held is None:
            self._held = []

    async def catch_up(self, after: int) -> None:
        """After :meth:`hold`: replay changes past ``after`` (and past what this session
        already has), then release the held events.

        A store that is briefly unavailable (busy pool, reconnecting) is retried
        :data:`CATCH_UP_ATTEMPTS` times with backoff while events stay held (bounded by
        the outbox limit); any other failure, or the last one, closes the connection
        with 4002 so that the client reconnects and resumes: never a silent gap.
        """
        floor = 0
        try:
            floor = await self._catch_up_retrying(after)
        except Exception:
            log.exception("catching up %s failed; closing so that the client resumes", self.user)
            self.close(CloseCode.INTERNAL, "could not catch up: reconnect and resume")
        finally:
            self._release_held(floor)

    async def _catch_up_retrying(self, after: int) -> int:
        for attempt in range(CATCH_UP_ATTEMPTS - 1):
            try:
                return await self._catch_up_once(after)
            except BackendUnavailable:
                if self.outbox.closed:
                    raise
                self.node.metrics.catch_up_retries.inc()
                await asyncio.sleep(CATCH_UP_BACKOFF * 2**attempt)
        return await self._catch_up_once(after)

    async def _catch_up_once(self, after: int) -> int:
        async with self._replaying:
            return (await self._replay(str(max(after, self._floor))))[1]

    def _hold_event(self, seq: int | None, data: bytes) -> None:
        """Keep a live event for after the replay; held bytes count against the outbox
        limit, so a hold under a flood ends like any slow reader (4001), never unbounded."""
        if self.outbox.closed:
            return
        assert self._held is not None
        self._held.append((seq, data))
        self._held_bytes += len(data)
        if self._held_bytes > self.outbox.limit:
            self._held.clear()
            self.outbox.overflow()

    def _release_held(self, floor: int) -> None:
        self._floor = max(self._floor, floor)
        self._holders -= 1
        if self._holders > 0:
            return
        held, self._held, self._held_bytes = self._held or [], None, 0
        for seq, data in held:
            if seq is None or seq > self._floor:
                self.outbox.push(data)

    async def _replay(self, cursor: str, upto: int | None = None) -> tuple[dict[str, Any], int]:
        """Push the events missed after ``cursor`` (up to change ``upto``); return the
        result map and the last change covered, or push ``resync`` if that is impossible."""
        after = int(cursor) if cursor.isdigit() else -1
        head = await self.node.changelog.head()
        changes = None
        if 0 <= after <= head:
            interest = interest_of(self.user, self.keys)
            changes = await self.node.changelog.read_since(after, interest, MAX_RESUME_EVENTS)
        replay: list[bytes] = []
        replay_bytes, last = 0, after
        for change in changes or ():
            if upto is not None and change.seq > upto:
                break
            for keys, event in routes_for(change):
                if not self.keys.isdisjoint(keys):
                    replay.append(self.codec.encode_event(event))
                    replay_bytes += len(replay[-1])
            last = change.seq
        if changes is None or replay_bytes > self.outbox.limit // REPLAY_SHARE:
            why = "cursor outside the resume window" if changes is None else "too much to replay"
            resync = Event(EventType.RESYNC, None, {"reason": why})
            self.outbox.push(self.codec.encode_event(resync))
            return {"replayed": 0, "cursor": str(head), "resync": True}, head
        for message in replay:
            self.outbox.push(message)
        replayed = len(replay)
        return {"replayed": replayed, "cursor": str(last)}, last
