"""The Hubbub v1 wire protocol, sans-I/O: messages, codecs, errors and limits.

Typical hub-side use::

    codec = codec_for_subprotocol(websocket.subprotocol)
    for item in codec.decode_requests(frame):
        if isinstance(item, ProtocolError):
            send(codec.encode_reply(ErrorReply.from_error(item)))
        else:
            handle(item.id, item.op)          # item.op is an ops.* dataclass

SPEC.md (next to this file) is the normative description; vectors/ holds golden
encodings of every message.
"""

from __future__ import annotations

from protocol import limits, ops
from protocol.codec import (
    CODECS,
    JSON,
    MSGPACK,
    Codec,
    codec_for_subprotocol,
    select_subprotocol,
)
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.events import PreparedEvent
from protocol.messages import ErrorReply, Event, EventType, Reply, Request, ServerMessage
from protocol.ops import OPERATIONS, Operation

__all__ = [
    "CODECS",
    "JSON",
    "MSGPACK",
    "OPERATIONS",
    "CloseCode",
    "Codec",
    "ErrorCode",
    "ErrorReply",
    "Event",
    "EventType",
    "Operation",
    "PreparedEvent",
    "ProtocolError",
    "Reply",
    "Request",
    "ServerMessage",
    "codec_for_subprotocol",
    "limits",
    "ops",
    "select_subprotocol",
]
