"""Deleted means gone, through a real node on both backends: a replay carries no old text.

An edit or a deletion scrubbed the post's earlier changes, so a client resuming from
before the post's creation gets the post once, with its current text, at the edit's
cursor (a deleted post not at all); one resuming from after the creation gets the
``post.update`` with the current text, or the ``post.delete`` — also when it only
watches a tag stream the edit took the post out of. Live, the removed tags still route
the edit and the deletion to their streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub import session as session_module
from hub.config import Settings
from hub.node import Node
from hub.tokens import issue_token
from protocol import Event
from tests.hub.conftest import SECRET, Connect, make_settings
from tests.hub.wsclient import WsClient
from tests.redisproc import RedisServer

OLD = ("zqxeditword", "zqxedittag", "zqxeditmention", "zqxgoneword", "zqxgonetag")
"""Words only the edited and the deleted post's old texts hold."""


@pytest.fixture(params=["embedded", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A node on the embedded store, or on a redis-server of its own."""
    if request.param == "embedded":
        yield make_settings(tmp_path / "data")
        return
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield make_settings(tmp_path / "data", redis_url=server.url)
    finally:
        server.stop()


async def replay(connect: Connect, user: str, cursor: str, streams: list[str]) -> list[Event]:
    """The events an ``auth`` of ``user`` with ``cursor`` and ``streams`` replays (they
    are pushed before its reply)."""
    client = await connect()
    token = issue_token(user, SECRET)
    result = await client.call("auth", token=token, cursor=cursor, streams=streams)
    events = [client.events.get_nowait() for _ in range(result["replayed"])]
    assert client.events.empty()
    for event in events:
        assert not any(word in repr(event.data) for word in OLD), event
    return events


def shown(events: list[Event]) -> list[tuple[str, int, str | None]]:
    """``(type, post id, text)`` of each event."""
    out = []
    for event in events:
        post = event.data.get("post", event.data)
        out.append((event.type, post["id"], post.get("text")))
    return out


async def test_a_replay_restates_edited_posts_and_forgets_deleted_ones(connect: Connect) -> None:
    bob = await connect("bob")
    alice = await connect("alice")
    await alice.call("follow", user="bob")
    before = alice.cursor or "0"
    await alice.close()
    carol = await connect("carol")
    await carol.call("follow", user="bob")
    edited = await bob.call("post", text="zqxeditword #zqxedittag #shared @zqxeditmention")
    gone = await bob.call("post", text="zqxgoneword #zqxgonetag")
    kept = await bob.call("post", text="kept #shared")
    for _ in range(3):
        await carol.next_event("feed.insert")
    middle = carol.cursor or "0"
    await carol.close()
    erin = await connect("erin")  # live on the streams the edit and the deletion leave
    for stream in ("tag:shared", "tag:zqxgonetag"):
        await erin.call("subscribe", stream=stream)
    await bob.call("edit", post=edited["id"], text="new words #fresh")
    await bob.call("delete", post=gone["id"])
    update = await erin.next_event()
    assert (update.type, list(update.data)) == (
        "post.update", ["id", "text", "tags", "mentions", "edited_at"]
    )  # fmt: skip
    assert (update.data["text"], update.data["tags"]) == ("new words #fresh", ["fresh"])
    deletion = await erin.next_event()
    assert (deletion.type, deletion.data) == ("post.delete", {"id": gone["id"]})

    new = "new words #fresh"
    assert shown(await replay(connect, "alice", before, ["public", "tag:shared"])) == [
        ("feed.insert", kept["id"], "kept #shared"),
        ("stream.insert", kept["id"], "kept #shared"),  # public
        ("stream.insert", kept["id"], "kept #shared"),  # tag:shared
        ("feed.insert", edited["id"], new),  # at the edit's cursor, once, new text only
        ("stream.insert", edited["id"], new),  # public
    ]  # and nothing of the deleted post
    expected = [("post.update", edited["id"], new), ("post.delete", gone["id"], None)]
    assert shown(await replay(connect, "carol", middle, [])) == expected
    # a tag stream's subscriber hears of the edit that took the post out of its stream
    assert shown(await replay(connect, "dave", middle, ["tag:shared"])) == expected


async def posted_while_away(connect: Connect, text: str) -> tuple[WsClient, str | None, Any]:
    """Alice follows bob and leaves; bob posts ``text``: bob, alice's cursor, the post."""
    bob = await connect("bob")
    alice = await connect("alice")
    await alice.call("follow", user="bob")
    cursor = alice.cursor
    await alice.close()
    return bob, cursor, await bob.call("post", text=text)


async def test_a_post_edited_between_the_head_and_the_replay_is_never_lost(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A post created before ``auth``'s head and edited right after it is gone from the
    log below the head and restated only above it: the replay is read again up to the
    new head, so the client gets the post once, edited, and no repeat of the edit live
    (never a ``post.update`` of a post it never got, and no needless ``resync``)."""
    bob, cursor, post = await posted_while_away(connect, "created while alice was away")
    head = node.changelog.head
    edited = False

    async def head_then_edit() -> int:
        nonlocal edited
        found = await head()
        if not edited:
            edited = True
            await bob.call("edit", post=post["id"], text="edited right after the head")
        return found

    monkeypatch.setattr(node.changelog, "head", head_then_edit)
    rereads = node.metrics.replay_rereads._value.get()
    back = await connect("alice", resume=cursor)
    assert "resync" not in back.auth_result and back.auth_result["replayed"] == 1
    assert node.metrics.replay_rereads._value.get() == rereads + 1
    marker = await bob.call("post", text="after the sign-in")
    events = [await back.next_event()]
    while events[-1].data.get("id") != marker["id"]:
        events.append(await back.next_event())
    assert [(e.type, e.data["id"], e.data.get("text")) for e in events] == [
        ("feed.insert", post["id"], "edited right after the head"),
        ("feed.insert", marker["id"], "after the sign-in"),
    ]
    assert int(back.auth_result["cursor"]) >= int(events[0].cursor or 0)


async def test_edits_racing_every_read_end_in_resync(
    node: Node, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edits that scrub the log during every read of the sign-in replay: after
    ``REPLAY_ATTEMPTS`` reads the client gets ``resync``, never an endless loop."""
    bob, cursor, post = await posted_while_away(connect, "edited again and again")
    head = node.changelog.head
    edits = iter(range(1_000_000))

    async def head_then_edit() -> int:
        found = await head()
        await bob.call("edit", post=post["id"], text=f"edit {next(edits)}")
        return found

    monkeypatch.setattr(node.changelog, "head", head_then_edit)
    rereads = node.metrics.replay_rereads._value.get()
    back = await connect("alice", resume=cursor)
    assert back.auth_result.get("resync") is True
    assert node.metrics.replay_rereads._value.get() == rereads + session_module.REPLAY_ATTEMPTS
    assert (await back.next_event()).type == "resync"


def _drain_now(client: WsClient) -> list[Event]:
    """The events already received (a replay's come before the ``auth`` reply)."""
    drained = []
    while not client.events.empty():
        drained.append(client.events.get_nowait())
    return drained
