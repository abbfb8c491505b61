"""The load generator's lean WebSocket client (clients/loadtest/rawws.py) against a raw
server: frames cut at any byte arrive whole and in order, pings are answered, closes are
echoed, protocol violations fail with 1002 or 1009, a dropped socket reads as 1006 and
refused handshakes raise. Then a counted connection's in-place frame counting
(``SimConnection._count_frame``), fed frames directly with no network.

The server here is a plain asyncio TCP server: ``websockets.server.ServerProtocol``
(sans-I/O) answers the upgrade, then the test writes hand-built server frames and
parses what the client sends with ``websockets.frames.Frame.parse(mask=True)``, which
refuses an unmasked client frame.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.datastructures import Headers
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.typing import Subprotocol

from clients.loadtest.connection import SimConnection
from clients.loadtest.rawws import ConnectionClosed, HandshakeFailed, RawWebSocket
from clients.loadtest.recorder import Recorder
from protocol import JSON, Event, Reply
from protocol.limits import MAX_BATCH

WAIT = 10.0
"""Seconds any wait may take before the test fails (none should come close)."""
MAX_SIZE = 2**20
SUBPROTOCOL = Subprotocol("hubbub.v1.json")

Respond = Callable[[ServerProtocol, Request], "Response | bytes"]
"""How the test server answers an upgrade: a response to send, or raw bytes to write
before closing the connection."""


def accept(protocol: ServerProtocol, request: Request) -> Response | bytes:
    """Accept the upgrade as a conforming server would."""
    return protocol.accept(request)


class Sink:
    """A FrameSink that keeps every payload it is handed and counts its closes."""

    def __init__(self) -> None:
        self.frames: list[tuple[bytes, bool]] = []
        self.closes = 0
        self.closed = asyncio.Event()

    def frame_received(self, data: bytes, start: int, end: int, binary: bool) -> None:
        """Keep a copy of the payload (the buffer is the socket's)."""
        self.frames.append((bytes(data[start:end]), binary))

    def connection_closed(self, socket: RawWebSocket) -> None:
        """Count the close."""
        self.closes += 1
        self.closed.set()


class TracedSocket(RawWebSocket):
    """A RawWebSocket that counts the bytes it has been handed, so a writer can wait
    until every byte written so far has been read, making each write a read boundary."""

    def __init__(self, sink: Any, max_size: int) -> None:
        super().__init__(sink, max_size)
        self.received = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def data_received(self, data: bytes) -> None:
        """Parse, then count and wake whoever waits for this many bytes."""
        super().data_received(data)
        self.received += len(data)
        for total, waiter in self._waiters:
            if total <= self.received and not waiter.done():
                waiter.set_result(None)
        self._waiters = [(t, w) for t, w in self._waiters if not w.done()]

    async def until_received(self, total: int) -> None:
        """Return once ``total`` bytes (the handshake's included) have been parsed."""
        if self.received < total:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((total, waiter))
            async with asyncio.timeout(WAIT):
                await waiter


class Peer:
    """The server side of one accepted WebSocket connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._buffer = StreamReader()

    async def write(self, data: bytes) -> None:
        """Write bytes to the client."""
        self.writer.write(data)
        await self.writer.drain()

    async def frame(self) -> Frame | None:
        """The next frame the client sent (it must be masked), None once it hung up."""
        parser = Frame.parse(self._buffer.read_exact, mask=True, max_size=None)
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    next(parser)
                except StopIteration as done:
                    frame: Frame = done.value
                    return frame
                try:
                    data = await self.reader.read(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    return None
                self._buffer.feed_data(data)

    async def frames_until_eof(self) -> list[Frame]:
        """Every frame the client sends until it drops the connection."""
        frames = []
        while (frame := await self.frame()) is not None:
            frames.append(frame)
        return frames

    def drop(self) -> None:
        """Close the TCP connection without a close frame."""
        self.writer.close()


class FrameServer:
    """A TCP server on a free port that answers WebSocket upgrades with ``respond``."""

    def __init__(self) -> None:
        self.respond: Respond = accept
        self.greeting = b""
        """Bytes written right after a 101, in the same write (frames before any read)."""
        self._peers: asyncio.Queue[Peer] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.url = ""

    async def start(self) -> None:
        """Listen on 127.0.0.1, port 0."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        protocol = ServerProtocol(subprotocols=[SUBPROTOCOL])
        protocol.receive_data(head)
        [request] = protocol.events_received()
        assert isinstance(request, Request)
        response = self.respond(protocol, request)
        if isinstance(response, bytes):
            writer.write(response)
            writer.close()
            return
        protocol.send_response(response)
        head_and_greeting = b"".join(protocol.data_to_send())
        if response.status_code == 101:
            head_and_greeting += self.greeting
        writer.write(head_and_greeting)
        if response.status_code != 101:
            writer.close()
            return
        await self._peers.put(Peer(reader, writer))

    async def open(
        self, sink: Sink | None = None, max_size: int = MAX_SIZE
    ) -> tuple[TracedSocket, Peer, Sink]:
        """Connect a client and return it with the server side of its connection."""
        sink = sink or Sink()
        socket = await TracedSocket.connect(self.url, sink, [SUBPROTOCOL], max_size, WAIT)
        assert isinstance(socket, TracedSocket)
        async with asyncio.timeout(WAIT):
            peer = await self._peers.get()
        return socket, peer, sink


@pytest.fixture
async def server() -> AsyncIterator[FrameServer]:
    """A raw WebSocket server for one test function."""
    frame_server = FrameServer()
    await frame_server.start()
    yield frame_server
    await frame_server.stop()


async def closed(socket: RawWebSocket) -> None:
    """Wait until the client's socket is gone."""
    async with asyncio.timeout(WAIT):
        await socket.wait_closed()


def serialized(*frames: Frame) -> bytes:
    """Server frames as bytes on the wire (unmasked)."""
    return b"".join(frame.serialize(mask=False) for frame in frames)


# -- (a) any frames, cut anywhere, arrive whole and in order ---------------------------


@dataclass
class Script:
    """Server frames to write, the messages they carry and the pings among them."""

    frames: list[Frame] = field(default_factory=list)
    messages: list[tuple[bytes, bool]] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    """Offsets into the serialized stream where one write ends and the next begins."""


SIZES = st.one_of(st.integers(0, 125), st.integers(126, 65535), st.integers(65536, 70000))
"""Payload sizes with a 7-bit, a 16-bit and a 64-bit length field."""


def payload(size: int, seed: int) -> bytes:
    """``size`` pseudo-random bytes (drawn as a seed: hypothesis stores no 70 kB)."""
    return random.Random(seed).randbytes(size)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    """Up to 8 messages, some fragmented with pings between fragments, pings between
    messages, and cut points near frame heads and anywhere."""
    script = Script()

    def ping() -> None:
        data = payload(draw(st.integers(0, 125)), draw(st.integers(0, 2**32)))
        script.frames.append(Frame(Opcode.PING, data))
        script.pings.append(data)

    for _ in range(draw(st.integers(1, 8))):
        if draw(st.integers(0, 3)) == 0:
            ping()
        data = payload(draw(SIZES), draw(st.integers(0, 2**32)))
        binary = draw(st.booleans())
        script.messages.append((data, binary))
        bounds = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        pieces = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
        for index, piece in enumerate(pieces):
            if index:
                if draw(st.booleans()):
                    ping()  # control frames may come between fragments
                opcode = Opcode.CONT
            else:
                opcode = Opcode.BINARY if binary else Opcode.TEXT
            script.frames.append(Frame(opcode, piece, fin=index == len(pieces) - 1))
    starts, position = [], 0
    for frame in script.frames:
        starts.append(position)
        position += len(frame.serialize(mask=False))
    near_heads = [s + draw(st.integers(0, 14)) for s in starts if draw(st.booleans())]
    anywhere = draw(st.lists(st.integers(1, position), max_size=6))
    script.cuts = sorted({c for c in near_heads + anywhere if 0 < c < position})
    return script


def every_length_form_cut_through_every_head() -> Script:
    """Frames at both edges of each length form, with a write ending after every byte
    of every frame head (and of the first bytes of its payload)."""
    sizes = (0, 1, 125, 126, 65535, 65536, 70000)
    script = Script(frames=[Frame(Opcode.TEXT, payload(n, n)) for n in sizes])
    script.messages = [(payload(n, n), False) for n in sizes]
    position = 0
    for frame in script.frames:
        script.cuts += [position + offset for offset in range(1, 13)]
        position += len(frame.serialize(mask=False))
    script.cuts = sorted({cut for cut in script.cuts if cut < position})
    return script


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=scripts())
@example(script=every_length_form_cut_through_every_head())
async def test_frames_cut_anywhere_arrive_whole_in_order_and_pings_get_pongs(
    server: FrameServer, script: Script
) -> None:
    """Random text/binary frames (7-, 16- and 64-bit lengths), fragmented messages and
    pings, written in chunks cut at random offsets, each chunk read before the next is
    written: the sink gets every message exactly, in order; every ping gets a masked pong
    with its payload, in order."""
    socket, peer, sink = await server.open()
    assert socket.subprotocol == SUBPROTOCOL
    stream = serialized(*script.frames)
    base = socket.received
    for start, end in zip([0, *script.cuts], [*script.cuts, len(stream)], strict=True):
        await peer.write(stream[start:end])
        await socket.until_received(base + end)
    assert sink.frames == script.messages
    for data in script.pings:
        pong = await peer.frame()
        assert pong is not None
        assert (pong.opcode, bytes(pong.data)) == (Opcode.PONG, data)
    assert socket.close_code is None
    socket.abort()
    await closed(socket)
    peer.drop()


