"""The session's edges: replays that always end, a failed auth that undoes itself, and
a drain that answers every request it took."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

import pytest

from hub import session as session_module
from hub.backends.bundle import open_embedded
from hub.config import Settings
from hub.node import Node
from hub.records import ChangeKind
from hub.routing import interest_of
from hub.social import SocialService
from hub.tokens import issue_token
from protocol import ErrorReply, Reply
from protocol.errors import CloseCode, ErrorCode
from tests.hub.conftest import SECRET, Connect

WAIT = 10.0


@pytest.mark.node_settings(outbox_limit=32 * 1024, write_burst=200.0)
async def test_a_replay_bigger_than_the_outbox_resyncs_instead_of_cutting(
    connect: Connect,
) -> None:
    author = await connect("bob")
    reader = await connect("ann")
    await reader.call("follow", user="bob")
    cursor = reader.cursor
    await reader.close()
    for n in range(80):  # ~45 KiB of events: more than the replay may take (16 KiB)
        await author.call("post", text=f"{n} " + "x" * 480)
    again = await connect("ann", resume=cursor)
    assert again.auth_result.get("resync") is True, f"auth answered {again.auth_result}"
    resync = await again.next_event("resync")
    assert resync.data["reason"] == "too much to replay"
    await author.call("post", text="live after the resync")
    live = await again.next_event("feed.insert")
    assert live.data["text"] == "live after the resync"  # still connected, not cut (4001)
    small = await connect("ann", resume=str(int(again.cursor) - 3))  # a replay that fits
    assert small.auth_result["replayed"] == 3 and "resync" not in small.auth_result


async def test_a_failed_auth_undoes_itself_and_may_be_retried(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = asyncio.Event()

    async def stalled_bus() -> None:
        stalled.set()
        await asyncio.Event().wait()  # a bus that never confirms its subscriptions

    author = await connect("bob")
    client = await connect()
    monkeypatch.setattr(session_module, "SETTLE_TIMEOUT", 0.2)
    settled = node.bus.settled
    monkeypatch.setattr(node.bus, "settled", stalled_bus)
    token = issue_token("ann", SECRET)
    first = await client.call_raw("auth", token=token, cursor="0")
    assert isinstance(first, ErrorReply) and first.code is ErrorCode.UNAVAILABLE, first
    assert stalled.is_set()
    assert node.local_sessions("ann") == [], "a failed auth left the session filed"
    not_yet = await client.call_raw("feed.home")
    assert isinstance(not_yet, ErrorReply) and not_yet.code is ErrorCode.UNAUTHORIZED
    await author.call("post", text="while ann was failing to sign in")
    monkeypatch.setattr(node.bus, "settled", settled)
    second = await client.call_raw("auth", token=token, cursor="0")
    assert isinstance(second, Reply), f"retrying auth got {second}"
    assert second.result["replayed"] == 0  # bob is not followed; nothing of ann's own
    assert [s.user for s in node.local_sessions("ann")] == ["ann"]


async def _readyz(port: int) -> tuple[int, str]:
    def get() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
                return int(reply.status), reply.read().decode().strip()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode().strip()

    return await asyncio.to_thread(get)


async def test_drain_answers_503_finishes_in_flight_requests_then_closes(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, other = await connect("ann"), await connect("bob")
    entered, release = asyncio.Event(), asyncio.Event()
    create_post = node.store.create_post

    async def slow_create_post(*args: Any) -> Any:
        entered.set()
        await release.wait()
        return await create_post(*args)

    monkeypatch.setattr(node.store, "create_post", slow_create_post)
    posting = asyncio.create_task(writer.call_raw("post", text="in flight"))
    async with asyncio.timeout(WAIT):
        await entered.wait()
    draining = asyncio.create_task(node.drain())
    assert await _readyz(node.port) == (503, "draining")
    refused = await other.call_raw("post", text="too late")
    assert isinstance(refused, ErrorReply) and refused.code is ErrorCode.UNAVAILABLE, refused
    assert not draining.done(), "drain did not wait for the request in flight"
    release.set()
    reply = await posting
    assert isinstance(reply, Reply) and reply.result["text"] == "in flight", reply
    assert await writer.closed_code() == CloseCode.DRAINING
    async with asyncio.timeout(WAIT):
        await draining


@pytest.mark.node_settings(auth_timeout=0.3)
async def test_the_auth_timeout_does_not_count_the_time_auth_takes_to_run(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in, released = node.service.sign_in, asyncio.Event()

    async def stalled_sign_in(user: str) -> Any:
        await released.wait()  # the injected fault: a sign-in that outlasts the timeout
        return await sign_in(user)

    monkeypatch.setattr(node.service, "sign_in", stalled_sign_in)
    client = await connect()
    auth = asyncio.create_task(client.call_raw("auth", token=issue_token("ann", SECRET)))
    idle = await connect()  # opened later: once it is timed out, so was ann's first wait
    assert await idle.closed_code() == CloseCode.AUTH_TIMEOUT  # waiting for auth still ends
    released.set()
    reply = await auth
    assert isinstance(reply, Reply), f"an auth that outlasted its 0.3 s timeout got {reply}"
    assert (await client.call("ping"))["time"] > 0  # still open: not closed with 4003


@pytest.mark.node_settings(auth_timeout=0.4)
async def test_a_failed_slow_auth_leaves_the_time_that_was_left_for_a_retry(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def stalled_bus() -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(session_module, "SETTLE_TIMEOUT", 0.6)  # longer than the timeout
    settled = node.bus.settled
    monkeypatch.setattr(node.bus, "settled", stalled_bus)
    client = await connect()
    token = issue_token("ann", SECRET)
    failed = await client.call_raw("auth", token=token)
    assert isinstance(failed, ErrorReply) and failed.code is ErrorCode.UNAVAILABLE, failed
    monkeypatch.setattr(node.bus, "settled", settled)
    retried = await client.call_raw("auth", token=token)  # 0.6 s in: not closed with 4003
    assert isinstance(retried, Reply), f"the retry after a 0.6 s failed auth got {retried}"


async def test_a_follow_committed_while_signing_in_reaches_the_new_session(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = await connect("bob")
    other_device = await connect("ann")
    followee_ids = node.store.followee_ids

    async def read_then_follow(user: str) -> list[str]:
        stale = await followee_ids(user)  # the read, then a follow commits before the
        await other_device.call("follow", user="bob")  # session files its keys
        return stale

    monkeypatch.setattr(node.store, "followee_ids", read_then_follow)
    signing_in = await connect("ann")
    await bob.call("post", text="after the follow")
    insert = await signing_in.next_event("feed.insert")
    assert insert.data["text"] == "after the follow"


async def test_a_like_counter_left_pending_by_a_dead_node_is_logged_at_the_next_start(
    settings: Settings,
) -> None:
    """A node that died inside its coalescing window left a like's counter unlogged: the
    next node to start logs it, so the change log catches up with what pages show."""
    backends = await open_embedded(
        settings.data_dir, synchronous="normal", retention_seconds=900, retention_per_log=1000
    )
    service = SocialService(backends.store, lambda: 1000)
    for user in ("ann", "bob"):
        await service.sign_in(user)
    post = (await service.create_post("ann", "hi", None)).value
    await service.like("bob", post.id)  # ... and the node dies before its counts change
    await backends.close()
    node = await Node.start(settings)
    try:
        logged = await node.changelog.read_since(0, interest_of("ann", []), 100)
        assert logged is not None
        counts = [c.data for c in logged if c.kind == ChangeKind.POST_COUNTS]
        assert counts == [{"id": post.id, "likes": 1, "replies": 0}], f"logged {counts}"
    finally:
        await node.drain()
