"""The "null hub": the Hubbub protocol with no hub logic, the ceiling of the suite.

It answers ``auth``, ``follow`` and ``post`` as the hub would on the wire (JSON codec),
but keeps nothing: no store, no change log, no token check (the ``sub`` of the token
names the user), no limits. A post is acknowledged at once and encoded once as the
hub's ``feed.insert`` event (same fields, same cursor form); one flush per loop tick
frames each author's new posts once, as batch frames, and writes those bytes to every
follower and the author with one ``transport.write`` per frame: what ``hub.outbox``
does for a burst, without anything else.

So ``hubbub loadtest`` against it measures two ceilings at once: how fast the load
generator can receive (the peer does almost nothing per delivery), and what coalesced,
pre-framed writes cost on this machine with no hub logic in the way. Prints
``listening on ws://127.0.0.1:PORT/``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import resource
import signal
import time
from collections import defaultdict
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from hub.outbox import MAX_FLUSH_DELAY
from protocol import JSON, Event, ProtocolError, Reply, Request, ops
from protocol.limits import MAX_BATCH

FOLLOWERS: defaultdict[str, set[NullSession]] = defaultdict(set)
COUNTERS = {"post": 0, "cursor": 0}


def token_user(token: str) -> str:
    """The ``sub`` of a JWT, unchecked (the null hub trusts everyone)."""
    body = token.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return str(claims["sub"])


def batch_frames(messages: list[bytes]) -> list[bytes]:
    """``messages`` as pre-framed batch frames of at most MAX_BATCH messages."""
    return [
        Frame(Opcode.TEXT, JSON.join(messages[at : at + MAX_BATCH])).serialize(mask=False)
        for at in range(0, len(messages), MAX_BATCH)
    ]


class Flusher:
    """One flush per loop tick: replies per session, posts per author.

    A post is queued once, for its author; the flush frames each author's posts once
    and writes the same bytes to every follower, so a delivery costs no Python work of
    its own. (A connection following several authors would get each author's frames
    in turn, not merged in cursor order: the suite's burst has one author.)
    """

    def __init__(self) -> None:
        self.replies: dict[NullSession, list[bytes]] = {}
        self.posts: dict[str, list[bytes]] = {}
        self.scheduled = False
        self.delay = 0.0

    def _schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_later(self.delay, self.flush)

    def reply(self, session: NullSession, message: bytes) -> None:
        """Queue a reply for one session."""
        self.replies.setdefault(session, []).append(message)
        self._schedule()

    def post(self, author: str, event: bytes) -> None:
        """Queue a post event for the author's followers."""
        self.posts.setdefault(author, []).append(event)
        self._schedule()

    def flush(self) -> None:
        """Write what waits: each author's posts framed once for all its followers.

        Paced as ``hub.outbox.Flusher`` is: after a flush that took ``d`` seconds the
        next waits about ``d`` (at most MAX_FLUSH_DELAY), so batches grow under load.
        """
        started = time.perf_counter()
        self.scheduled = False
        posts, self.posts = self.posts, {}
        replies, self.replies = self.replies, {}
        for author, events in posts.items():
            frames = batch_frames(events)
            for follower in FOLLOWERS[author]:
                write = follower.connection.transport.write
                for frame in frames:
                    write(frame)
        for session, messages in replies.items():
            for frame in batch_frames(messages):
                session.connection.transport.write(frame)
        took = time.perf_counter() - started
        self.delay = min(took, MAX_FLUSH_DELAY) if took > 0.001 else 0.0


FLUSHER = Flusher()


class NullSession:
    """One connection: its user and whom it follows."""

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.user = ""
        self.follows: list[str] = []

    def answer(self, request: Request) -> dict[str, Any]:
        """The result of one request (and, for a post, its fan-out)."""
        op = request.op
        if isinstance(op, ops.Auth):
            self.user = token_user(op.token)
            FOLLOWERS[self.user].add(self)
            return {"user": {"id": self.user}, "cursor": str(COUNTERS["cursor"])}
        if isinstance(op, ops.Follow):
            FOLLOWERS[op.user].add(self)
            self.follows.append(op.user)
            return {"user": op.user, "following": True}
        if isinstance(op, ops.CreatePost):
            return self.publish(op.text, op.reply_to)
        return {}

    def publish(self, text: str, reply_to: int | None) -> dict[str, Any]:
        """Encode the post's event once and queue it for the author's followers."""
        COUNTERS["post"] += 1
        COUNTERS["cursor"] += 1
        post = {
            "id": COUNTERS["post"], "author": self.user, "text": text,
            "created_at": int(time.time() * 1000), "edited_at": None, "reply_to": reply_to,
            "root": None, "tags": [], "mentions": [], "likes": 0, "replies": 0,
        }  # fmt: skip
        FLUSHER.post(
            self.user, JSON.encode_event(Event("feed.insert", str(COUNTERS["cursor"]), post))
        )
        return post

    def close(self) -> None:
        """Leave every follower set."""
        for author in (self.user, *self.follows):
            FOLLOWERS[author].discard(self)


async def handle(connection: ServerConnection) -> None:
    """Serve one connection: requests in, replies and fan-out out."""
    session = NullSession(connection)
    try:
        async for frame in connection:
            for request in JSON.decode_requests(frame):
                if isinstance(request, ProtocolError):
                    continue
                FLUSHER.reply(
                    session, JSON.encode_reply(Reply(request.id, session.answer(request)))
                )
    finally:
        session.close()


async def main(port: int) -> None:
    """Listen on ``port`` (0: a free one) until SIGTERM."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    async with serve(
        handle,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        backlog=4096,
        subprotocols=[JSON.subprotocol],  # type: ignore[list-item]
        max_size=2**20,
    ) as server:
        print(f"listening on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    import uvloop

    uvloop.run(main(parser.parse_args().port))