async def test_frames_after_a_whole_read_of_many_frames_arrive_in_order(
    server: FrameServer,
) -> None:
    """Many small frames in one write (parsed in one read, as the hub's bursts are) and
    a large frame cut right after its 64-bit length field both arrive exactly."""
    socket, peer, sink = await server.open()
    small = [Frame(Opcode.TEXT, b"m%d" % i) for i in range(500)]
    large = Frame(Opcode.BINARY, payload(100_000, 1)).serialize(mask=False)
    first = serialized(*small) + large[:10]
    base = socket.received
    await peer.write(first)
    await socket.until_received(base + len(first))
    await peer.write(large[10:])
    await socket.until_received(base + len(first) + len(large) - 10)
    assert [frame for frame, _ in sink.frames[:500]] == [f.data for f in small]
    assert sink.frames[500:] == [(payload(100_000, 1), True)]
    socket.abort()
    peer.drop()


async def test_frames_in_the_same_read_as_the_handshake_response_arrive(
    server: FrameServer,
) -> None:
    """Frames written with the 101 response, in one write, are handed over (and a ping
    among them answered) once the handshake completes."""
    server.greeting = serialized(
        Frame(Opcode.TEXT, b"first"), Frame(Opcode.PING, b"p"), Frame(Opcode.BINARY, b"2nd")
    )
    socket, peer, sink = await server.open()
    pong = await peer.frame()
    assert pong is not None and (pong.opcode, bytes(pong.data)) == (Opcode.PONG, b"p")
    assert sink.frames == [(b"first", False), (b"2nd", True)]
    socket.abort()
    peer.drop()


