"""One WebSocket connection: the I/O glue around :class:`hub.session_core.SessionCore`.

Theory of operation: the session reads frames, decodes them (``protocol.codec``) and
asks its sans-I/O core what to do with each request (serve, refuse, cut); it runs the
request — session operations (``auth``, ``ping``, ``subscribe``, ``unsubscribe``,
``resume``) itself, everything else through the node's :class:`hub.handlers.Handlers`
with ``(user, op)`` — and queues the reply on its :class:`hub.outbox.Outbox`. A write
the core allows also takes a token of the user's own buckets (``node.limits``, shared by
all their connections and nodes) before it runs; ``auth`` is admitted only under the
user's connection cap (else ``conflict`` and close 4004). Live events from the fan-out
pass through the core, which holds them while a replay runs and drops what a replay
covered. The awaits (the change log, the bus, the domain) all
live here; the rules live in the core and are unit-tested without sockets
(``tests/hub/test_session_core.py``).

The same hold-replay-release runs without a request when a shared bus may have dropped
messages (it reconnected) or a follow made anywhere added a route key whose subscription
may lag: the node calls :meth:`Session.hold` at the point after which every live event
is newer than some sequence, then :meth:`Session.catch_up` replays the log from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from hub.backends.base import BackendUnavailable, Bus, ChangeLog, FollowChange, Store
from hub.backends.limits import UserLimits
from hub.clock import now_ms
from hub.config import Settings
from hub.fanout import EventBatch, LocalFanout
from hub.handlers import Handlers
from hub.metrics import NodeMetrics
from hub.names import DevicesKey, FollowersKey, RouteKey, Stream, StreamKey
from hub.outbox import Flusher, Outbox, cut
from hub.records import Change, RelationChange
from hub.routing import interest_of
from hub.session_core import (
    REPLAY_SHARE,
    WRITE_OPS,
    Cut,
    Limits,
    SessionCore,
    State,
    Verdict,
    plan_replay,
)
from hub.shield import NO_SHIELD, Shield
from hub.social import SocialService
from hub.social.errors import DomainError
from hub.tokens import TokenError, Tokens
from hub.wire import profile_to_wire
from protocol import Codec, ErrorReply, PreparedEvent, Reply, Request, ops
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.limits import MAX_RESUME_EVENTS, MAX_SUBSCRIPTIONS

__all__ = ["Session", "SessionHost", "TooManyConnections"]

log = logging.getLogger(__name__)

SETTLE_TIMEOUT = 5.0
"""Seconds sign-in waits for a shared bus to subscribe the session's route keys."""

CATCH_UP_ATTEMPTS = 4
"""Tries of a catch-up replay while the store reports itself unavailable."""

CATCH_UP_BACKOFF = 0.5
"""Seconds before the second try of a catch-up; doubles for each further one."""

REPLAY_ATTEMPTS = 4
"""Reads of a sign-in replay while edits or deletions keep scrubbing the log during the
read; after the last one the client gets ``resync``."""


class TooManyConnections(ProtocolError):
    """``auth`` refused: the user holds the most connections allowed (``conflict``,
    then close 4004)."""

    def __init__(self, user: str, most: int) -> None:
        super().__init__(
            ErrorCode.CONFLICT,
            f"{user} already holds {most} connections, the most allowed:"
            " close one, or reconnect later",
        )


class SessionHost(Protocol):
    """What a session needs of its node (``hub.node.Node`` provides it; the session
    never imports the node)."""

    settings: Settings
    metrics: NodeMetrics
    flusher: Flusher
    handlers: Handlers
    tokens: Tokens
    service: SocialService
    store: Store
    changelog: ChangeLog
    bus: Bus
    fanout: LocalFanout
    limits: UserLimits
    draining: bool

    async def session_started(self, session: Session) -> bool:
        """A session authenticated; False when its user holds the most connections
        allowed already (it is not counted: the ``auth`` fails)."""

    async def session_ended(self, session: Session) -> None:
        """An authenticated session ended (or its ``auth`` was undone)."""

    def request_arrived(self) -> None:
        """A request came in (drain waits for a quiet moment)."""

    def request_started(self) -> None:
        """A request began (drain waits for it)."""

    def request_finished(self) -> None:
        """A request was answered."""


