"""Readers that never read are cut for real: the outbox limit is checked before each
write, and an overflow, a keepalive timeout or a close handshake that does not finish
aborts the socket (RST) instead of waiting for a drain that never comes.

The never-reading clients here are raw sockets with a tiny receive buffer: they do the
opening handshake, ``auth`` (and ``follow``) and then never call ``recv`` again, so
nothing answers the hub's pings and the kernel soon stops taking data. They notice the
cut without reading: an epoll on the socket for hang-up / error (a RST or FIN).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import select
import socket
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import pytest
from websockets.asyncio.connection import Connection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from hub.node import Node
from hub.outbox import Flusher, Outbox
from hub.session import Session
from hub.tokens import issue_token
from protocol import CODECS, ErrorReply, Reply, Request, ops
from protocol.errors import CloseCode
from protocol.limits import MAX_SERVER_FRAME_BYTES
from tests.hub.conftest import SECRET
from tests.hub.serverproc import ServerProcess
from tests.hub.wsclient import WsClient
from tests.waiting import until

JSON = CODECS["hubbub.v1.json"]

RCVBUF = 4096
"""SO_RCVBUF of a never-reading client: the kernel absorbs little on its side."""

KIB = 1024
MIB = 1024 * KIB


# -- raw never-reading clients ---------------------------------------------------------


class RawClient:
    """A WebSocket client on a plain non-blocking socket: it reads only while it waits
    for a reply (answering pings meanwhile) and never again after its last request."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.ids = 0
        self.stopped_reading = 0.0

    @classmethod
    async def open(cls, port: int, user: str | None = None, follow: str | None = None) -> RawClient:
        """Connect, upgrade, and (with ``user``) authenticate and follow ``follow``."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)  # before connect
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        client = cls(sock)
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(
            sock,
            (
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: hubbub.v1.json\r\n\r\n"
            ).encode(),
        )
        while b"\r\n\r\n" not in client.buffer:
            await client._receive()
        head, _, rest = bytes(client.buffer).partition(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n")[0], f"handshake refused: {head[:80]!r}"
        client.buffer[:] = rest
        if user is not None:
            result = await client.call("auth", token=issue_token(user, SECRET))
            assert result["user"]["id"] == user, f"auth as {user} failed: {result}"
        if follow is not None:
            result = await client.call("follow", user=follow)
            assert result.get("following") is True, f"follow of {follow} failed: {result}"
        client.stopped_reading = time.monotonic()
        return client

    async def _receive(self) -> None:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 65536)
        if not data:
            raise ConnectionError("the hub closed the connection during setup")
        self.buffer += data

    async def _send(self, opcode: Opcode, payload: bytes) -> None:
        frame = Frame(opcode, payload).serialize(mask=True)
        await asyncio.get_running_loop().sock_sendall(self.sock, frame)

    async def call(self, op: str, **args: Any) -> Any:
        """Send one request; read (answering pings) until its reply; return the result."""
        self.ids += 1
        request = Request(self.ids, ops.OPERATIONS[op].from_args(args))
        await self._send(Opcode.TEXT, JSON.encode_request(request))
        while True:
            frame = _take_frame(self.buffer)
            if frame is None:
                await self._receive()
                continue
            opcode, payload = frame
            if opcode == Opcode.PING.value:
                await self._send(Opcode.PONG, payload)
            elif opcode == Opcode.CLOSE.value:
                raise ConnectionError(f"closed during setup: {payload!r}")
            elif opcode == Opcode.TEXT.value:
                for message in JSON.decode_server_frame(payload):
                    if isinstance(message, Reply | ErrorReply) and message.id == self.ids:
                        assert isinstance(message, Reply), f"{op} failed: {message}"
                        return message.result

    def close(self) -> None:
        self.sock.close()


def _take_frame(buffer: bytearray) -> tuple[int, bytes] | None:
    """Take one whole (unmasked, unfragmented) server frame off ``buffer``."""
    if len(buffer) < 2:
        return None
    length, at = buffer[1] & 0x7F, 2
    if length == 126:
        length, at = int.from_bytes(buffer[2:4], "big"), 4
    elif length == 127:
        length, at = int.from_bytes(buffer[2:10], "big"), 10
    if len(buffer) < at + length:
        return None
    opcode, payload = buffer[0] & 0x0F, bytes(buffer[at : at + length])
    del buffer[: at + length]
    return opcode, payload


class CutWatch:
    """Notices, without reading, when the hub ends raw connections: an epoll for
    hang-up / error (a RST, or a FIN) on each socket, itself watched by the loop."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._clients: dict[int, RawClient] = {}
        self.cut_at: dict[RawClient, float] = {}
        self.reset: dict[RawClient, bool] = {}
        self._all = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._epoll.fileno(), self._ready)

    def watch(self, clients: Iterable[RawClient]) -> None:
        for client in clients:
            fd = client.sock.fileno()
            self._clients[fd] = client
            self._epoll.register(fd, select.EPOLLRDHUP)  # (EPOLLHUP, EPOLLERR implied)
        self._ready()

    def _ready(self) -> None:
        now = time.monotonic()
        for fd, _ in self._epoll.poll(0):
            self._epoll.unregister(fd)
            client = self._clients[fd]
            self.cut_at[client] = now
            state = client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
            self.reset[client] = state == 7  # TCP_CLOSE: reset (a FIN leaves CLOSE_WAIT)
        if self._clients and len(self.cut_at) == len(self._clients):
            self._all.set()

    async def wait_all(self, within: float) -> None:
        """Wait until every watched connection is cut, or ``within`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._all.wait()

    def close(self) -> None:
        self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()


async def _cut_within(client: RawClient, within: float) -> float:
    """Seconds until the hub cuts ``client`` (fails after ``within`` seconds)."""
    watch = CutWatch()
    try:
        started = time.monotonic()
        watch.watch([client])
        await watch.wait_all(within)
        assert client in watch.cut_at, f"connection not cut within {within:.1f} s"
        return watch.cut_at[client] - started
    finally:
        watch.close()


def _only_session(node: Node, user: str) -> Session:
    (session,) = node.local_sessions(user)
    return session


def _fill(session: Session, total: int, size: int = 64 * KIB) -> None:
    """Queue ``total`` bytes on ``session`` straight into its outbox and flush them."""
    message = b'"' + b"f" * (size - 2) + b'"'
    for _ in range(total // size):
        session.outbox.push(message)
    session.node.flusher.flush()


# -- the outbox limit is checked before writing ----------------------------------------


class StuckTransport:
    """A transport whose peer never reads: everything written stays buffered."""

    def __init__(self) -> None:
        self.buffered = 0
        self.writes: list[int] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.buffered += len(data)
        self.writes.append(len(data))

    def writelines(self, chunks: list[bytes]) -> None:
        for data in chunks:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def get_extra_info(self, name: str) -> None:
        return None

    def abort(self) -> None:
        self.aborted = True


class OpenProtocol:
    state = State.OPEN


class StuckConnection:
    def __init__(self) -> None:
        self.transport = StuckTransport()
        self.protocol = OpenProtocol()


@pytest.mark.parametrize(
    ("message_size", "per_flush"),
    [(1000, 40), (100, 300)],  # one 40 kB frame per flush; two frames (256 + 44) per flush
)
async def test_an_outbox_never_writes_past_its_limit(message_size: int, per_flush: int) -> None:
    limit = 64 * KIB
    connection = StuckConnection()
    overflows: list[int] = []
    flusher = Flusher(asyncio.get_running_loop(), lambda _: None)
    outbox = Outbox(cast(Connection, connection), JSON, flusher, limit, lambda: overflows.append(1))
    message = b'"' + b"m" * (message_size - 2) + b'"'
    for _ in range(100):
        for _ in range(per_flush):
            outbox.push(message)
        flusher.flush()
        if outbox.closed:
            break
    transport = connection.transport
    assert overflows == [1], f"{len(overflows)} overflows, expected exactly 1"
    assert transport.buffered <= limit, (
        f"{transport.buffered} bytes buffered, over the {limit}-byte limit "
        f"(frames written: {transport.writes})"
    )
    assert transport.buffered + max(transport.writes) > limit, (
        f"cut too early: {transport.buffered} bytes buffered, frames of {max(transport.writes)}"
    )
    outbox.push(message)
    flusher.flush()
    assert transport.buffered <= limit, f"{transport.buffered} bytes buffered after the cut"


async def test_a_flush_cuts_big_messages_into_frames_within_the_server_bound() -> None:
    """Five 300 KiB messages: three fit in one 1 MiB frame, two in the next, in order,
    both written in the same flush."""
    connection = StuckConnection()
    flusher = Flusher(asyncio.get_running_loop(), lambda _: None)
    outbox = Outbox(cast(Connection, connection), JSON, flusher, 64 * 1024 * KIB, lambda: None)
    for _ in range(5):
        outbox.push(b'"' + b"m" * (300 * KIB - 2) + b'"')
    flusher.flush()
    writes = connection.transport.writes
    assert len(writes) == 2 and all(size <= MAX_SERVER_FRAME_BYTES + 10 for size in writes)
    assert writes[0] > 3 * 300 * KIB > writes[1] > 2 * 300 * KIB


@pytest.mark.node_settings(outbox_limit=64 * KIB, ping_interval=0)
async def test_a_real_never_reading_connection_is_cut_within_its_limit(node: Node) -> None:
    limit = 64 * KIB
    sloth = await RawClient.open(node.port, "sloth")
    try:
        session = _only_session(node, "sloth")
        transport = session.connection.transport
        real_write = transport.write
        peak = [0, 0]  # most bytes buffered after a write; largest write

        def observed_write(data: bytes) -> None:
            real_write(data)
            peak[0] = max(peak[0], transport.get_write_buffer_size())
            peak[1] = max(peak[1], len(data))

        transport.write = observed_write  # type: ignore[method-assign]
        started = time.monotonic()
        pushed = 0
        while not session.outbox.closed and pushed < 64 * MIB:
            _fill(session, 32 * KIB, size=KIB)  # 1 KiB messages, 32 per flush
            pushed += 32 * KIB
        assert session.outbox.closed, f"no overflow after {pushed} bytes pushed"
        took = await _cut_within(sloth, 2.0)
        assert peak[0] <= limit + peak[1], (
            f"{peak[0]} bytes buffered at the peak: over the {limit}-byte limit "
            f"by more than one frame ({peak[1]} bytes)"
        )
        await until(lambda: not node.local_sessions("sloth"), "session_ended", 2.0)
        assert node.metrics.closes.labels("4001")._value.get() == 1, "closes{code=4001} != 1"
        assert node.metrics.outbox_drops._value.get() == 1, "outbox_drops != 1"
        print(
            f"\ncut after {pushed / MIB:.1f} MiB pushed (kernel took the rest), "
            f"{took * 1000:.0f} ms after the overflow, {time.monotonic() - started:.2f} s in all; "
            f"user-space peak {peak[0]} B (limit {limit} B)"
        )
    finally:
        sloth.close()


# -- a close is bounded; keepalive death aborts ------------------------------------------


@pytest.mark.node_settings(outbox_limit=64 * MIB, ping_interval=0)
async def test_a_polite_close_to_a_peer_that_never_reads_is_bounded(node: Node) -> None:
    sloth = await RawClient.open(node.port, "sloth")
    try:
        session = _only_session(node, "sloth")
        _fill(session, 8 * MIB)  # far more than the kernel takes: a full user-space buffer
        buffered = session.connection.transport.get_write_buffer_size()
        assert buffered > 1 * MIB, f"only {buffered} bytes buffered: buffers not full"
        close_timeout = session.connection.close_timeout
        assert close_timeout is not None
        session.close(CloseCode.FLOOD, "kept flooding after rate_limited")
        took = await _cut_within(sloth, close_timeout + 2.0)
        assert took <= close_timeout + 1.0, (
            f"cut after {took:.2f} s, over close_timeout {close_timeout} s + 1 s"
        )
        await until(lambda: not node.local_sessions("sloth"), "session_ended", 2.0)
        assert node.metrics.closes.labels("4502")._value.get() == 1, "closes{code=4502} != 1"
        print(f"\npolite close with {buffered} B buffered cut after {took:.2f} s")
    finally:
        sloth.close()


@pytest.mark.node_settings(outbox_limit=64 * MIB, ping_interval=0.5)
async def test_a_silent_connection_with_full_buffers_is_aborted_within_an_interval(
    node: Node,
) -> None:
    interval = node.settings.ping_interval
    sloth = await RawClient.open(node.port, "sloth")  # answers pings until here
    try:
        _fill(_only_session(node, "sloth"), 8 * MIB)
        # the next ping comes within one interval, its verdict one interval later
        bound = 2 * interval + 1.0
        took = await _cut_within(sloth, bound + 2.0)
        assert took <= bound, f"cut {took:.2f} s after it went silent, over {bound:.1f} s"
        await until(lambda: not node.local_sessions("sloth"), "session_ended", 2.0)
        assert node.metrics.closes.labels("1011")._value.get() == 1, "closes{code=1011} != 1"
        print(f"\nsilent connection (interval {interval} s) cut after {took:.2f} s")
    finally:
        sloth.close()


# -- 200 never-reading clients on a real hubbub serve process ----------------------------


def _rss(pid: int) -> int:
    """Resident set size of process ``pid``, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None
    return int(found.group(1)) * KIB


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        name: float(value)
        for name, value in re.findall(r"^(hubbub_[a-z_]+(?:\{[^}]*\})?) (\S+)$", text, re.M)
    }