# -- (b) closes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("close_payload", "code"),
    [
        (Close(1000, "").serialize(), 1000),
        (Close(1001, "going away").serialize(), 1001),
        (Close(4500, "do not come back").serialize(), 4500),
        (b"", 1005),
    ],
    ids=["1000", "1001-with-reason", "4500", "no-code"],
)
async def test_server_close_is_echoed_and_reported_once(
    server: FrameServer, close_payload: bytes, code: int
) -> None:
    """A close frame from the server: the client echoes its code (an empty close is
    echoed empty), drops the socket, reports the server's code and closes the sink once;
    a data frame after the close is not handed over."""
    socket, peer, sink = await server.open()
    await peer.write(serialized(Frame(Opcode.CLOSE, close_payload), Frame(Opcode.TEXT, b"late")))
    echoed = await peer.frames_until_eof()
    assert [(f.opcode, bytes(f.data)) for f in echoed] == [(Opcode.CLOSE, close_payload[:2])]
    await closed(socket)
    assert socket.close_code == code
    assert sink.closes == 1
    assert sink.frames == []
    peer.drop()


async def test_client_close_waits_for_the_servers_close(server: FrameServer) -> None:
    """``close()`` sends a masked close with the given code and returns once the server
    answered and hung up; the client does not echo the answer; the sink closes once."""
    socket, peer, sink = await server.open()
    closing = asyncio.create_task(socket.close(4001))
    frame = await peer.frame()
    assert frame is not None and frame.opcode is Opcode.CLOSE
    assert Close.parse(frame.data).code == 4001
    assert not closing.done()
    await peer.write(serialized(Frame(Opcode.CLOSE, Close(4001, "").serialize())))
    peer.writer.close()
    async with asyncio.timeout(WAIT):
        await closing
    assert await peer.frames_until_eof() == []
    assert socket.close_code == 4001
    assert sink.closes == 1


