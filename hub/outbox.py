"""Bounded per-connection outboxes, flushed with one write per connection per flush.

Theory of operation: the fan-out and the session push already-encoded messages
(``bytes`` shared by every recipient) into a connection's :class:`Outbox`. The first
push marks the outbox dirty with its :class:`Flusher`, which schedules one flush for
all dirty outboxes. A flush joins each outbox's pending messages into as few frames as
the batch limits allow (usually one), frames them as WebSocket frames and writes them
to the socket without awaiting.

Two things make a flush cheap when thousands of connections receive the same events:

- frames are *shared*: outboxes holding the same sequence of messages (the same
  ``bytes`` objects, as after a burst from one author) get the same framed bytes, built
  once per flush and written with one ``transport.write`` per connection;
- flushes *pace themselves*: when a connection the last flush wrote to gets messages
  again and that flush took ``d`` seconds, the next flush starts no sooner than about
  ``d`` after it ended (at most :data:`MAX_FLUSH_DELAY`), so a burst to the same
  connections coalesces into bigger batches and fewer writes. Messages to other
  connections (sparse fan-out, where waiting would merge nothing), after a quiet spell,
  or on an idle node go out on the next loop tick.

An outbox whose pending bytes pass its limit, or whose next frame would take the
socket's unsent bytes past it, is *overflowed*: the frame is not written, the outbox
drops what it holds and calls ``on_overflow``, so a connection's buffers never hold more
than the limit and a slow reader never holds memory hostage or delays anyone else. The
session then cuts the connection (:func:`cut`): a best-effort ``slow`` close frame, then
the socket is aborted at once (a close handshake would wait behind the full buffer,
forever if the peer never reads).

Frames are written straight to the transport, bypassing ``websockets``' own send path:
that is safe because the server runs without compression and only whole frames are
written, so they interleave cleanly with the library's own (pings, close).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable

from websockets.asyncio.connection import Connection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from protocol import Codec
from protocol.limits import MAX_BATCH, MAX_SERVER_FRAME_BYTES

__all__ = ["MAX_FLUSH_DELAY", "Flusher", "Outbox", "cut"]

MAX_FLUSH_DELAY = 0.010
"""Longest a flush waits to let messages coalesce after a slow flush, in seconds."""

_LINGER_RESET = struct.pack("ii", 1, 0)
"""``SO_LINGER`` on, zero seconds: closing the socket discards its send queue with a RST."""

SharedFrames = dict[tuple[bool, tuple[int, ...]], tuple[bytes, list[bytes]]]
"""Framed bytes of this flush, by (binary?, ids of the messages they hold).