class RssSampler:
    """Samples a process's RSS every 20 ms from the loop and keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = self.peak = _rss(pid)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, _rss(self.pid))
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


CLIENTS = 200
OUTBOX_LIMIT = 256 * KIB
PING_INTERVAL = 1.0
POST_TEXT = "é" * 495  # ~1 KB of UTF-8 per post
CUT_BOUND = 2 * PING_INTERVAL + 2.0
"""Seconds from a client's last read to its cut: the next ping comes within one interval,
its verdict one interval later (an overflow may cut sooner); 2 s of slack for busy cores."""


async def _post_while(author: WsClient, going: Any) -> list[int]:
    """Post ~1 KB posts one after another while ``going()``; return the acked ids."""
    acked: list[int] = []
    while going():
        acked.append((await author.call("post", text=POST_TEXT))["id"])
    return acked


async def _assert_gets_every_post_and_pings(reader: WsClient, acked: list[int]) -> float:
    """The reading client got every acked post live and both kinds of ping are answered;
    return the WebSocket ping's round trip in ms."""
    expected = set(acked)
    async with asyncio.timeout(10):
        while expected:
            expected.discard((await reader.next_event("feed.insert")).data["id"])
    assert not expected, f"{len(expected)} of {len(acked)} posts missed"
    assert reader.connection.state is State.OPEN, "the reading client was closed"
    started = time.monotonic()
    async with asyncio.timeout(2):
        await (await reader.connection.ping())
    pong_ms = (time.monotonic() - started) * 1000
    assert "time" in await reader.call("ping"), "the ping op went unanswered"
    return pong_ms