# -- (c) protocol violations -----------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        Frame(Opcode.TEXT, b"masked").serialize(mask=True),
        Frame(Opcode.BINARY, b"x" * 300).serialize(mask=True),
        b"\xc1\x04rsv1",  # FIN + RSV1 + text (no extension was negotiated)
        b"\xa1\x04rsv2",  # FIN + RSV2 + text
        b"\x99\x04rsv3",  # FIN + RSV3 + ping
        b"\x42\x7e\x01\x00" + b"r" * 256,  # RSV1 on a first fragment, 16-bit length
        b"\x83\x01x",  # opcode 3: reserved data opcode
        b"\x8b\x00",  # opcode 11: reserved control opcode
        Frame(Opcode.CONT, b"orphan").serialize(mask=False),
        serialized(Frame(Opcode.TEXT, b"a", fin=False), Frame(Opcode.BINARY, b"b", fin=False)),
    ],
    ids=[
        "masked",
        "masked-16-bit-length",
        "rsv1",
        "rsv2",
        "rsv3-on-ping",
        "rsv1-on-fragment",
        "opcode-3",
        "opcode-11",
        "continuation-without-start",
        "new-message-inside-fragmented-one",
    ],
)
async def test_protocol_violation_fails_with_1002_and_drops_the_socket(
    server: FrameServer, bad: bytes
) -> None:
    """A masked server frame, reserved bits, an unknown opcode or a broken fragment
    sequence: the client sends close 1002 and drops the TCP connection; nothing of it
    reaches the sink, which closes once."""
    socket, peer, sink = await server.open()
    await peer.write(serialized(Frame(Opcode.TEXT, b"before")) + bad)
    sent = await peer.frames_until_eof()
    assert [(f.opcode, Close.parse(f.data).code) for f in sent] == [(Opcode.CLOSE, 1002)]
    await closed(socket)
    assert socket.close_code == 1002
    assert sink.frames == [(b"before", False)]
    assert sink.closes == 1
    peer.drop()


@pytest.mark.parametrize(
    "bad",
    [
        serialized(Frame(Opcode.TEXT, b"a", fin=False), Frame(Opcode.TEXT, b"b")),
        b"\x09\x01p",  # a ping without FIN: control frames must not be fragmented
        b"\x89\x7e\x00\xc8" + b"p" * 200,  # a ping of 200 bytes: control frames are <= 125
        b"\x88\x01\x03",  # a close frame of 1 byte: no valid code
        Frame(Opcode.CLOSE, b"\x03\xed").serialize(mask=False),  # code 1005 is never sent
    ],
    ids=[
        "whole-message-inside-fragmented-one",
        "fragmented-ping",
        "ping-over-125-bytes",
        "one-byte-close",
        "close-code-1005",
    ],
)
async def test_more_protocol_violations_are_answered_with_close_1002(
    server: FrameServer, bad: bytes
) -> None:
    """What RFC 6455 also forbids (sections 5.4, 5.5, 7.4): the client's next frame is a
    close with 1002."""
    socket, peer, _ = await server.open()
    await peer.write(bad + serialized(Frame(Opcode.PING, b"still open?")))
    frame = await peer.frame()
    socket.abort()
    peer.drop()
    assert frame is not None and frame.opcode is Opcode.CLOSE
    assert Close.parse(frame.data).code == 1002


@pytest.mark.parametrize(
    "frames",
    [
        [Frame(Opcode.TEXT, b"x" * 1001)],
        [Frame(Opcode.BINARY, b"x" * 70_000)],
        [Frame(Opcode.TEXT, b"x" * 600, fin=False), Frame(Opcode.CONT, b"x" * 401)],
    ],
    ids=["16-bit-length", "64-bit-length", "fragments-add-up"],
)
async def test_frame_over_max_size_fails_with_1009(
    server: FrameServer, frames: list[Frame]
) -> None:
    """A frame or a fragmented message over ``max_size`` (1000 here): close 1009, the
    socket dropped, nothing handed over. A frame of exactly ``max_size`` is fine."""
    socket, peer, sink = await server.open(max_size=1000)
    await peer.write(serialized(Frame(Opcode.TEXT, b"y" * 1000), *frames))
    sent = await peer.frames_until_eof()
    assert [(f.opcode, Close.parse(f.data).code) for f in sent] == [(Opcode.CLOSE, 1009)]
    await closed(socket)
    assert socket.close_code == 1009
    assert sink.frames == [(b"y" * 1000, False)]
    assert sink.closes == 1
    peer.drop()


