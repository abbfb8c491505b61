"""The sans-I/O session core, without sockets: auth gate, strikes, hold/replay/release."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.names import DevicesKey, FollowersKey
from hub.ratelimit import Strikes
from hub.records import Change, ChangeKind
from hub.session_core import (
    FLOOD_FORGIVE,
    SERVE,
    Cut,
    Limits,
    Refusal,
    SessionCore,
    State,
    plan_replay,
)
from protocol import Event
from protocol.errors import CloseCode, ErrorCode

LIMITS = Limits(
    request_rate=1.0, request_burst=3.0, write_rate=1.0, write_burst=2.0,
    flood_strikes=3, garbage_strikes=2, outbox_limit=100,
)  # fmt: skip


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


ROOMY = Limits(
    request_rate=1e6, request_burst=1e6, write_rate=1e6, write_burst=1e6,
    flood_strikes=3, garbage_strikes=2, outbox_limit=100,
)  # fmt: skip


def core(clock: Clock | None = None, limits: Limits = ROOMY) -> SessionCore:
    return SessionCore(limits, clock or Clock())


def test_until_auth_only_auth_is_served_then_auth_conflicts() -> None:
    session = core()
    unauthorized = Refusal(ErrorCode.UNAUTHORIZED, "send auth with a token first")
    for op in ("feed.home", "ping", "explode", ""):  # ping and unknown ops too (SPEC 2)
        assert session.receive_request(op) == unauthorized
    assert session.receive_request("auth") is SERVE
    session.signed_in("ann")
    assert session.state is State.LIVE and session.user == "ann"
    assert session.receive_request("feed.home") is SERVE
    refusal = session.receive_request("auth")
    assert isinstance(refusal, Refusal) and refusal.code is ErrorCode.CONFLICT


def test_a_failed_auth_is_undone_and_may_be_retried() -> None:
    session = core()
    assert session.receive_request("auth") is SERVE
    session.signed_in("ann")
    session.route_keys_added([DevicesKey("ann")])
    session.hold_until_replied()
    assert session.receive_live(5, b"held") is None
    session.signed_out()
    assert (session.state, session.user, session.keys) == (State.UNAUTHENTICATED, "", set())
    assert session.release_after_reply() == []  # the held event went with the undo
    assert session.receive_request("auth") is SERVE


FLOOD = Cut(CloseCode.FLOOD, "kept flooding after rate_limited")


def test_rate_limits_refuse_then_flooding_frames_cut() -> None:
    clock = Clock()
    session = core(clock, LIMITS)
    session.signed_in("ann")
    session.frame_started()
    assert [session.receive_request("post") for _ in range(2)] == [SERVE, SERVE]
    refusal = session.receive_request("post")  # write bucket (burst 2) is empty
    assert isinstance(refusal, Refusal) and refusal.code is ErrorCode.RATE_LIMITED
    assert refusal.retry_after is not None and 0 < refusal.retry_after <= 1
    assert session.receive_request("ping") is SERVE  # the request bucket has one left
    assert all(isinstance(session.receive_request("ping"), Refusal) for _ in range(50))
    for _ in range(LIMITS.flood_strikes - 1):  # frames refused after the first: strikes
        session.frame_started()
        assert isinstance(session.receive_request("ping"), Refusal)
    session.frame_started()
    assert session.receive_request("ping") == FLOOD
    clock.now += 10
    fresh = core(clock, LIMITS)
    fresh.signed_in("bob")
    assert all(fresh.receive_request("feed.home") is SERVE for _ in range(3))


@given(st.integers(1, 3), st.integers(1, 300), st.integers(1, 300))
def test_one_frame_never_cuts_whatever_it_holds(strikes: int, reads: int, writes: int) -> None:
    limits = Limits(
        request_rate=1.0, request_burst=3.0, write_rate=1.0, write_burst=2.0,
        flood_strikes=strikes, garbage_strikes=2, outbox_limit=100,
    )  # fmt: skip
    session = core(Clock(), limits)
    session.signed_in("ann")
    session.frame_started()
    verdicts = [session.receive_request(op) for op in ["post"] * writes + ["ping"] * reads]
    assert not any(isinstance(verdict, Cut) for verdict in verdicts)
    assert session.limited(1.0, "the user's writes") != FLOOD  # nor a refusal from outside


def test_flood_strikes_are_forgiven_over_time_not_by_a_clean_frame() -> None:
    clock = Clock()
    session = core(clock, LIMITS)
    for _ in range(5):  # strikes never add up to the cut: forgiven as fast as they come
        session.frame_started()
        while session.receive_request("auth") is SERVE:  # this frame ends refused
            pass
        for _ in range(LIMITS.flood_strikes - 1):
            session.frame_started()
            assert isinstance(session.receive_request("auth"), Refusal)
        clock.now += LIMITS.flood_strikes * FLOOD_FORGIVE  # all forgiven, tokens back
    # Refused frames faster than one a second add up, and the next one is cut (before,
    # one clean frame between them forgave everything: a flood with a ping in between
    # was never cut).
    session.frame_started()
    verdicts = []
    while not verdicts or verdicts[-1] != FLOOD:
        session.frame_started()
        verdicts.append(session.receive_request("auth"))
        clock.now += 0.1  # under a second: not forgiven yet
    refused = [verdict for verdict in verdicts if verdict is not SERVE]
    assert len(refused) == LIMITS.flood_strikes + 1  # the bucket's 3 tokens went first


def test_a_refusal_from_outside_counts_like_the_buckets_own() -> None:
    session = core(Clock(), LIMITS)
    for _ in range(LIMITS.flood_strikes):  # the first, then strikes short of the cut
        session.frame_started()
        refusal = session.limited(0.5, "too many writes by this user")
        assert refusal == Refusal(
            ErrorCode.RATE_LIMITED, "too many writes by this user; retry in 0.50 s", 0.5
        )
    session.frame_started()
    assert session.limited(0.5, "too many writes by this user") == FLOOD


def test_garbage_strikes_cut_at_the_limit_are_forgiven_over_time_and_drain_refuses() -> None:
    clock = Clock()
    session = core(clock, ROOMY)  # 2 strikes cut; one forgiven per 30 s
    assert session.receive_garbage() is None
    clock.now += 30.0  # forgiven
    assert session.receive_garbage() is None
    clock.now += 29.0  # not yet
    assert session.receive_garbage() == Cut(CloseCode.PROTOCOL_ERROR, "too many undecodable frames")
    refusal = core().receive_request("auth", draining=True)
    assert isinstance(refusal, Refusal) and refusal.code is ErrorCode.UNAVAILABLE


@given(st.integers(2, 20), st.floats(0.001, 100), st.data())
def test_strikes_cut_when_too_many_come_within_the_forgiving_time(
    limit: int, forgive: float, data: st.DataObject
) -> None:
    clock = Clock()
    strikes = Strikes(limit, forgive, clock)
    spaced = data.draw(st.lists(st.floats(forgive * 1.001, 10 * forgive), max_size=30))
    for gap in spaced:  # one strike per forgiving period or slower: never a cut
        clock.now += gap
        assert not strikes.strike()
    clock.now += forgive * 1.001  # everything forgiven
    packed = data.draw(st.lists(st.floats(0, forgive / limit), min_size=limit, max_size=limit))
    cuts = []
    for gap in packed:  # `limit` strikes in less than one period: the last one cuts
        clock.now += gap
        cuts.append(strikes.strike())
    assert cuts == [False] * (limit - 1) + [True]


def test_hold_and_release_drop_what_the_replay_covered_and_keep_order() -> None:
    session = core()
    assert session.receive_live(1, b"1") == b"1"
    session.hold()
    session.hold()  # a second holder (a catch-up during a resume)
    for seq in (2, 3, None, 4):
        assert session.receive_live(seq, f"{seq}".encode()) is None
    assert session.release(3) == []  # the other hold is still on
    assert session.release(2) == [b"None", b"4"]  # floor is 3: 2 and 3 came by replay
    assert session.floor == 3
    assert session.receive_live(3, b"3") is None  # at or below the floor: dropped
    assert session.receive_live(5, b"5") == b"5"


def test_held_events_past_the_outbox_limit_overflow() -> None:
    session = core()
    session.hold()
    assert session.receive_live(1, b"x" * 60) is None and not session.overflowed
    assert session.receive_live(2, b"x" * 60) is None and session.overflowed
    assert session.release(0) == []


def _change(seq: int, author: str) -> Change:
    return Change(seq, f"u:{author}", ChangeKind.POST_CREATED, 0, author, seq, None, None,
                  (), None, {"id": seq})  # fmt: skip


def encode(event: Event) -> bytes:
    return f"{event.type}:{event.cursor}".encode()


def test_plan_replay_routes_like_the_live_path_and_resyncs_when_it_must() -> None:
    changes = [_change(1, "bob"), _change(2, "cat"), _change(3, "bob"), _change(4, "bob")]
    keys = {FollowersKey("bob")}
    plan = plan_replay(changes, after=0, head=4, upto=3, keys=keys, encode=encode, budget=100)
    assert plan.messages == [b"feed.insert:1", b"feed.insert:3"]
    assert (plan.result, plan.last) == ({"replayed": 2, "cursor": "3"}, 3)
    gone = plan_replay(None, after=0, head=4, upto=None, keys=keys, encode=encode, budget=100)
    assert gone.result == {"replayed": 0, "cursor": "4", "resync": True} and gone.last == 4
    big = plan_replay(changes, after=0, head=4, upto=None, keys=keys, encode=encode, budget=20)
    assert big.messages == [b"resync:None"] and big.result["resync"] is True


@given(
    start=st.integers(0, 20),
    hold_at=st.integers(0, 20),
    covered=st.integers(0, 20),
    total=st.integers(1, 40),
)
def test_replay_plus_release_delivers_every_event_once_in_order(
    start: int, hold_at: int, covered: int, total: int
) -> None:
    """A session complete up to ``start`` holds after live event ``hold_at``; the replay
    then covers the log up to ``covered``; events keep arriving live all along. What it
    delivers — live, replayed, released — is every event after ``start``, once, in order."""
    hold_at = max(start, min(hold_at, total))
    covered = max(hold_at, min(covered, total))
    session = core()
    session.floor = start
    delivered: list[int] = []
    for seq in range(start + 1, hold_at + 1):
        if session.receive_live(seq, b"") is not None:
            delivered.append(seq)
    session.hold()
    held_live = range(hold_at + 1, total + 1)
    for seq in held_live:
        assert session.receive_live(seq, str(seq).encode()) is None
    delivered += range(max(hold_at, start) + 1, covered + 1)  # the replay
    delivered += [int(data) for data in session.release(covered)]
    assert delivered == list(range(start + 1, total + 1))
