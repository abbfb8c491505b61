"""A lean WebSocket client for the load generator: frames handed over as offsets.

Theory of operation: the opening handshake is the ``websockets`` library's sans-I/O
:class:`~websockets.client.ClientProtocol` (its request, its checks of the response).
After it, this module reads the server's frames itself, because the per-frame cost of a
general client (a generator-based parser, a queue, a task switch, UTF-8 decoding of
every text frame) is what capped the load generator below the hub it measured.

:meth:`RawWebSocket.data_received` walks the bytes the loop hands it: for each whole
data frame it calls :meth:`FrameSink.frame_received` with the received buffer and the
payload's start and end offsets: no copy, no decoding, so the sink can count what it
needs in C (``bytes.count`` / ``find`` over a range). A frame cut across reads waits in
a buffer until its last byte arrives. Pings are answered with pongs, a close frame is
answered and the socket closed, fragmented messages are joined before they are handed
over (the hub never fragments). Server frames must be unmasked and use no reserved bits
(no extension is negotiated); anything else fails the connection with 1002, a frame
over ``max_size`` with 1009. Frames sent are masked, as RFC 6455 requires of clients,
and serialized by ``websockets.frames``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Protocol

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

__all__ = ["ConnectionClosed", "FrameSink", "HandshakeFailed", "RawWebSocket"]

_END_OF_HEAD = b"\r\n\r\n"
_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
ABNORMAL_CLOSURE = 1006
"""``close_code`` of a connection that ended without a close frame (RFC 6455 7.1.5)."""
NO_STATUS = 1005
"""``close_code`` of a close frame that carried no code."""


class ConnectionClosed(Exception):
    """Sending on a connection that is closed or closing."""


class HandshakeFailed(Exception):
    """The server did not accept the WebSocket upgrade (status, headers, subprotocol)."""


class FrameSink(Protocol):
    """What a :class:`RawWebSocket` hands its frames and its end to."""

    def frame_received(self, data: bytes, start: int, end: int, binary: bool) -> None:
        """A whole data frame: its payload is ``data[start:end]``."""

    def connection_closed(self, socket: RawWebSocket) -> None:
        """The connection is gone (``socket.close_code`` says how)."""


class RawWebSocket(asyncio.Protocol):
    """The client side of one WebSocket connection (use :meth:`connect`)."""

    def __init__(self, sink: FrameSink, max_size: int) -> None:
        self._sink = sink
        self._max_size = max_size
        self.transport: asyncio.Transport | None = None
        self._handshake: ClientProtocol | None = None
        self._head = bytearray()
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rest = bytearray()
        self._need = 0
        self._fragments: list[bytes] = []
        self._fragments_binary = False
        self._closing = False  # a close frame was sent: send nothing more
        self._finished = False  # a close frame came, or the connection failed: read no more
        self.subprotocol: Subprotocol | None = None
        self.close_code: int | None = None
        """The code of the close frame received, 1006 if none came; None while open."""

    @classmethod
    async def connect(
        cls,
        url: str,
        sink: FrameSink,
        subprotocols: Sequence[Subprotocol] | None,
        max_size: int,
        timeout: float,  # noqa: ASYNC109 - it bounds the TCP connect and the handshake
        *,
        tls: ssl.SSLContext | None = None,
    ) -> RawWebSocket:
        """Open a TCP connection to ``url`` and complete the opening handshake.

        ``wss://`` URLs are verified with ``tls``, by default against the system's
        certificate authorities. Raises OSError, TimeoutError or :class:`HandshakeFailed`.
        """
        uri = parse_uri(url)
        context = (tls or ssl.create_default_context()) if uri.secure else None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            _, socket = await loop.create_connection(
                lambda: cls(sink, max_size), uri.host, uri.port, ssl=context
            )
            try:
                client = socket._handshake = ClientProtocol(
                    uri, subprotocols=subprotocols, max_size=max_size
                )
                client.send_request(client.connect())
                socket._write_all(client.data_to_send())
                await asyncio.shield(socket._opened)
            except BaseException:
                socket.abort()
                raise
        return socket

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment]  # a TCP transport

    def data_received(self, data: bytes) -> None:
        """Bytes from the server: the handshake's response first, then frames."""
        if not self._opened.done():
            data = self._receive_head(data)
            if not data:
                return
        if self._rest:
            self._rest += data
            if len(self._rest) < self._need:
                return
            data = bytes(self._rest)
            self._rest.clear()
        self._need = 0
        parsed = self._parse(data)
        if parsed < len(data) and not self._finished:
            self._rest += memoryview(data)[parsed:]

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is gone: fail a pending handshake, tell the sink."""
        self._closing = self._finished = True
        if self.close_code is None:
            self.close_code = ABNORMAL_CLOSURE
        if not self._opened.done():
            self._opened.set_exception(ConnectionResetError("closed during the handshake"))
            self._opened.exception()  # retrieved: connect() may have timed out already
        elif not self._closed.done():
            self._sink.connection_closed(self)
        if not self._closed.done():
            self._closed.set_result(None)

    # -- receiving ------------------------------------------------------------------

    def _receive_head(self, data: bytes) -> bytes:
        """Feed the response head to the handshake; return what follows it."""
        self._head += data
        end = self._head.find(_END_OF_HEAD)
        if end < 0:
            if len(self._head) > 65536:
                self._fail_handshake(HandshakeFailed("the response head is too long"))
            return b""
        head, rest = bytes(self._head[: end + 4]), bytes(self._head[end + 4 :])
        self._head = bytearray()
        client = self._handshake
        assert client is not None
        client.receive_data(head)
        client.events_received()
        if client.handshake_exc is not None or client.state is not State.OPEN:
            # a refusal with a body leaves the parser waiting for it: the status says no
            reason = client.handshake_exc or head.split(b"\r\n", 1)[0].decode(errors="replace")
            self._fail_handshake(HandshakeFailed(f"the upgrade was refused: {reason}"))
            return b""
        self.subprotocol = client.subprotocol
        self._handshake = None
        self._opened.set_result(None)
        return rest

    def _fail_handshake(self, exc: Exception) -> None:
        if not self._opened.done():
            self._opened.set_exception(exc)
        self.abort()

    def _parse(self, data: bytes) -> int:
        """Hand over every whole frame of ``data``; return the offset of the rest."""
        position, size, sink = 0, len(data), self._sink
        while size - position >= 2 and not self._finished:
            first, length = data[position], data[position + 1]
            head = position + 2
            if length >= 126:  # a masked frame's length byte is >= 128, so it lands here
                if length & 0x80:
                    self._fail(1002, "masked server frame")
                    break
                width = 2 if length == 126 else 8
                if size - head < width:
                    break
                length = int.from_bytes(data[head : head + width], "big")
                head += width
                if length > self._max_size:
                    self._fail(1009, "frame too big")
                    break
            end = head + length
            if end > size:
                self._need = end - position
                break
            if first in (_FIN_TEXT, _FIN_BINARY) and not self._fragments:
                sink.frame_received(data, head, end, first == _FIN_BINARY)
            else:
                self._other_frame(first, data[head:end])
            position = end
        return position

    def _other_frame(self, first: int, payload: bytes) -> None:
        """Control frames, fragments, and what the protocol forbids."""
        opcode, fin = first & 0x0F, bool(first & 0x80)
        if first & 0x70:
            self._fail(1002, "reserved bits set")
        elif opcode >= Opcode.CLOSE and (not fin or len(payload) > 125):
            self._fail(1002, "bad control frame")
        elif opcode == Opcode.PING:
            self._send_frame(Frame(Opcode.PONG, payload))
        elif opcode == Opcode.PONG:
            pass
        elif opcode == Opcode.CLOSE:
            self._close_received(payload)
        elif opcode in (Opcode.TEXT, Opcode.BINARY) and not self._fragments:
            self._fragments, self._fragments_binary = [payload], opcode == Opcode.BINARY
        elif opcode == Opcode.CONT and self._fragments:
            self._fragments.append(payload)
            if sum(map(len, self._fragments)) > self._max_size:
                self._fail(1009, "message too big")
            elif fin:
                message, self._fragments = b"".join(self._fragments), []
                self._sink.frame_received(message, 0, len(message), self._fragments_binary)
        else:
            self._fail(1002, f"unexpected opcode {opcode}")

    def _close_received(self, payload: bytes) -> None:
        self._finished = True
        try:
            close = Close.parse(payload)
        except Exception:  # a malformed close frame still ends the connection
            self.close_code, answer = 1002, Close(1002, "bad close frame").serialize()
        else:
            self.close_code = close.code if payload else NO_STATUS
            answer = Close(close.code, "").serialize() if payload else b""
        if not self._closing:
            self._closing = True
            self._send_frame(Frame(Opcode.CLOSE, answer))
        if self.transport is not None:
            self.transport.close()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection: send a close frame and drop the socket."""
        self._finished = True
        if not self._closing:
            self._send_frame(Frame(Opcode.CLOSE, Close(code, reason).serialize()))
            self._closing = True
        self.close_code = code
        self.abort()

    # -- sending --------------------------------------------------------------------

    def _write_all(self, chunks: list[bytes]) -> None:
        assert self.transport is not None
        for chunk in chunks:
            self.transport.write(chunk)

    def _send_frame(self, frame: Frame) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame.serialize(mask=True))

    def send(self, message: str | bytes, text: bool) -> None:
        """Send one message as a text or binary frame; raise ConnectionClosed if closing."""
        if self._closing or self.transport is None or self.transport.is_closing():
            raise ConnectionClosed("the connection is closed")
        payload = message.encode() if isinstance(message, str) else message
        self._send_frame(Frame(Opcode.TEXT if text else Opcode.BINARY, payload))

    async def close(self, code: int = 1000) -> None:
        """Start the closing handshake and wait until the socket is gone."""
        if not self._closing:
            self._closing = True
            self._send_frame(Frame(Opcode.CLOSE, Close(code, "").serialize()))
        await self.wait_closed()

    def abort(self) -> None:
        """Drop the TCP connection at once, as a network cut would."""
        self._closing = self._finished = True
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the socket is gone."""
        await asyncio.shield(self._closed)