# -- (d) a dropped connection ----------------------------------------------------------


@pytest.mark.parametrize(
    ("tail", "reset"),
    [(b"", False), (b"", True), (Frame(Opcode.TEXT, b"z" * 500).serialize(mask=False)[:7], False)],
    ids=["fin", "reset", "mid-frame"],
)
async def test_connection_dropped_without_close_frame_reads_as_1006(
    server: FrameServer, tail: bytes, reset: bool
) -> None:
    """The TCP connection ends (FIN or RST, or in the middle of a frame) with no close
    frame: ``close_code`` is 1006, the sink closes once, a partial frame is not handed
    over, and ``send`` then raises ConnectionClosed."""
    socket, peer, sink = await server.open()
    written = serialized(Frame(Opcode.BINARY, b"whole")) + tail
    base = socket.received
    await peer.write(written)
    await socket.until_received(base + len(written))
    if reset:
        peer.writer.transport.abort()
    else:
        peer.drop()
    async with asyncio.timeout(WAIT):
        await sink.closed.wait()
    await closed(socket)
    assert socket.close_code == 1006
    assert sink.closes == 1
    assert sink.frames == [(b"whole", True)]
    with pytest.raises(ConnectionClosed):
        socket.send("after", text=True)


# -- (e) refused handshakes ------------------------------------------------------------


def reject_403_empty(protocol: ServerProtocol, request: Request) -> Response | bytes:
    """Forbidden, with no body."""
    return Response(403, "Forbidden", Headers([("Content-Length", "0")]))


def reject_403_body(protocol: ServerProtocol, request: Request) -> Response | bytes:
    """Forbidden, with a body and Connection: close (websockets' own reject)."""
    return protocol.reject(403, "go away\n")


def wrong_accept(protocol: ServerProtocol, request: Request) -> Response | bytes:
    """101, but a Sec-WebSocket-Accept that is not the key's."""
    response = protocol.accept(request)
    del response.headers["Sec-WebSocket-Accept"]
    response.headers["Sec-WebSocket-Accept"] = "dGhlIHNhbXBsZSBub25jZQ=="
    return response


def no_upgrade(protocol: ServerProtocol, request: Request) -> Response | bytes:
    """101 without the Upgrade header."""
    response = protocol.accept(request)
    del response.headers["Upgrade"]
    return response


def unoffered_subprotocol(protocol: ServerProtocol, request: Request) -> Response | bytes:
    """101 selecting a subprotocol the client did not offer."""
    response = protocol.accept(request)
    del response.headers["Sec-WebSocket-Protocol"]
    response.headers["Sec-WebSocket-Protocol"] = "chat"
    return response


def not_http(protocol: ServerProtocol, request: Request) -> Response | bytes:
    """A head that is not an HTTP response at all."""
    return b"SSH-2.0-OpenSSH_9.6\r\n\r\n"


@pytest.mark.parametrize(
    "respond",
    [
        reject_403_empty,
        reject_403_body,
        wrong_accept,
        no_upgrade,
        unoffered_subprotocol,
        not_http,
    ],
)
async def test_refused_handshake_raises_handshake_failed(
    server: FrameServer, respond: Respond
) -> None:
    """Any response other than a valid 101 for this key and offer makes ``connect``
    raise HandshakeFailed."""
    server.respond = respond
    with pytest.raises(HandshakeFailed):
        accepted = await RawWebSocket.connect(server.url, Sink(), [SUBPROTOCOL], MAX_SIZE, WAIT)
        accepted.abort()  # reached only when the refusal went unnoticed


async def test_server_hanging_up_during_the_handshake_raises_oserror(
    server: FrameServer,
) -> None:
    """The server closes the connection before any response: ``connect`` raises an
    OSError (ConnectionResetError), not a hang."""
    server.respond = lambda protocol, request: b""
    with pytest.raises(OSError):
        await RawWebSocket.connect(server.url, Sink(), [SUBPROTOCOL], MAX_SIZE, WAIT)


