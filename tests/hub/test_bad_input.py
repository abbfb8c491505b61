"""Bad input of every kind gets a documented error or close code; the node carries on."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.node import Node
from hub.tokens import issue_token
from protocol.errors import CloseCode
from protocol.limits import MAX_SUBSCRIPTIONS
from tests.hub.conftest import SECRET, Connect, make_settings
from tests.hub.wsclient import WsClient


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        issue_token("alice", "some-other-secret-0123456789-0123456789"),
        issue_token("alice", SECRET, ttl_seconds=-60),
    ],
    ids=["garbage", "forged", "expired"],
)
async def test_rejected_tokens_close_with_unauthorized(connect: Connect, token: str) -> None:
    client = await connect()
    reply = await client.call_raw("auth", token=token)
    assert getattr(reply, "code", None) == "unauthorized"
    assert await client.closed_code() == CloseCode.UNAUTHORIZED


async def test_requests_before_auth_are_refused_even_ping(connect: Connect) -> None:
    client = await connect()
    for op, args in (("ping", {}), ("post", {"text": "sneaky"})):
        reply = await client.call_raw(op, **args)
        assert getattr(reply, "code", None) == "unauthorized", op
    assert "user" in await client.call("auth", token=issue_token("alice", SECRET))
    assert "time" in await client.call("ping")


@pytest.mark.node_settings(auth_timeout=0.2)
async def test_silent_connection_is_closed_after_auth_timeout(connect: Connect) -> None:
    client = await connect()
    assert await client.closed_code() == CloseCode.AUTH_TIMEOUT


async def test_handshake_without_subprotocol_is_refused(node: Node) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await ws_connect(f"ws://127.0.0.1:{node.port}/")
    assert refused.value.response.status_code == 400


async def test_oversized_frame_closes_with_1009(connect: Connect) -> None:
    client = await connect("alice")
    await client.send_raw("x" * (65 * 1024))
    assert await client.closed_code() == 1009


async def test_unknown_op_gets_an_error_and_the_connection_stays(connect: Connect) -> None:
    client = await connect("alice")
    await client.send_raw(orjson.dumps({"id": 77, "op": "explode", "args": {}}).decode())
    assert "time" in await client.call("ping")
    assert [(e.id, e.code) for e in client.errors] == [(77, "unknown_op")]


@pytest.mark.parametrize(
    ("subprotocol", "garbage"),
    [("hubbub.v1.json", "{not json"), ("hubbub.v1.msgpack", b"\xc1\xff\x00")],
)
async def test_garbage_gets_bad_request_then_protocol_error_close(
    connect: Connect, node: Node, subprotocol: str, garbage: str | bytes
) -> None:
    client = await connect("alice", subprotocol=subprotocol)
    await client.send_raw(garbage)
    assert "time" in await client.call("ping")
    assert client.errors[0].code == "bad_request" and client.errors[0].id is None
    for _ in range(node.settings.garbage_strikes):
        await client.send_raw(garbage)
    assert await client.closed_code() == CloseCode.PROTOCOL_ERROR


async def test_domain_refusals_are_clear_errors(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    post = await bob.call("post", text="bob's")
    cases = [
        (("follow",), {"user": "alice"}, "conflict"),
        (("follow",), {"user": "ghost"}, "not_found"),
        (("edit",), {"post": post["id"], "text": "mine now"}, "forbidden"),
        (("delete",), {"post": post["id"]}, "forbidden"),
        (("like",), {"post": 987654}, "not_found"),
        (("profile.get",), {"user": "ghost"}, "not_found"),
    ]
    for (op,), args, code in cases:
        reply = await alice.call_raw(op, **args)
        assert getattr(reply, "code", None) == code, (op, args)
    first = await alice.call("like", post=post["id"])
    again = await alice.call("like", post=post["id"])
    assert first["likes"] == again["likes"] == 1


@pytest.mark.node_settings(request_rate=1.0, request_burst=5.0, flood_strikes=20)
async def test_flooding_is_rate_limited_then_closed(connect: Connect) -> None:
    client = await connect("alice")
    replies = await asyncio.gather(
        *(client.call_raw("ping") for _ in range(10)), return_exceptions=True
    )
    limited = [r for r in replies if getattr(r, "code", None) == "rate_limited"]
    assert limited and all((r.retry_after or 0) > 0 for r in limited)  # type: ignore[union-attr]
    for _ in range(30):
        await client.send_raw(orjson.dumps({"id": 1, "op": "ping"}).decode())
    assert await client.closed_code() == CloseCode.FLOOD


@pytest.mark.node_settings(
    outbox_limit=32 * 1024,
    write_rate=10_000.0,
    write_burst=10_000.0,
    request_rate=10_000.0,
    request_burst=10_000.0,
)
async def test_reader_that_never_reads_is_cut_while_others_keep_receiving(
    connect: Connect, node: Node
) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", node.port))
    sluggish = await ws_connect(
        f"ws://127.0.0.1:{node.port}/",
        sock=sock,
        subprotocols=["hubbub.v1.json"],  # type: ignore[list-item]
        max_queue=1,
    )
    await sluggish.send(
        orjson.dumps(
            {"id": 1, "op": "auth", "args": {"token": issue_token("sloth", SECRET)}}
        ).decode()
    )
    await sluggish.recv()
    await sluggish.send(orjson.dumps({"id": 2, "op": "follow", "args": {"user": "bob"}}).decode())
    assert b'"following":true' in await sluggish.recv(decode=False)

    sent = 0
    while node.metrics.outbox_drops._value.get() == 0 and sent < 5000:
        await bob.call("post", text="x" * 400 + f" {sent}")
        sent += 1
    assert node.metrics.outbox_drops._value.get() == 1
    for _ in range(sent):
        assert (await alice.next_event("feed.insert")).data["author"] == "bob"
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await sluggish.recv()
    assert sluggish.close_code in {CloseCode.SLOW, 1006}


FRAMES = st.one_of(
    st.binary(max_size=512),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["id", "op", "args", "x"]) | st.text(max_size=8), inner, max_size=4
            )
        ),
        max_leaves=12,
    ).map(orjson.dumps),
)


async def _throw(data_dir: Path, frames: list[bytes]) -> None:
    node = await Node.start(
        make_settings(data_dir, garbage_strikes=1_000_000, request_rate=1e9, request_burst=1e9)
    )
    try:
        url = f"ws://127.0.0.1:{node.port}/"
        packed = await WsClient.open(url, "hubbub.v1.msgpack")
        text = await WsClient.open(url, "hubbub.v1.json")
        for frame in frames:
            await packed.send_raw(frame)
            await text.send_raw(frame.decode("utf-8", "replace"))
        for client in (packed, text):  # still open and served (before auth: unauthorized)
            assert getattr(await client.call_raw("ping"), "code", None) == "unauthorized"
        await packed.close()
        await text.close()
    finally:
        await node.drain()


@settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(frames=st.lists(FRAMES, min_size=100, max_size=100))
def test_fuzzed_frames_never_break_the_node(
    tmp_path_factory: pytest.TempPathFactory, frames: list[bytes]
) -> None:
    asyncio.run(_throw(tmp_path_factory.mktemp("fuzz"), frames))


async def test_a_second_auth_is_a_conflict_and_the_connection_stays(connect: Connect) -> None:
    client = await connect("alice")
    reply = await client.call_raw("auth", token=issue_token("bob", SECRET))
    assert getattr(reply, "code", None) == "conflict"
    assert "time" in await client.call("ping")


async def test_subscriptions_are_bounded(connect: Connect) -> None:
    client = await connect("alice")
    for i in range(MAX_SUBSCRIPTIONS):
        await client.call("subscribe", stream=f"tag:t{i}")
    await client.call("subscribe", stream="tag:t0")  # already held: not a new one
    reply = await client.call_raw("subscribe", stream="public")
    assert getattr(reply, "code", None) == "too_large"


@pytest.mark.node_settings(outbox_limit=16 * 1024, write_rate=1e6, write_burst=1e6)
async def test_events_held_during_a_replay_are_bounded_too(connect: Connect, node: Node) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call("follow", user="bob")
    (session,) = node.local_sessions("alice")
    session.hold()  # as a catch-up after a bus gap does, without ever releasing
    for _ in range(1000):  # 400 kB of posts, far over the 16 KiB limit
        if node.metrics.outbox_drops._value.get():
            break
        await bob.call("post", text="y" * 400)
    assert node.metrics.outbox_drops._value.get() == 1
    assert await alice.closed_code() == CloseCode.SLOW
