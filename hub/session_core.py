"""The sans-I/O core of a session: auth gate, strikes, and hold / replay / release.

Theory of operation (in the spirit of the protocol cores of ``websockets`` and h11): a
:class:`SessionCore` holds the state of one connection and does no I/O and no waiting.
The glue (:class:`hub.session.Session`) feeds it what happened and does what it says:

- **requests.** :meth:`SessionCore.frame_started` opens each frame; then
  :meth:`SessionCore.receive_request` rules on each request the frame holds before it
  runs: :data:`SERVE`, a :class:`Refusal` (an error reply) or a :class:`Cut` (close
  with a code). It enforces the connection's rate buckets, the auth gate (until
  :meth:`signed_in`, only ``auth``; everything else, ``ping`` and unknown operations
  included, is ``unauthorized``) and the drain. A request whose arguments are invalid
  is a request too: it is ruled on the same way and, when served, answered with its
  validation error; it never counts a strike.
- **flood strikes.** A frame with a request refused ``rate_limited`` (by a connection
  bucket, or by a limit outside the core, :meth:`limited`) counts one flood strike, at
  most one per frame; one strike is forgiven every :data:`FLOOD_FORGIVE` seconds, and
  a frame refused with ``flood_strikes`` strikes unforgiven is cut with 4502. So one
  frame, however big, never closes the connection, a client that waits ``retry_after``
  is never closed, and one that keeps sending refused frames is, whatever it sends in
  between: flooding is *continuing* after ``rate_limited``.
- **garbage strikes.** Only a frame that cannot be read as requests (undecodable, not a
  map or an array of maps, a message without a readable ``id``) goes to
  :meth:`receive_garbage`, at most once per frame; ``garbage_strikes`` unforgiven
  strikes close with 4501, and one strike is forgiven every ``garbage_forgive`` seconds.
- **sign-in.** ``UNAUTHENTICATED`` → :meth:`signed_in` → ``LIVE``; a failed ``auth`` is
  undone by :meth:`signed_out` (back to ``UNAUTHENTICATED``, nothing held), so the
  client may retry.
- **hold, replay, release.** While any holder is active (:meth:`hold`), live events are
  kept instead of sent; :meth:`release` ends one hold with the sequence up to which a
  replay covered the log (the *floor*) and returns the held events above it, in order.
  Live events at or below the floor are dropped at once (:meth:`receive_live`): a replay
  never repeats what was delivered, and nothing arrives out of order. Held bytes count
  against the outbox limit: past it the held events are dropped and :attr:`overflowed`
  is set (the glue cuts the connection, 4001). A request that replays (``auth`` with a
  cursor, ``resume``) holds until its reply is queued (:meth:`hold_until_replied`,
  :meth:`release_after_reply`).
- **replay planning.** :func:`plan_replay` turns the changes read from the log into the
  events this session should get (through the same routing rule as the live path), or a
  ``resync`` when the log cannot answer or the replay would not fit in the outbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hub.names import RouteKey
from hub.ratelimit import Strikes, TokenBucket
from hub.records import Change, ChangeKind
from hub.routing import replay_routes
from hub.shield import NO_SHIELD, Shield, shielded
from protocol import Event, EventType
from protocol.errors import CloseCode, ErrorCode

__all__ = [
    "REPLAY_SHARE",
    "SERVE",
    "WRITE_OPS",
    "Cut",
    "Limits",
    "Refusal",
    "Replay",
    "SessionCore",
    "State",
    "Verdict",
    "plan_replay",
]

WRITE_OPS = frozenset(
    {
        "post",
        "edit",
        "delete",
        "like",
        "unlike",
        "follow",
        "unfollow",
        "profile.update",
        "block",
        "unblock",
        "mute",
        "unmute",
    }
)
"""Operations that count against the stricter per-connection write rate."""

OPEN_OPS = frozenset({"auth"})
"""Operations served before ``auth`` succeeded (SPEC section 2)."""

FLOOD_FORGIVE = 1.0
"""Seconds after which one flood strike is forgiven."""

REPLAY_SHARE = 2
"""A replay may fill at most 1/REPLAY_SHARE of the outbox limit; a bigger one is answered
with ``resync`` (the client reloads), so that a replay always ends, never in an endless
cut-reconnect-replay loop, and live events keep room beside it."""


class State(Enum):
    """Where a session is in its life."""

    UNAUTHENTICATED = "unauthenticated"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-connection bounds a core enforces (from the node's settings).

    ``flood_strikes``: frames refused ``rate_limited`` (not forgiven yet, one forgiven
    per :data:`FLOOD_FORGIVE` s) after which the next one closes with 4502;
    ``garbage_strikes``: unforgiven undecodable frames that close with 4501, one
    forgiven per ``garbage_forgive`` seconds."""

    request_rate: float
    request_burst: float
    write_rate: float
    write_burst: float
    flood_strikes: int
    garbage_strikes: int
    outbox_limit: int
    garbage_forgive: float = 30.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Answer the request with this error instead of running it."""

    code: ErrorCode
    message: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Cut:
    """Close the connection with ``code`` (after what is queued)."""

    code: CloseCode
    reason: str


SERVE = None
"""The verdict on a request that may run."""

Verdict = Refusal | Cut | None
"""What :meth:`SessionCore.receive_request` rules: :data:`SERVE`, a refusal or a cut."""


@dataclass(frozen=True, slots=True)
class Replay:
    """What a replay pushes and answers: ``messages`` (encoded events, or one ``resync``
    event), the result map of the reply, and ``last``, the sequence it covered."""

    messages: list[bytes]
    result: dict[str, Any]
    last: int


def plan_replay(
    changes: Sequence[Change] | None,
    *,
    after: int,
    head: int,
    upto: int | None,
    keys: set[RouteKey],
    encode: Callable[[Event], bytes],
    budget: int,
    shield: Shield = NO_SHIELD,
) -> Replay:
    """The events ``keys`` should get from ``changes`` (the log after ``after``, up to
    change ``upto``), or a ``resync`` when ``changes`` is None (the log cannot answer)
    or the events take more than ``budget`` bytes. Edits and deletions restate their
    post (``hub.routing.replay_routes``). As live, a post change by an author the
    session's ``shield`` hides (a block or a mute) yields nothing, and a notification
    names no hidden actor (``hub.shield.shielded``)."""
    messages: list[bytes] = []
    size, last = 0, after
    for change in changes or ():
        if upto is not None and change.seq > upto:
            break
        if change.kind == ChangeKind.NOTIFICATION or not shield.hides(change.author):
            for route_keys, event in replay_routes(change, after, keys):
                if not keys.isdisjoint(route_keys) and (seen := shielded(event, shield)):
                    messages.append(encode(seen))
                    size += len(messages[-1])
        last = change.seq
    if changes is None or size > budget:
        why = "cursor outside the resume window" if changes is None else "too much to replay"
        resync = encode(Event(EventType.RESYNC, None, {"reason": why}))
        return Replay([resync], {"replayed": 0, "cursor": str(head), "resync": True}, head)
    return Replay(messages, {"replayed": len(messages), "cursor": str(last)}, last)


class SessionCore:
    """The state of one connection (see the module docstring)."""

    __slots__ = (
        "_flood",
        "_frame_limited",
        "_garbage",
        "_held",
        "_held_bytes",
        "_holders",
        "_limits",
        "_reply_floor",
        "_requests",
        "_writes",
        "floor",
        "keys",
        "overflowed",
        "passing",
        "state",
        "user",
    )

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._requests = TokenBucket(limits.request_rate, limits.request_burst, clock)
        self._writes = TokenBucket(limits.write_rate, limits.write_burst, clock)
        self._flood = Strikes(limits.flood_strikes + 1, FLOOD_FORGIVE, clock)
        self._frame_limited = False
        self._garbage = Strikes(limits.garbage_strikes, limits.garbage_forgive, clock)
        self._held: list[tuple[int | None, bytes]] | None = None
        self._held_bytes = 0
        self._holders = 0
        self._reply_floor: int | None = None
        self.state = State.UNAUTHENTICATED
        self.user = ""
        self.keys: set[RouteKey] = set()
        self.floor = 0
        """The sequence up to which this session is complete (live events at or below
        it are dropped)."""
        self.overflowed = False
        """Whether held events passed the outbox limit (the glue cuts with 4001)."""
        self.passing = True
        """No hold is active: a live event above :attr:`floor` is pushed as it is (the
        glue's fast path tests this instead of calling :meth:`receive_live`)."""

    # -- requests ------------------------------------------------------------------

    def frame_started(self) -> None:
        """A new frame arrived (it may count one flood strike, see :meth:`limited`)."""
        self._frame_limited = False

    def receive_request(self, op: str, draining: bool = False) -> Verdict:
        """Rule on a request named ``op`` (``""`` when its name is unreadable) before it
        runs, or before its validation error is sent."""
        retry_after = self._requests.wait()
        if retry_after is None and op in WRITE_OPS:
            retry_after = self._writes.take()
        if retry_after is not None:
            return self.limited(retry_after, "too many requests on this connection")
        self._requests.take()
        if self.state is State.UNAUTHENTICATED and op not in OPEN_OPS:
            return Refusal(ErrorCode.UNAUTHORIZED, "send auth with a token first")
        if self.state is State.LIVE and op == "auth":
            return Refusal(ErrorCode.CONFLICT, "already authenticated")
        if draining:
            return Refusal(
                ErrorCode.UNAVAILABLE, "node draining: reconnect (to any node) and retry"
            )
        return SERVE

    def limited(self, retry_after: float, why: str) -> Refusal | Cut:
        """Refuse a request ``rate_limited`` (``why``: which limit); its frame counts a
        flood strike, once (see the module)."""
        if not self._frame_limited:
            self._frame_limited = True
            if self._flood.strike():
                return Cut(CloseCode.FLOOD, "kept flooding after rate_limited")
        return Refusal(ErrorCode.RATE_LIMITED, f"{why}; retry in {retry_after:.2f} s", retry_after)

    def receive_garbage(self) -> Cut | None:
        """Count a frame that cannot be read as requests (the glue answers it with an
        error, and calls this at most once per frame)."""
        if self._garbage.strike():
            return Cut(CloseCode.PROTOCOL_ERROR, "too many undecodable frames")
        return None

    # -- sign-in -------------------------------------------------------------------

    def signed_in(self, user: str) -> None:
        """``auth`` verified ``user``: the session is live (its keys are added next)."""
        self.state = State.LIVE
        self.user = user

    def signed_out(self) -> None:
        """Undo a failed ``auth``: unauthenticated again, no keys, nothing held."""
        self.state = State.UNAUTHENTICATED
        self.user = ""
        self.keys.clear()
        if self._held is not None:
            self._held.clear()
            self._held_bytes = 0

    # -- live events, hold and release -------------------------------------------------

    def receive_live(self, seq: int | None, data: bytes) -> bytes | None:
        """A live event (``seq`` None for ephemeral ones): the bytes to push now, or None
        when it is dropped (covered by a replay) or held."""
        if seq is not None and seq <= self.floor:
            return None
        held = self._held
        if held is None:
            return data
        if not self.overflowed:
            held.append((seq, data))
            self._held_bytes += len(data)
            if self._held_bytes > self._limits.outbox_limit:
                held.clear()
                self.overflowed = True
        return None

    def hold(self) -> None:
        """Hold live events until the matching :meth:`release`."""
        self._holders += 1
        if self._held is None:
            self._held = []
            self.passing = False

    def release(self, floor: int) -> list[bytes]:
        """End one hold; a replay covered the log up to ``floor``. Returns the held events
        to push now, in order (none while another hold is still active)."""
        self.floor = max(self.floor, floor)
        self._holders -= 1
        if self._holders > 0:
            return []
        held, self._held, self._held_bytes = self._held or [], None, 0
        self.passing = True
        return [data for seq, data in held if seq is None or seq > self.floor]

    def hold_until_replied(self) -> None:
        """Hold live events until the current request's reply is queued."""
        self.hold()
        self._reply_floor = 0

    def replied_up_to(self, floor: int) -> None:
        """The current request's replay covered the log up to ``floor``."""
        self._reply_floor = floor

    def release_after_reply(self) -> list[bytes]:
        """The reply is queued: end the request's hold, if it had one (see
        :meth:`release`)."""
        if self._reply_floor is None:
            return []
        floor, self._reply_floor = self._reply_floor, None
        return self.release(floor)

    def route_keys_added(self, keys: Iterable[RouteKey]) -> list[RouteKey]:
        """Add ``keys``; return those that are new to this session."""
        new = [key for key in keys if key not in self.keys]
        self.keys.update(new)
        return new

    def route_keys_removed(self, keys: Iterable[RouteKey]) -> list[RouteKey]:
        """Remove ``keys``; return those this session had."""
        gone = [key for key in keys if key in self.keys]
        self.keys.difference_update(gone)
        return gone