# -- (f) sending -----------------------------------------------------------------------


async def test_send_frames_are_masked_and_send_after_close_raises(server: FrameServer) -> None:
    """``send`` writes a masked text or binary frame; after the server's close (echoed)
    it raises ConnectionClosed, as it does after ``abort``."""
    socket, peer, sink = await server.open()
    socket.send("héllo", text=True)
    socket.send(b"\x00\x01", text=False)
    first, second = await peer.frame(), await peer.frame()
    assert first is not None and second is not None
    assert (first.opcode, bytes(first.data)) == (Opcode.TEXT, "héllo".encode())
    assert (second.opcode, bytes(second.data)) == (Opcode.BINARY, b"\x00\x01")
    await peer.write(serialized(Frame(Opcode.CLOSE, Close(1000, "").serialize())))
    echoed = await peer.frames_until_eof()
    assert [f.opcode for f in echoed] == [Opcode.CLOSE]
    await closed(socket)
    assert (socket.close_code, sink.closes, sink.frames) == (1000, 1, [])
    with pytest.raises(ConnectionClosed):
        socket.send("too late", text=True)
    with pytest.raises(ConnectionClosed):
        socket.send(b"too late", text=False)
    peer.drop()

    other, other_peer, _ = await server.open()
    other.abort()
    with pytest.raises(ConnectionClosed):
        other.send("after abort", text=True)
    assert await other_peer.frames_until_eof() == []
    other_peer.drop()


# -- counted connections: SimConnection._count_frame ----------------------------------

USER = 7
AUTHOR = 3


def post_event(cursor: str, seq: int, text: str | None = None, post_id: int = 0) -> bytes:
    """A ``feed.insert`` of a post by AUTHOR, as the hub encodes it."""
    post = {
        "id": post_id or seq + 1, "author": f"u{AUTHOR}",
        "text": f"lt:{AUTHOR}:{seq}:{1_000_000_000 + seq}" if text is None else text,
        "created_at": 0, "edited_at": None, "reply_to": None, "root": None, "tags": [],
        "mentions": [], "likes": 0, "replies": 0,
    }  # fmt: skip
    return JSON.encode_event(Event("feed.insert", cursor, post))


def counted_connection() -> SimConnection:
    """A counted SimConnection with no socket, its recorder counting USER."""
    connection = SimConnection(USER, f"u{USER}", Recorder(), "hubbub.v1.json")
    connection.counted = True
    connection.recorder.count_only(USER)
    return connection


def feed(connection: SimConnection, frame: bytes, before: bytes = b"", after: bytes = b"") -> None:
    """Hand ``frame`` over as the socket would: offsets into a larger buffer."""
    data = before + frame + after
    connection.frame_received(data, len(before), len(before) + len(frame), False)


def check(connection: SimConnection, published: list[int]) -> tuple[int, int, int, int]:
    """(expected, received, missed, duplicated) of USER against AUTHOR's ``published``."""
    result = connection.recorder.correctness([(USER, (AUTHOR,))], {AUTHOR: published})
    assert result.unexpected == 0
    return result.expected, result.received, result.missed, result.duplicated


def test_counted_frame_of_three_posts_counts_three_without_decoding() -> None:
    """A batch of 3 posts with increasing cursors is counted in place: 3 deliveries, the
    last cursor kept, nothing decoded (decoding would fill ``recent``)."""
    connection = counted_connection()
    feed(connection, JSON.join([post_event(str(c), c - 10) for c in (10, 11, 12)]))
    assert connection.recorder.deliveries == 3
    assert (connection.high_water, connection.cursor) == (12, "12")
    assert list(connection.recent) == []
    assert check(connection, [0, 1, 2]) == (3, 3, 0, 0)


def test_replayed_frame_is_decoded_and_counted_as_repeats() -> None:
    """A frame whose cursors go back (a replay) is decoded: its posts are repeats, so the
    check shows them duplicated and nothing missed; a later frame partly above the high
    water counts only its new post."""
    connection = counted_connection()
    feed(connection, JSON.join([post_event(str(c), c - 10) for c in (10, 11, 12)]))
    feed(connection, JSON.join([post_event(str(c), c - 10) for c in (11, 12)]))
    assert list(connection.recent) == [2, 3]  # decoded
    assert connection.recorder.deliveries == 3
    assert check(connection, [0, 1, 2]) == (3, 5, 0, 2)
    feed(connection, JSON.join([post_event(str(c), c - 10) for c in (12, 13)]))
    assert connection.recorder.deliveries == 4
    assert connection.high_water == 13
    assert check(connection, [0, 1, 2, 3]) == (4, 7, 0, 3)