Each entry also keeps its messages alive, so their ids cannot be reused meanwhile."""


class Flusher:
    """Flushes every outbox that received messages since the last flush, once."""

    __slots__ = ("_count_frames", "_dirty", "_loop", "_not_before", "_round", "_scheduled")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, count_frames: Callable[[int], object]
    ) -> None:
        self._loop = loop
        self._count_frames = count_frames
        self._dirty: list[Outbox] = []
        self._scheduled = False
        self._not_before = 0.0
        """Loop time before which a paced flush waits (0: none, flush on the next tick)."""
        self._round = 0
        """The number of the last flush (:attr:`Outbox.flushed_in` compares with it)."""

    def mark(self, outbox: Outbox) -> None:
        """Remember ``outbox`` for the next flush, scheduling one if none is pending
        (paced when the last flush wrote to ``outbox`` too, see the module's notes)."""
        self._dirty.append(outbox)
        if not self._scheduled:
            self._scheduled = True
            again = self._not_before and outbox.flushed_in == self._round
            wait = self._not_before - self._loop.time() if again else 0.0
            if wait > 0:
                self._loop.call_later(wait, self.flush)
            else:
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what every dirty outbox holds; called by the loop, or directly to drain."""
        started = time.perf_counter()
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        self._round += 1
        for outbox in dirty:
            outbox.flushed_in = self._round
        shared: SharedFrames = {}
        self._count_frames(sum(outbox.write_pending(shared) for outbox in dirty))
        took = time.perf_counter() - started
        self._not_before = self._loop.time() + min(took, MAX_FLUSH_DELAY) if took > 0.001 else 0.0


def _frame(codec: Codec, messages: list[bytes]) -> bytes:
    opcode = Opcode.BINARY if codec.binary else Opcode.TEXT
    return Frame(opcode, codec.join(messages)).serialize(mask=False)


class Outbox:
    """The messages waiting to be written to one connection."""

    __slots__ = (
        "_connection",
        "_flusher",
        "_pending",
        "_pending_bytes",
        "closed",
        "codec",
        "flushed_in",
        "limit",
        "on_overflow",
    )

    def __init__(
        self,
        connection: Connection,
        codec: Codec,
        flusher: Flusher,
        limit: int,
        on_overflow: Callable[[], None],
    ) -> None:
        self._connection = connection
        self.codec = codec
        self._flusher = flusher
        self.limit = limit
        self.on_overflow = on_overflow
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.closed = False
        self.flushed_in = 0
        """The number of the last flush that wrote this outbox (0: none yet)."""

    def push(self, message: bytes) -> None:
        """Queue one encoded message; overflow cuts the connection instead of queueing."""
        if self.closed:
            return
        if not self._pending:
            self._flusher.mark(self)
        self._pending.append(message)
        self._pending_bytes += len(message)
        if self._pending_bytes > self.limit:
            self.overflow()

    def push_all(self, messages: list[bytes], size: int) -> None:
        """Queue encoded messages of ``size`` bytes in all, as :meth:`push` would one by
        one (the list is shared with other outboxes: it is copied, never kept)."""
        if self.closed:
            return
        if not self._pending:
            self._flusher.mark(self)
        self._pending.extend(messages)
        self._pending_bytes += size
        if self._pending_bytes > self.limit:
            self.overflow()

    def overflow(self) -> None:
        """Cut this connection as too slow: drop what is pending and call ``on_overflow``."""
        self.close()
        self.on_overflow()

    def close(self) -> None:
        """Drop whatever is pending and refuse further pushes."""
        self.closed = True
        self._pending = []
        self._pending_bytes = 0

    def write_pending(self, shared: SharedFrames) -> int:
        """Write pending messages as batch frames; return how many frames were written.

        ``shared`` caches framed bytes for the duration of one flush, so outboxes
        holding the same messages share one frame.
        """
        pending = self._pending
        if self.closed or not pending:
            return 0
        self._pending = []
        self._pending_bytes = 0
        connection = self._connection
        if connection.protocol.state is not State.OPEN:
            return 0
        transport = connection.transport
        binary = self.codec.binary
        room = self.limit - transport.get_write_buffer_size()
        frames: list[bytes] = []
        overflowed = False
        start, count = 0, len(pending)
        while start < count:
            chunk = pending[start : start + MAX_BATCH]
            if sum(map(len, chunk)) + len(chunk) > MAX_SERVER_FRAME_BYTES:
                chunk = _fitting(chunk)
            key = (binary, tuple(map(id, chunk)))
            framed = shared.get(key)
            if framed is None:
                framed = shared[key] = (_frame(self.codec, chunk), chunk)
            frame = framed[0]
            room -= len(frame)
            if room < 0:  # checked before writing: buffers never pass the limit
                overflowed = True
                break
            frames.append(frame)
            start += len(chunk)
        if len(frames) == 1:
            transport.write(frames[0])
        elif frames:
            transport.writelines(frames)  # written together
        if overflowed:
            self.overflow()
        return len(frames)


def _fitting(messages: list[bytes]) -> list[bytes]:
    """The longest prefix of ``messages`` (one at least) that fits in one server frame."""
    size = 0
    for end, message in enumerate(messages):
        size += len(message) + 1
        if size > MAX_SERVER_FRAME_BYTES and end:
            return messages[:end]
    return messages


def cut(connection: Connection, code: int, reason: str) -> None:
    """End ``connection`` now, without a close handshake that waits for a drain.

    The close frame (``code``, ``reason``) is written straight to the transport, so a
    peer whose buffers still have room reads it; then the socket is aborted with
    ``SO_LINGER`` 0, so the kernel discards its send queue and sends a RST instead of
    keeping the socket (and what it holds) until a peer that never reads gives up.
    websockets then reports the connection lost: the session's receive loop ends and
    its cleanup runs. Idempotent.
    """
    transport = connection.transport
    if not transport.is_closing():  # once closing, the socket (and its fd) may be gone
        protocol = connection.protocol
        if protocol.state is State.OPEN:
            protocol.send_close(code, reason)
            for data in protocol.data_to_send():
                if data:
                    transport.write(data)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()
