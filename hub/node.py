"""One hub node: the WebSocket server, its sessions, and the seams it runs on.

The path of a post through the node (docs/architecture.md section 2):

1. :class:`hub.session.Session` decodes and validates the request;
2. :class:`hub.handlers.Handlers` calls the domain (:class:`hub.social.SocialService`),
   whose store commits the record with its changes and their cursors, and publishes
   the changes once, as one unit (one SQLite transaction, one Redis script);
3. the session queues the acknowledgement (the embedded bus delivers one loop turn
   after the commit, so the reply goes first);
4. :meth:`Node._on_bus` (every node's bus listener) hands it to :class:`hub.fanout.LocalFanout`;
5. the fan-out encodes each event once per codec and queues the same bytes on each
   recipient's :class:`hub.outbox.Outbox`;
6. :class:`hub.outbox.Flusher` writes each outbox once per flush (a loop tick, or up to
   10 ms later under load), sharing framed bytes between outboxes with the same messages.

With ``--redis`` the seams are shared (``hub.backends.redis_*``): the fan-out watches on
the bus only the route keys of this node's sessions. On both backends a follow arrives
as a :class:`~hub.backends.base.FollowChange` (one follow path), and on a shared bus a
reconnect as a :class:`~hub.backends.base.BusGap`; both make the affected sessions hold
live events and catch up from the change log (:meth:`Node._catch_up`). The node is ready only while
the shared backend is reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable, Sequence
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import NegotiationError
from websockets.typing import Subprotocol

from hub.backends.base import BackendUnavailable, BusGap, BusMessage, FollowChange
from hub.backends.bundle import Backends, open_embedded, open_redis, open_redis_cluster
from hub.backends.limits import UserQuotas
from hub.backends.memory import MemoryBus
from hub.background import Background, stop_task
from hub.clock import now_ms
from hub.config import Settings
from hub.counters import CountCoalescer
from hub.fanout import LocalFanout
from hub.handlers import Handlers
from hub.http import SERVER_HEADER, HttpRoutes, MetricsRoutes
from hub.keepalive import KEEPALIVE_CLOSE, Keepalive, answers
from hub.metrics import NodeMetrics
from hub.names import FollowersKey, RouteKey
from hub.outbox import Flusher, cut
from hub.presence import PresenceAnnouncer
from hub.records import Change, PresenceChange, RelationChange, RelationKind
from hub.routing import Route, route_keys, routes_for
from hub.session import Session
from hub.social import SocialService
from hub.tls import redis_url_with_tls, server_context
from hub.tokens import TokenRules, Tokens, resolve_secret
from protocol import (
    CODECS,
    Event,
    EventType,
    PreparedEvent,
    codec_for_subprotocol,
    select_subprotocol,
)
from protocol.errors import CloseCode

__all__ = ["Node"]

log = logging.getLogger(__name__)

CATCH_UP_SETTLE = 10.0
"""Seconds a catch-up waits for the bus to subscribe before it replays anyway."""


PENDING_COUNTS_BATCH = 1000
"""Pending like counters logged per start or prune round."""

STALE_COUNTS = 10
"""A like counter still pending after this many coalescing windows was left by a node
that died: any node logs it (at start, every pending one)."""

DRAIN_QUIET = 0.5
"""Seconds without any request a drain waits for before the 4000 close (see
:meth:`Node._quiet`)."""

LISTEN_BACKLOG = 4096
"""Pending TCP connections the kernel queues for the node (capped by net.core.somaxconn).