async def _assert_hub_cut_and_cleaned_up(port: int, cut: int, left: int) -> tuple[float, float]:
    """The hub counted ``cut`` closes (4001 and 1011 only) and ended their sessions,
    leaving ``left``; return the counts of 4001 and 1011."""
    metrics = await asyncio.to_thread(_metrics, port)
    slow = metrics.get('hubbub_closes_total{code="4001"}', 0)
    silent = metrics.get('hubbub_closes_total{code="1011"}', 0)
    assert slow + silent == cut, f"{slow} 4001 + {silent} 1011 closes, not {cut}"
    assert metrics["hubbub_outbox_drops_total"] == slow, "outbox_drops != 4001 closes"
    deadline = time.monotonic() + 5
    while (sessions := metrics["hubbub_connections"]) != left:
        assert time.monotonic() < deadline, f"{sessions} sessions left, not {left}: no cleanup"
        await asyncio.sleep(0.05)
        metrics = await asyncio.to_thread(_metrics, port)
    return slow, silent


async def test_200_never_reading_clients_are_cut_and_memory_stays_bounded(
    tmp_path: Path,
) -> None:
    rate = "1000000"
    server = ServerProcess(
        tmp_path / "data",
        SECRET,
        *("--outbox-limit", str(OUTBOX_LIMIT), "--ping-interval", str(PING_INTERVAL)),
        *("--request-rate", rate, "--request-burst", rate),
        *("--write-rate", rate, "--write-burst", rate),
        *("--log-level", "warning"),
    )
    port = server.start()
    assert server.process is not None
    rss = RssSampler(server.process.pid)
    rss_bound = rss.baseline + CLIENTS * OUTBOX_LIMIT * 2
    url = f"ws://127.0.0.1:{port}/"
    clients: list[RawClient] = []
    watch = CutWatch()
    author, reader = await WsClient.open(url), await WsClient.open(url)
    try:
        await author.call("auth", token=issue_token("author", SECRET))
        await reader.call("auth", token=issue_token("reader", SECRET))
        await reader.call("follow", user="author")
        clients += await asyncio.gather(
            *(RawClient.open(port, f"sloth{i}", follow="author") for i in range(CLIENTS))
        )
        watch.watch(clients)
        last_stop = max(client.stopped_reading for client in clients)
        posting = True
        poster = asyncio.get_running_loop().create_task(
            _post_while(author, lambda: posting and len(watch.cut_at) < CLIENTS)
        )
        await watch.wait_all(within=last_stop + CUT_BOUND + 3.0 - time.monotonic())
        posting = False
        acked = await poster

        # (a) every never-reading connection cut, with a RST, soon after its last read
        never = float("inf")
        latencies = sorted(watch.cut_at.get(c, never) - c.stopped_reading for c in clients)
        uncut = sum(latency == never for latency in latencies)
        assert not uncut, f"{uncut} of {CLIENTS} never-reading connections not cut"
        assert latencies[-1] <= CUT_BOUND, (
            f"slowest cut {latencies[-1]:.2f} s after the client stopped reading, "
            f"over {CUT_BOUND:.1f} s"
        )
        resets = sum(watch.reset.values())
        assert resets == CLIENTS, f"{resets} of {CLIENTS} cut with a RST (the rest with FIN)"
        slow, silent = await _assert_hub_cut_and_cleaned_up(port, CLIENTS, left=2)

        # (c) the reading client got every post and its pings are answered
        pong_ms = await _assert_gets_every_post_and_pings(reader, acked)

        # (b) the hub's memory stayed bounded throughout
        await rss.stop()
        assert rss.peak <= rss_bound, (
            f"hub RSS peaked at {rss.peak / MIB:.0f} MiB, over the bound of "
            f"{rss_bound / MIB:.0f} MiB (baseline {rss.baseline / MIB:.0f} MiB + "
            f"{CLIENTS} x {OUTBOX_LIMIT // KIB} KiB x 2)"
        )
        print(
            f"\n{len(acked)} posts; {CLIENTS} cut ({slow:.0f} x 4001, {silent:.0f} x 1011), "
            f"{resets} by RST, {latencies[0]:.2f} / {latencies[CLIENTS // 2]:.2f} / "
            f"{latencies[-1]:.2f} s (min / median / max) after their last read; "
            f"hub RSS baseline {rss.baseline / MIB:.1f} MiB, peak {rss.peak / MIB:.1f} MiB "
            f"(bound {rss_bound / MIB:.0f} MiB); reader pong {pong_ms:.1f} ms"
        )
    finally:
        await rss.stop()
        watch.close()
        for client in clients:
            client.close()
        await author.close()
        await reader.close()
        server.kill()