def test_a_single_replayed_post_is_a_repeat() -> None:
    """A lone event (not a batch) at the high-water cursor is decoded as a repeat."""
    connection = counted_connection()
    feed(connection, post_event("5", 0))
    feed(connection, post_event("5", 0))
    assert check(connection, [0]) == (1, 2, 0, 1)


def test_non_decimal_cursor_falls_back_to_decoding() -> None:
    """Opaque (non-decimal) cursors cannot be compared in place: the frame is decoded,
    its posts counted once each, the cursor kept as given."""
    connection = counted_connection()
    feed(connection, JSON.join([post_event("a1", 0), post_event("a2", 1)]))
    assert list(connection.recent) == [1, 2]
    assert connection.cursor == "a2"
    assert connection.high_water == -1
    assert check(connection, [0, 1]) == (2, 2, 0, 0)


def test_post_without_load_test_text_is_decoded_and_ignored() -> None:
    """A post whose text is not ``lt:...`` makes the frame decode; it counts nothing."""
    connection = counted_connection()
    feed(connection, post_event("4", 0, text="hello"))
    assert list(connection.recent) == [1]
    assert connection.recorder.deliveries == 0
    assert connection.high_water == 4


def test_reply_in_a_frame_while_a_request_waits_is_decoded() -> None:
    """With a request waiting, a frame holding its reply is decoded: the reply resolves
    the request and the post beside it is counted once."""
    connection = counted_connection()
    waiting: asyncio.Future[Any] = asyncio.new_event_loop().create_future()
    connection._waiting[1] = waiting
    try:
        frame = JSON.join([JSON.encode_reply(Reply(1, {"ok": True})), post_event("9", 0)])
        feed(connection, frame)
        assert waiting.done() and waiting.result() == Reply(1, {"ok": True})
        assert check(connection, [0]) == (1, 1, 0, 0)
    finally:
        waiting.get_loop().close()


def test_another_post_between_load_test_posts_is_counted_as_documented() -> None:
    """Only the first and last post of a counted frame are looked at (one scan per
    frame): another client's post between them is counted too, where decoding skips it,
    so it shows as ``unexpected`` (clients/loadtest/connection.py says so)."""
    frame = JSON.join([post_event("1", 0), post_event("2", 9, text="hi"), post_event("3", 1)])
    decoded = counted_connection()
    decoded.receive(frame)
    counted = counted_connection()
    feed(counted, frame)
    assert decoded.recorder.deliveries == 2
    assert counted.recorder.deliveries == 3


def test_frame_without_durable_events_counts_nothing() -> None:
    """An ephemeral event (no cursor) is accepted in place and changes nothing."""
    connection = counted_connection()
    feed(connection, JSON.encode_event(Event("presence", None, {"user": "u1", "online": True})))
    assert connection.recorder.deliveries == 0
    assert (connection.high_water, connection.cursor) == (-1, None)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 5), min_size=1, max_size=120),
    splits=st.lists(st.integers(1, MAX_BATCH), min_size=1, max_size=120),
    noise=st.sampled_from([b"", b'[{"ev":"feed.insert","cursor":"1",', b'"cursor":"99"}]']),
)
def test_any_batching_of_cursor_ordered_posts_counts_each_once(
    gaps: list[int], splits: list[int], noise: bytes
) -> None:
    """Posts with increasing cursors, cut into batches of any size and handed over as
    offsets into a buffer with other frames' bytes around them: the count is the number
    of posts, with no repeats, nothing decoded, the last cursor kept."""
    cursors = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    events = [post_event(str(c), seq) for seq, c in enumerate(cursors)]
    connection = counted_connection()
    position, turn = 0, 0
    while position < len(events):
        size = splits[turn % len(splits)]
        feed(connection, JSON.join(events[position : position + size]), noise, noise)
        position, turn = position + size, turn + 1
    assert check(connection, list(range(len(events)))) == (len(events), len(events), 0, 0)
    assert connection.recorder.deliveries == len(events)
    assert list(connection.recent) == []
    assert (connection.high_water, connection.cursor) == (cursors[-1], str(cursors[-1]))