asyncio's default of 100 overflows in a reconnect storm: the kernel drops SYNs and each
dropped client waits out a one-second (then three-second) retransmit."""


def user_quotas(settings: Settings) -> UserQuotas:
    """The per-user limits of ``settings`` (a user's writes: those of one connection
    unless set apart)."""
    rate, burst = settings.user_write_rate, settings.user_write_burst
    return UserQuotas(
        write_rate=settings.write_rate if rate is None else rate,
        write_burst=settings.write_burst if burst is None else burst,
        follows_per_hour=settings.follows_per_hour,
        connections=settings.connections_per_user,
    )


def _first_offered(_: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol:
    """The subprotocol the client prefers among those the hub supports (SPEC section 2);
    none of them refuses the handshake with HTTP 400."""
    chosen = select_subprotocol(offered)
    if chosen is None:
        raise NegotiationError(f"offer one of {', '.join(CODECS)}")
    return Subprotocol(chosen)


class Node:
    """A running hub node; create with :meth:`start`, stop with :meth:`drain`."""

    def __init__(self, settings: Settings, backends: Backends, secret: str) -> None:
        self.settings = settings
        self.store = backends.store
        self.changelog = backends.changelog
        self.bus = backends.bus
        self.limits = backends.limits
        self._backends = backends
        rules = TokenRules(settings.max_token_ttl, settings.token_audience, settings.token_issuer)
        self.tokens = Tokens(secret, rules)
        """Issues and verifies this hub's tokens."""
        self.metrics = NodeMetrics()
        self.service = SocialService(self.store, now_ms, max_mentions=settings.max_mentions)
        self.fanout = LocalFanout(self.bus.watch, self.bus.unwatch)
        self._coalesce = isinstance(self.bus, MemoryBus)
        """Changes wait for the end of the loop tick and go out in runs. Only on the
        embedded bus, which hands them over in sequence order within this process; a
        shared bus's listener delivers what it hears as it hears it."""
        self._pending: list[tuple[Change, list[Route]]] = []
        self.flusher = Flusher(asyncio.get_running_loop(), self.metrics.frames_out.inc)
        self.presence = PresenceAnnouncer(
            backends.presence, self.bus.publish, settings.presence_grace
        )
        self.coalescer = CountCoalescer(settings.counts_window, self._publish_counts)
        self.handlers = Handlers(
            self.service,
            self.coalescer.touch,
            self.presence.online,
            follow_not_new=self.limits.give_back_follow,
        )
        self._ready = False
        self.draining = False
        """Whether the node is shutting down (:meth:`drain`): new requests are refused."""
        self._in_flight = 0
        self._last_request = 0.0
        self._idle = asyncio.Event()
        self._idle.set()
        self._catching_up = Background()
        self.keepalive = Keepalive(self.open_connections, settings.ping_interval, self._silent)
        self._sessions: dict[str, set[Session]] = {}
        self._server: Server | None = None
        self._metrics_server: Server | None = None
        self._pruner: asyncio.Task[None] | None = None
        self.bus.subscribe(self._on_bus)

    @classmethod
    async def start(cls, settings: Settings) -> Node:
        """Open the configured backend (Redis with ``redis_url``, else embedded), listen,
        and return the running node. A secret that must not be used
        (:class:`hub.tokens.SecretError`, a ``ValueError``) or a TLS file that cannot work
        (:class:`hub.tls.TlsError`, one too) stops it before anything opens."""
        secret = resolve_secret(settings.secret, settings.data_dir)
        tls = server_context(settings.tls_cert, settings.tls_key)
        if settings.redis_url:
            url = redis_url_with_tls(
                settings.redis_url, settings.redis_ca, settings.redis_cert, settings.redis_key
            )
            shared: dict[str, Any] = {
                "route_keys": route_keys,
                "retention_seconds": settings.retention_seconds,
                "retention_per_log": settings.retention_per_log,
                "retention_max_seconds": settings.retention_max_seconds,
                "fanout_limit": settings.fanout_limit,
                "presence_ttl": settings.presence_ttl,
                "quotas": user_quotas(settings),
            }
            if settings.redis_cluster:
                backends = await open_redis_cluster(url, partitions=settings.partitions, **shared)
            else:
                backends = await open_redis(url, **shared)
        else:
            backends = await open_embedded(
                settings.data_dir,
                synchronous=settings.sync,
                retention_seconds=settings.retention_seconds,
                retention_per_log=settings.retention_per_log,
                retention_max_seconds=settings.retention_max_seconds,
                quotas=user_quotas(settings),
            )
        node = cls(settings, backends, secret)
        await node._listen(tls)
        await node.service.log_pending_counts(now_ms(), PENDING_COUNTS_BATCH)
        return node

    async def _listen(self, tls: ssl.SSLContext | None) -> None:
        routes = HttpRoutes(self)
        self._server = await serve(
            self._connection,
            self.settings.host,
            self.settings.port,
            subprotocols=list(CODECS),  # type: ignore[arg-type]
            select_subprotocol=_first_offered,
            process_request=routes.process_request,
            compression=None,
            max_size=self.settings.max_frame,
            max_queue=4,
            close_timeout=2,
            ping_interval=None,  # one node-wide Keepalive instead of a task per connection
            backlog=LISTEN_BACKLOG,
            server_header=SERVER_HEADER,
            ssl=tls,
        )
        if self.settings.metrics_address is not None:
            host, port = self.settings.metrics_address
            self._metrics_server = await serve(
                _never_upgraded,
                host,
                port,
                process_request=MetricsRoutes(self).process_request,
                server_header=SERVER_HEADER,
                ssl=tls,
            )
        self.keepalive.start()
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())
        self._ready = True

    @property
    def ready(self) -> bool:
        """Whether the node takes connections: listening and its backend reachable."""
        return self._ready and self._backends.healthy()

    @ready.setter
    def ready(self, value: bool) -> None:
        self._ready = value

    @property
    def port(self) -> int:
        """The TCP port the node listens on."""
        assert self._server is not None
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1])

    @property
    def metrics_port(self) -> int | None:
        """The TCP port of the ``--metrics-address`` listener, if there is one."""
        if self._metrics_server is None:
            return None
        return int(self._metrics_server.sockets[0].getsockname()[1])

    # -- sessions -----------------------------------------------------------------

    def open_connections(self) -> Iterable[ServerConnection]:
        """The WebSocket connections open right now, authenticated or not."""
        return self._server.connections if self._server is not None else ()

    def _silent(self, connection: ServerConnection) -> None:
        """A connection did not answer a keepalive ping in time: cut it at once (a
        best-effort 1011 close frame, then the socket is aborted). Its buffers may be
        full, so no close handshake: that would wait for a drain that never comes."""
        self.metrics.closes.labels(str(KEEPALIVE_CLOSE)).inc()
        cut(connection, KEEPALIVE_CLOSE, "keepalive ping timeout")

    async def _connection(self, connection: ServerConnection) -> None:
        codec = codec_for_subprotocol(str(connection.subprotocol))
        _forget_handshake_headers(connection)
        await Session(self, connection, codec).run()

    async def session_started(self, session: Session) -> bool:
        """A session authenticated: admit it under the user's connection cap (False
        when the user holds the most connections allowed), count it and announce its
        user online if new."""
        if not await self.limits.connect(session.user):
            return False
        self._sessions.setdefault(session.user, set()).add(session)
        self.metrics.connections.inc()
        await self.presence.connected(session.user)
        return True

    async def session_ended(self, session: Session) -> None:
        """An authenticated session ended (or its ``auth`` was undone): unfile it and,
        if it was admitted, count it out and start the offline grace period."""
        self.fanout.remove(session, session.keys)
        self.fanout.reshield(session, ())
        sessions = self._sessions.get(session.user, set())
        if session not in sessions:
            return
        sessions.discard(session)
        if not sessions:
            self._sessions.pop(session.user, None)
        self.metrics.connections.dec()
        await self.limits.disconnect(session.user)
        await self.presence.disconnected(session.user)

    def request_arrived(self) -> None:
        """A session received a request (served or refused): drain waits for quiet."""
        self._last_request = asyncio.get_running_loop().time()

    def request_started(self) -> None:
        """A session began handling a request (drain waits for it to finish)."""
        self._in_flight += 1
        self._idle.clear()

    def request_finished(self) -> None:
        """A request was answered."""
        self._in_flight -= 1
        if not self._in_flight:
            self._idle.set()

    def local_sessions(self, user: str) -> list[Session]:
        """This node's sessions of ``user``."""
        return list(self._sessions.get(user, ()))

    def all_sessions(self) -> Iterable[Session]:
        """Every authenticated session on this node."""
        for sessions in list(self._sessions.values()):
            yield from list(sessions)

    # -- the live path ------------------------------------------------------------

    def _on_bus(self, message: BusMessage) -> None:
        if self._coalesce and isinstance(message, Change):
            if not self._pending:
                asyncio.get_running_loop().call_soon(self.deliver_changes)
            self._pending.append((message, routes_for(message)))
            return
        self.deliver_changes()  # whatever else comes keeps its place after them
        if isinstance(message, FollowChange):
            self._refollow(message)
            return
        if isinstance(message, RelationChange):
            self._relate(message)
            return
        if isinstance(message, BusGap):
            self._catch_up(list(self.all_sessions()), message.after)
            return
        if isinstance(message, PresenceChange):
            delivered = self.fanout.deliver_presence(message)
        else:
            delivered = self.fanout.deliver(message)
        self.metrics.deliveries.inc(delivered)
        self.metrics.messages_out.inc(delivered)

    def deliver_changes(self) -> None:
        """Fan out the changes committed since the last call (a loop tick's worth), runs
        of one author's changes as one batch per recipient (``LocalFanout.deliver_all``)."""
        pending, self._pending = self._pending, []
        if pending:
            delivered = self.fanout.deliver_all(pending)
            self.metrics.deliveries.inc(delivered)
            self.metrics.messages_out.inc(delivered)

    def _refollow(self, change: FollowChange) -> None:
        """A follow or unfollow (made on any node): file (or unfile) this node's sessions
        of the follower under the followee's key; after a follow they catch up on what
        the new key's subscription missed."""
        sessions = self.local_sessions(change.follower)
        key: list[RouteKey] = [FollowersKey(change.followee)]
        for session in sessions:
            session.heard(change)
            if change.following:
                session.add_keys(key)
            else:
                session.remove_keys(key)
        if change.following:
            self._catch_up(sessions, change.after)

    def _relate(self, change: RelationChange) -> None:
        """A block or mute made or lifted (on any node): update the shields of this
        node's sessions of both users, and tell the actor's devices (a ``relation``
        event); the other user hears nothing."""
        if change.to in {None, change.target}:
            for session in self.local_sessions(change.target):
                session.relation_changed(change)
        if change.to not in {None, change.actor}:
            return
        if change.kind is RelationKind.BLOCK:
            data = {"user": change.target, "blocked": change.on}
        else:
            data = {"user": change.target, "muted": change.on, "until": change.until}
        event = PreparedEvent(Event(EventType.RELATION, None, data))
        for session in self.local_sessions(change.actor):
            session.relation_changed(change)
            session.send_event(None, event)

    def _catch_up(self, sessions: list[Session], after: int) -> None:
        """Hold ``sessions``' live events now; replay the log after ``after`` once the
        bus has subscribed everything, then release (see :meth:`Session.catch_up`)."""
        if not sessions:
            return
        for session in sessions:
            session.hold()
        self._catching_up.spawn(self._replay_sessions(sessions, after))

    async def _replay_sessions(self, sessions: list[Session], after: int) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CATCH_UP_SETTLE):
                await self.bus.settled()
        for session in sessions:
            await session.catch_up(after)

    async def _publish_counts(self, post_id: int) -> None:
        await self.service.counts_change(post_id)

    async def _prune_notifications(self) -> None:
        """Apply ``--notification-days`` and ``--notifications-per-user``."""
        settings = self.settings
        max_age_ms = settings.notification_days * 86_400_000
        removed = await self.service.prune_notifications(
            max_age_ms, settings.notifications_per_user
        )
        log.debug("pruned %d notifications", removed)

    async def _prune_forever(self) -> None:
        """Every ``prune_interval``: prune the change log, the notifications and the mutes
        that ran out, and log the like counters a node left pending (it died inside its
        coalescing window). A backend outage logs one WARNING, not one traceback per
        attempt."""
        failing = False
        while True:
            await asyncio.sleep(self.settings.prune_interval)
            try:
                pruned = await self.changelog.prune(now_ms())
                stale = now_ms() - round(self.settings.counts_window * 1000 * STALE_COUNTS)
                await self.service.log_pending_counts(stale, PENDING_COUNTS_BATCH)
                await self._prune_notifications()
                await self.service.prune_mutes()
            except BackendUnavailable as exc:
                if not failing:
                    log.warning("pruning the change log postponed: %s", exc)
                failing = True
            except Exception:
                log.exception("pruning the change log failed")
            else:
                if failing:
                    log.info("pruning the change log works again")
                failing = False
                log.debug("pruned %d changes", pruned)

    # -- shutdown -----------------------------------------------------------------

    async def drain(self) -> None:
        """Stop accepting, answer every request clients sent, tell them to reconnect
        elsewhere, close, and close the store.

        1. ``/readyz`` answers 503 and WebSocket upgrades are refused, while the port
           stays open; every session gets a ``notice`` (kind ``draining``) at once, and
           from now on requests are answered ``unavailable`` (retry on another node);
        2. requests already running finish and are answered;
        3. every connection is pinged and its pong awaited (what a client sent before
           its library read the notice arrives before its pong), then the node waits for
           :data:`DRAIN_QUIET` seconds without any request (an application may read the
           notice a little after its library answered the ping): everything sent
           before the notice was read has been answered (a client sends nothing after
           it, SPEC section 5);
        4. close code 4000 (draining): clients reconnect, to another node if there is
           one, and resume. Each of the waits in steps 2 and 3 (for running requests,
           for pongs, for the requests before them) is bounded by ``drain_timeout``.
        """
        self._ready = False
        self.draining = True
        await self.keepalive.close()
        notice = PreparedEvent(
            Event(
                EventType.NOTICE,
                None,
                {"kind": "draining", "message": "node shutting down; reconnect and resume"},
            )
        )
        self.deliver_changes()
        for session in self.all_sessions():
            session.send_now(notice)
        self.flusher.flush()
        await self._answer_everything_sent()
        await self.coalescer.close()
        for _ in self.all_sessions():
            self.metrics.closes.labels(str(CloseCode.DRAINING.value)).inc()
        self.flusher.flush()
        if self._server is not None:
            self._server.close(code=CloseCode.DRAINING, reason="draining: reconnect and resume")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.drain_timeout):
                    await self._server.wait_closed()
        if self._metrics_server is not None:
            self._metrics_server.close()
            await self._metrics_server.wait_closed()
        await stop_task(self._pruner)
        await self.presence.drain()
        await self._backends.close()

    async def _answer_everything_sent(self) -> None:
        """Wait until the requests running now are answered, then until every client's
        pong shows that what it sent before the notice has arrived and been answered."""
        timeout = self.settings.drain_timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        pongs = [asyncio.ensure_future(answers(c)) for c in self.open_connections()]
        if pongs:
            _, late = await asyncio.wait(pongs, timeout=timeout)
            for pong in late:
                pong.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._quiet()

    async def _quiet(self) -> None:
        """Return once no request is running and none arrived for :data:`DRAIN_QUIET`
        seconds. A client library answers a ping as soon as it parses it, possibly
        before its application has read the notice queued ahead of it; such a client
        may still send a request or two, which are answered ``unavailable`` meanwhile."""
        loop = asyncio.get_running_loop()
        while True:
            await self._idle.wait()
            calm = loop.time() - self._last_request
            if calm >= DRAIN_QUIET or not any(True for _ in self.open_connections()):
                return
            await asyncio.sleep(DRAIN_QUIET - calm)


async def _never_upgraded(connection: ServerConnection) -> None:
    """The metrics listener's connection handler: never runs, since
    :class:`hub.http.MetricsRoutes` answers every request with plain HTTP."""


def _forget_handshake_headers(connection: ServerConnection) -> None:
    """Drop the opening handshake's header fields, which websockets keeps for the whole
    life of the connection (about 2.5 KiB per idle connection, more from browsers):
    nothing reads them once the connection is open."""
    for message in (connection.request, connection.response):
        if message is not None:
            message.headers.clear()
