"""The two codecs: JSON (orjson, text frames) and MessagePack (binary frames).

A :class:`Codec` is chosen per connection by its WebSocket subprotocol
(:data:`CODECS`, :func:`codec_for_subprotocol`). Both codecs share every
structural rule (:mod:`protocol.wire`); they differ only in how plain objects
become bytes, how bytes become plain objects, and how pre-encoded messages are
joined into one batch frame without re-encoding.

Decoders raise nothing but :class:`ProtocolError`, whatever the input: the
frame size is checked before parsing, parser failures of any kind are turned
into ``bad_request``, and the MessagePack unpacker is bounded by the frame size.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import msgpack
import orjson

from protocol import limits, wire
from protocol.errors import ErrorCode, ProtocolError
from protocol.messages import ErrorReply, Event, Reply, Request, ServerMessage

__all__ = ["CODECS", "JSON", "MSGPACK", "Codec", "codec_for_subprotocol", "select_subprotocol"]


class Codec(ABC):
    """Encodes messages to frames and decodes frames to messages for one wire format."""

    __slots__ = ()

    name: str
    """Short name: ``json`` or ``msgpack``."""
    subprotocol: str
    """The WebSocket subprotocol that selects this codec, e.g. ``hubbub.v1.json``."""
    binary: bool
    """Whether frames are sent as binary (True) or text (False) WebSocket frames."""

    @abstractmethod
    def _dumps(self, obj: object) -> bytes:
        """Plain objects to bytes."""

    @abstractmethod
    def _loads(self, data: bytes) -> object:
        """Bytes (at most the frame limit) to plain objects; may raise anything."""

    @abstractmethod
    def _array_frame(self, encoded: Sequence[bytes]) -> bytes:
        """One array frame holding several already-encoded messages."""

    def encode_request(self, request: Request) -> bytes:
        """One request as one message (client side)."""
        return self._dumps(wire.request_to_wire(request))

    def encode_reply(self, reply: Reply | ErrorReply) -> bytes:
        """One reply or error reply as one message (hub side)."""
        return self._dumps(wire.reply_to_wire(reply))

    def encode_event(self, event: Event) -> bytes:
        """One event as one message (hub side); see also :class:`PreparedEvent`."""
        return self._dumps(wire.event_to_wire(event))

    def join(self, encoded: Sequence[bytes]) -> bytes:
        """One frame from 1..MAX_BATCH messages encoded by this codec, without re-encoding.

        A single message is returned unchanged; several become a batch array in
        the given order. Raises ValueError for an empty or too long sequence.
        """
        if len(encoded) == 1:
            return encoded[0]
        if not 1 <= len(encoded) <= limits.MAX_BATCH:
            raise ValueError(f"a frame holds 1..{limits.MAX_BATCH} messages, not {len(encoded)}")
        return self._array_frame(encoded)

    def decode_requests(self, frame: bytes | str) -> list[Request | ProtocolError]:
        """The requests of a client frame, in order (hub side).

        Raises ProtocolError when the whole frame is unusable: over
        MAX_CLIENT_FRAME_BYTES (``too_large``), undecodable, neither a map nor
        an array of maps, an empty array or one over MAX_BATCH (``too_large``).
        A bad element of the frame is returned in place as a ProtocolError
        (``bad_request`` or ``unknown_op``, with ``request_id`` when readable).
        """
        items = wire.frame_items(self._load(frame, limits.MAX_CLIENT_FRAME_BYTES))
        return [wire.request_from_wire(item) for item in items]

    def decode_server_frame(self, frame: bytes | str) -> list[ServerMessage]:
        """The replies, error replies and events of a hub frame, in order (client side).

        Events of unknown types are kept (clients ignore them). Raises
        ProtocolError when the frame or any of its messages is malformed.
        """
        items = wire.frame_items(self._load(frame, limits.MAX_SERVER_FRAME_BYTES))
        return [wire.server_message_from_wire(item) for item in items]

    def _load(self, frame: bytes | str, max_bytes: int) -> object:
        # A str is measured before encoding (cheap rejection of huge text) and its
        # UTF-8 bytes after: the limit counts bytes.
        if len(frame) > max_bytes:
            raise _too_large(max_bytes)
        if isinstance(frame, str):
            if self.binary:
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"{self.name} frames must be binary")
            try:
                frame = frame.encode()
            except UnicodeEncodeError:
                raise ProtocolError(ErrorCode.BAD_REQUEST, "the frame is not valid UTF-8") from None
        if len(frame) > max_bytes:
            raise _too_large(max_bytes)
        try:
            return self._loads(frame)
        except Exception as exc:  # any parser failure is the peer's fault, never ours
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, f"not a valid {self.name} frame: {str(exc)[:200]}"
            ) from None

    def __repr__(self) -> str:
        return f"<Codec {self.subprotocol}>"


def _too_large(max_bytes: int) -> ProtocolError:
    return ProtocolError(ErrorCode.TOO_LARGE, f"the frame is over {max_bytes} bytes")


class _JsonCodec(Codec):
    """JSON via orjson: UTF-8 text frames; batches are ``[m1,m2,...]``."""

    __slots__ = ()
    name = "json"
    subprotocol = "hubbub.v1.json"
    binary = False

    def _dumps(self, obj: object) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, data: bytes) -> object:
        return orjson.loads(data)

    def _array_frame(self, encoded: Sequence[bytes]) -> bytes:
        return b"[" + b",".join(encoded) + b"]"


def _reject_ext(code: int, data: bytes) -> object:
    raise ValueError(f"MessagePack extension type {code} is not part of the protocol")


# Packer.pack holds the GIL from start to end and resets itself even when it
# raises, so one module-level packer is safe to share and saves an allocation
# per message.
_pack: Callable[[object], bytes] = msgpack.Packer(use_bin_type=True).pack
_ARRAY16 = struct.Struct(">BH")


class _MsgpackCodec(Codec):
    """MessagePack via msgpack: binary frames; batches are an array header + messages."""

    __slots__ = ()
    name = "msgpack"
    subprotocol = "hubbub.v1.msgpack"
    binary = True

    def _dumps(self, obj: object) -> bytes:
        return _pack(obj)

    def _loads(self, data: bytes) -> object:
        size = len(data)
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_reject_ext,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size // 2,
            max_ext_len=size,
        )

    def _array_frame(self, encoded: Sequence[bytes]) -> bytes:
        count = len(encoded)  # 2..MAX_BATCH: a fixarray or an array 16 header
        header = bytes((0x90 | count,)) if count < 16 else _ARRAY16.pack(0xDC, count)
        return header + b"".join(encoded)


JSON: Codec = _JsonCodec()
"""The ``hubbub.v1.json`` codec."""
MSGPACK: Codec = _MsgpackCodec()
"""The ``hubbub.v1.msgpack`` codec."""

CODECS: dict[str, Codec] = {codec.subprotocol: codec for codec in (JSON, MSGPACK)}
"""The codecs by WebSocket subprotocol, in order of the hub's preference."""


def codec_for_subprotocol(name: str) -> Codec:
    """The codec of a subprotocol name; raises ProtocolError ``bad_request`` if unknown."""
    codec = CODECS.get(name)
    if codec is None:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown subprotocol {name[:64]!r}")
    return codec


def select_subprotocol(offered: Sequence[str]) -> str | None:
    """The subprotocol a hub selects: the first of ``offered`` (the client's order of
    preference) that it supports, or None when it supports none (SPEC section 2)."""
    return next((name for name in offered if name in CODECS), None)