class Session:
    """The hub's side of one client connection."""

    __slots__ = (  # thousands of these live per node: no per-instance dict
        "_auth_deadline",
        "_closing",
        "_heard",
        "_replaying",
        "codec",
        "connection",
        "core",
        "node",
        "outbox",
        "shield",
    )

    def __init__(self, node: SessionHost, connection: ServerConnection, codec: Codec) -> None:
        settings = node.settings
        self.node = node
        self.connection = connection
        self.codec = codec
        self.core = SessionCore(
            Limits(
                request_rate=settings.request_rate,
                request_burst=settings.request_burst,
                write_rate=settings.write_rate,
                write_burst=settings.write_burst,
                flood_strikes=settings.flood_strikes,
                garbage_strikes=settings.garbage_strikes,
                outbox_limit=settings.outbox_limit,
                garbage_forgive=settings.garbage_forgive,
            )
        )
        self.outbox = Outbox(
            connection, codec, node.flusher, settings.outbox_limit, self._on_overflow
        )
        self._replaying = asyncio.Lock()
        self._closing: asyncio.Task[None] | None = None
        self._auth_deadline: asyncio.Timeout | None = None
        self.shield = NO_SHIELD
        self._heard: list[FollowChange | RelationChange] | None = None

    @property
    def user(self) -> str:
        """The signed-in user ("" before ``auth``)."""
        return self.core.user

    @property
    def keys(self) -> set[RouteKey]:
        """The route keys this session is filed under."""
        return self.core.keys

    # -- outgoing -----------------------------------------------------------------

    def send_event(self, seq: int | None, event: PreparedEvent) -> None:
        """Queue a live event, or hold it while a replay runs (see the core).

        The fan-out calls this once per recipient of every change: the common case
        (no hold, a new event) pushes without asking the core."""
        core = self.core
        if core.passing and (seq is None or seq > core.floor):
            self.outbox.push(event.bytes_for(self.codec))
            return
        data = core.receive_live(seq, event.bytes_for(self.codec))
        if data is not None:
            self.outbox.push(data)
        elif self.core.overflowed and not self.outbox.closed:
            self.outbox.overflow()

    def send_batch(self, batch: EventBatch) -> None:
        """Queue consecutive live events of one run (see ``LocalFanout.deliver_all``):
        one push for all of them in the common case, else one by one."""
        core = self.core
        if core.passing and batch.seqs[0] > core.floor:
            messages, size = batch.bytes_for(self.codec)
            self.outbox.push_all(messages, size)
            return
        for seq, event in zip(batch.seqs, batch.events, strict=True):
            self.send_event(seq, event)

    def send_now(self, event: PreparedEvent) -> None:
        """Queue an ephemeral event ahead of any hold (the node's draining notice)."""
        self.outbox.push(event.bytes_for(self.codec))

    def _push_all(self, messages: list[bytes]) -> None:
        for message in messages:
            self.outbox.push(message)

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
        """Serve frames until ``auth`` succeeds; ``auth_timeout`` bounds the wait for it
        (the time an ``auth`` request itself takes to run does not count)."""
        timeout = self.node.settings.auth_timeout
        try:
            async with asyncio.timeout(timeout) as self._auth_deadline:
                async for frame in self.connection:
                    await self._receive_frame(frame)
                    if self.core.state is State.LIVE or self._closing is not None:
                        break
        except TimeoutError:
            self.close(CloseCode.AUTH_TIMEOUT, f"no auth within {timeout:g} s")
        finally:
            self._auth_deadline = None
        return self.core.state is State.LIVE and self._closing is None

    @contextlib.contextmanager
    def _auth_clock_stopped(self) -> Iterator[None]:
        """Stop the auth timeout while ``auth`` runs; restart it if it failed."""
        deadline = self._auth_deadline
        when = None if deadline is None else deadline.when()
        loop = asyncio.get_running_loop()
        left = None if when is None else when - loop.time()
        if deadline is not None:
            deadline.reschedule(None)
        try:
            yield
        finally:
            if deadline is not None and left is not None and self.core.state is not State.LIVE:
                deadline.reschedule(loop.time() + left)  # the time left when auth came

    async def _receive_frame(self, frame: str | bytes) -> None:
        """Serve one frame: its requests in order. What cannot be read as a request
        (undecodable, not a map, no readable ``id``) is answered and counts one garbage
        strike per frame; a readable request with bad arguments or an unknown ``op``
        is a request like any other, answered with its error (SPEC section 8)."""
        self.core.frame_started()
        try:
            items: list[Request | ProtocolError] = list(self.codec.decode_requests(frame))
        except ProtocolError as exc:
            items = [exc]
        garbage = False
        for item in items:
            if isinstance(item, Request):
                await self._handle(item)
            elif item.request_id is not None:
                self._invalid(item.request_id, item)
            else:
                garbage = True
                self.send_error(None, item.code, item.message)
            if self._closing is not None:
                return
        if garbage and (cut_off := self.core.receive_garbage()) is not None:
            self.close(cut_off.code, cut_off.reason)

    def _arrived(self, request_id: int, op: str) -> bool:
        """Count a request and ask the core about it; False when it was refused (or the
        connection is being cut)."""
        self.node.metrics.messages_in.inc()
        self.node.request_arrived()
        return not self._refused(request_id, self.core.receive_request(op, self.node.draining))

    def _refused(self, request_id: int, verdict: Verdict) -> bool:
        """Carry out a verdict that is not :data:`SERVE`; whether it was one."""
        if isinstance(verdict, Cut):
            self.close(verdict.code, verdict.reason)
        elif verdict is not None:
            self.send_error(request_id, verdict.code, verdict.message, verdict.retry_after)
        return verdict is not None

    def _invalid(self, request_id: int, error: ProtocolError) -> None:
        """A readable request that is invalid: ruled on like any request (rates, the auth
        gate), then answered with its error; never a strike."""
        if self._arrived(request_id, error.op or ""):
            self.send_error(request_id, error.code, error.message)

    async def _handle(self, request: Request) -> None:
        name = request.op.NAME
        if not self._arrived(request.id, name):
            return
        self.node.request_started()
        try:
            if name in WRITE_OPS and await self._user_limited(request):
                return
            result = await self._dispatch(request.op)
        except DomainError as exc:
            self.send_error(request.id, exc.code, exc.message)
        except BackendUnavailable as exc:
            self.send_error(request.id, ErrorCode.UNAVAILABLE, f"{exc}; retry shortly")
        except TooManyConnections as exc:
            self.send_error(request.id, exc.code, exc.message)
            self.close(CloseCode.TOO_MANY_CONNECTIONS, "too many connections of this user")
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
            self._push_all(self.core.release_after_reply())

    async def _user_limited(self, request: Request) -> bool:
        """Take the write from the user's own buckets (shared by all their connections
        and nodes); True when refused (answered, or the connection cut)."""
        follow = isinstance(request.op, ops.Follow)
        throttled = await self.node.limits.take(self.user, follow)
        if throttled is None:
            return False
        return self._refused(request.id, self.core.limited(throttled.retry_after, throttled.why))

    async def _dispatch(self, op: ops.Operation) -> Mapping[str, Any]:
        """Run one request: session operations here, the rest by the node's handlers."""
        match op:
            case ops.Auth(token=token, cursor=cursor, streams=streams):
                with self._auth_clock_stopped():
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
        return await self.node.handlers.dispatch(self.user, op, self.shield)

    # -- authentication, routing and resume ----------------------------------------

    async def sign_in(
        self, token: str, cursor: str | None = None, streams: Iterable[str] = ()
    ) -> Mapping[str, Any]:
        """Verify ``token``, file this session in the fan-out, return the auth result.

        With ``cursor``, the events missed after it are replayed before the reply, and
        live events are held until the reply is queued: a reconnect has no gap, no
        repeat and no reordering.
        """
        try:
            user = self.node.tokens.verify(token)
        except TokenError as exc:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, str(exc)) from exc
        profile = profile_to_wire(await self.node.service.sign_in(user))
        self.core.signed_in(user)
        self.core.hold_until_replied()
        self.add_keys([DevicesKey(user)])
        try:
            if not await self.node.session_started(self):
                raise TooManyConnections(user, self.node.limits.quotas.connections)
            async with self._replaying:  # a catch-up (a follow, a bus gap) waits for this
                return await self._signed_in(user, profile, cursor, streams)
        except BaseException:
            await self._undo_sign_in()
            raise

    async def _signed_in(
        self, user: str, profile: Mapping[str, Any], cursor: str | None, streams: Iterable[str]
    ) -> dict[str, Any]:
        """The rest of ``auth`` once filed under the user's own key.

        The followees are read only once that key's subscription is in effect: a follow
        committed meanwhile is then either in the read or arrives as a ``FollowChange``
        (which files this session, since it is the node's already). Then the other keys
        are filed, the bus settles, and the log is replayed up to the head.
        """
        await self._settled()
        self._heard = []
        try:
            followees = set(await self.node.store.followee_ids(user))
            relations = await self.node.store.relations(user, now_ms())
        finally:
            heard, self._heard = self._heard, None
        shield = Shield(user, relations)
        for change in heard:  # the reads may predate them: they come after the reads
            if isinstance(change, FollowChange):
                (followees.add if change.following else followees.discard)(change.followee)
            else:
                shield.apply(change)
        if shield.hidden or self.shield is not NO_SHIELD:
            self._reshield(shield)
        self.add_keys([FollowersKey(user), *map(FollowersKey, followees)])
        for stream in streams:
            self.subscribe(stream)
        await self._settled()
        result: dict[str, Any] = {"user": profile}
        if cursor is None:
            head = await self.node.changelog.head()
        else:
            replayed, head = await self._replay_to_head(cursor)
            result.update(replayed)
        self.core.replied_up_to(head)
        result["cursor"] = str(head)
        return result

    async def _settled(self) -> None:
        """Wait for the bus to subscribe what this session watches (``unavailable`` after
        :data:`SETTLE_TIMEOUT`)."""
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT):
                await self.node.bus.settled()
        except TimeoutError:
            raise BackendUnavailable("the bus has not subscribed yet") from None

    async def _undo_sign_in(self) -> None:
        """A failed ``auth`` leaves nothing behind: the session is unfiled, its held
        events and replay dropped, and it is unauthenticated again (it may retry)."""
        try:
            await self.node.session_ended(self)
        finally:
            self._reshield(NO_SHIELD)
            self.core.signed_out()

    def add_keys(self, keys: list[RouteKey]) -> None:
        """File this session under more route keys."""
        self.node.fanout.add(self, self.core.route_keys_added(keys))

    def remove_keys(self, keys: list[RouteKey]) -> None:
        """Take this session out from under route keys."""
        self.node.fanout.remove(self, self.core.route_keys_removed(keys))

    @property
    def subscriptions(self) -> set[str]:
        """The extra live streams of this session, derived from its route keys."""
        return {str(key.stream) for key in self.keys if isinstance(key, StreamKey)}

    def subscribe(self, stream: str) -> None:
        """Add a live stream (``public``, ``tag:x``, ``thread:n``) to this session."""
        self.add_keys([StreamKey(Stream.parse(stream))])

    def unsubscribe(self, stream: str) -> None:
        """Stop a live stream."""
        self.remove_keys([StreamKey(Stream.parse(stream))])

    async def resume(self, cursor: str) -> Mapping[str, Any]:
        """Replay what this session missed after ``cursor``, then continue live.

        Live events arriving meanwhile are held and released after the reply, minus
        those the replay already covered. Events delivered live between ``auth`` and
        this request may come again (``auth`` with a cursor avoids that).
        """
        self.core.hold_until_replied()
        async with self._replaying:
            result, last = await self._replay(cursor)
        self.core.replied_up_to(last)
        return result

    def heard(self, change: FollowChange | RelationChange) -> None:
        """Note a follow or relation update of this session's user (the node applies
        it). While sign-in reads the user's followees and relations, the updates that
        arrive are kept and applied again on top of the reads: on a shared bus a read's
        answer and an update's message travel on different connections, so a read may
        miss an update that arrived before it was answered."""
        if self._heard is not None:
            self._heard.append(change)

    def relation_changed(self, change: RelationChange) -> None:
        """Take in a block or mute that concerns this session's user (made on any node)."""
        self.heard(change)
        shield = Shield(self.user) if self.shield is NO_SHIELD else self.shield
        shield.apply(change)
        self._reshield(shield)

    def _reshield(self, shield: Shield) -> None:
        """Replace this session's shield (and the fan-out's index of it)."""
        self.shield = shield
        self.node.fanout.reshield(self, shield.hidden)

    def hold(self) -> None:
        """Hold live events until the matching :meth:`catch_up` has replayed."""
        self.core.hold()

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
            self._push_all(self.core.release(floor))

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
            return (await self._replay(str(max(after, self.core.floor))))[1]

    async def _replay_to_head(self, cursor: str) -> tuple[dict[str, Any], int]:
        """Push the events missed after ``cursor`` up to the log's head; return the
        result map and that head (or push ``resync`` if that is impossible).

        A post created before the head and edited or deleted since is gone from the log
        below the head and restated only above it, so a scrub during the read spoils it:
        it is read again up to the new head (live events stay held meanwhile, and those
        the longer replay covers are dropped on release), at most
        :data:`REPLAY_ATTEMPTS` times, then the client gets ``resync``.
        """
        for _ in range(REPLAY_ATTEMPTS):
            scrubs = await self.node.changelog.scrub_mark()
            head = await self.node.changelog.head()
            changes = await self._missed_since(cursor, head)
            if await self.node.changelog.scrub_mark() == scrubs:
                break
            self.node.metrics.replay_rereads.inc()
        else:
            changes = None
        return self._push_replay(cursor, changes, head, upto=head)[0], head

    async def _missed_since(self, cursor: str, head: int) -> Sequence[Change] | None:
        """The changes of this session's interest after ``cursor`` (None when the log
        cannot answer: a cursor outside the resume window or too many changes)."""
        after = int(cursor) if cursor.isdigit() else -1
        if not 0 <= after <= head:
            return None
        interest = interest_of(self.user, self.keys)
        return await self.node.changelog.read_since(after, interest, MAX_RESUME_EVENTS)

    async def _replay(self, cursor: str) -> tuple[dict[str, Any], int]:
        """Push the events missed after ``cursor``; return the result map and the last
        change covered, or push ``resync`` if that is impossible."""
        head = await self.node.changelog.head()
        return self._push_replay(cursor, await self._missed_since(cursor, head), head)

    def _push_replay(
        self, cursor: str, changes: Sequence[Change] | None, head: int, upto: int | None = None
    ) -> tuple[dict[str, Any], int]:
        """Push the replay of ``changes`` (read after ``cursor``, None for ``resync``) up
        to change ``upto``; return the result map and the last change covered."""
        replay = plan_replay(
            changes,
            after=int(cursor) if cursor.isdigit() else -1,
            head=head,
            upto=upto,
            keys=self.keys,
            encode=self.codec.encode_event,
            budget=self.outbox.limit // REPLAY_SHARE,
            shield=self.shield,
        )
        self._push_all(replay.messages)
        return replay.result, replay.last
