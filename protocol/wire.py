"""Messages to plain objects and back: the structure every codec shares.

Theory of operation: a codec turns bytes into plain objects (dict, list, str,
int, float, bool, None) and back; this module turns plain objects into
messages and back, so the structural rules are written once for all codecs.

Encoders build maps in the canonical key order (SPEC.md section 3), which is
what makes encodings byte-for-byte reproducible:

* request ``id, op, args`` (args in the operation's field order),
* reply ``re, result``; error ``re, error{code, message, retry_after}``,
* event ``ev, cursor, data``.

Decoders accept keys in any order and ignore unknown ones. A frame is one map
or an array of 1..MAX_BATCH maps. On the hub side a bad element of a batch
becomes a :class:`ProtocolError` in the result list (so the rest still runs);
on the client side any bad element fails the whole frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from protocol import limits
from protocol.errors import ErrorCode, ProtocolError
from protocol.messages import ErrorReply, Event, Reply, Request, ServerMessage
from protocol.ops import OPERATIONS
from protocol.validate import wire_id

__all__ = [
    "event_to_wire",
    "frame_items",
    "reply_to_wire",
    "request_from_wire",
    "request_to_wire",
    "server_message_from_wire",
]

_ERROR_CODES = {code.value: code for code in ErrorCode}


def _bad(message: str, request_id: int | None = None) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message, request_id=request_id)


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return mapping if type(mapping) is dict else dict(mapping)


def request_to_wire(request: Request) -> dict[str, object]:
    """The plain map of a request."""
    return {"id": request.id, "op": request.op.NAME, "args": request.op.to_args()}


def reply_to_wire(reply: Reply | ErrorReply) -> dict[str, object]:
    """The plain map of a reply or an error reply."""
    if isinstance(reply, Reply):
        return {"re": reply.id, "result": _plain(reply.result)}
    error: dict[str, object] = {"code": reply.code.value, "message": reply.message}
    if reply.retry_after is not None:
        error["retry_after"] = float(reply.retry_after)
    return {"re": reply.id, "error": error}


def event_to_wire(event: Event) -> dict[str, object]:
    """The plain map of an event."""
    return {"ev": event.type, "cursor": event.cursor, "data": _plain(event.data)}


def frame_items(frame: object) -> list[object]:
    """The messages of a decoded frame: a map alone, or the maps of a batch array.

    Raises ProtocolError when the frame is neither, an empty array, or an array
    of more than MAX_BATCH elements (``too_large``).
    """
    if isinstance(frame, dict):
        return [frame]
    if not isinstance(frame, list):
        raise _bad("a frame must be a map or an array of maps")
    if not frame:
        raise _bad("a batch must not be empty")
    if len(frame) > limits.MAX_BATCH:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"a batch holds at most {limits.MAX_BATCH}")
    return frame


def request_from_wire(item: object) -> Request | ProtocolError:
    """The request a plain map stands for, or the error to reply with.

    The error carries ``request_id`` whenever the map had a valid ``id``, and ``op``
    whenever its ``op`` was a string too.
    """
    if not isinstance(item, dict):
        return _bad("a request must be a map")
    if item.get("id") is None:
        return _bad("a request needs an 'id'")
    try:
        request_id = wire_id(item["id"], "id", minimum=0)
    except ProtocolError as error:
        return error
    name = item.get("op")
    if type(name) is not str:
        return _bad("'op' must be a string", request_id)
    operation = OPERATIONS.get(name)
    if operation is None:
        return ProtocolError(
            ErrorCode.UNKNOWN_OP,
            f"unknown operation {name[:64]!r}",
            request_id=request_id,
            op=name[:64],
        )
    args = item.get("args", {})
    try:
        if not isinstance(args, dict):
            raise _bad("'args' must be a map")
        return Request(request_id, operation.from_args(args))
    except ProtocolError as error:
        error.request_id, error.op = request_id, name
        return error


def _map(item: dict[Any, Any], key: str) -> dict[str, Any]:
    value = item.get(key)
    if not isinstance(value, dict):
        raise _bad(f"{key!r} must be a map")
    return value


def _string(item: dict[Any, Any], key: str) -> str:
    value = item.get(key)
    if type(value) is not str:
        raise _bad(f"{key!r} must be a string")
    return value


def _event(item: dict[Any, Any]) -> Event:
    event_type = _string(item, "ev")
    if not event_type:
        raise _bad("'ev' must not be empty")
    cursor = item.get("cursor")
    if cursor is not None and (type(cursor) is not str or not limits.CURSOR_RE.fullmatch(cursor)):
        raise _bad("'cursor' must be null or a cursor string")
    return Event(event_type, cursor, _map(item, "data"))


def _retry_after(error: dict[Any, Any]) -> float | None:
    value = error.get("retry_after")
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise _bad("'retry_after' must be a non-negative number of seconds")
    return float(value)


def _error_reply(item: dict[Any, Any]) -> ErrorReply:
    request_id = item.get("re")
    if request_id is not None:
        request_id = wire_id(request_id, "re", minimum=0)
    error = _map(item, "error")
    # Codes newer than this client are reported as ``internal`` (SPEC.md section 8).
    code = _ERROR_CODES.get(_string(error, "code"), ErrorCode.INTERNAL)
    return ErrorReply(request_id, code, _string(error, "message"), _retry_after(error))


def server_message_from_wire(item: object) -> ServerMessage:
    """The reply, error reply or event a plain map stands for; raises ProtocolError."""
    if not isinstance(item, dict):
        raise _bad("a server message must be a map")
    if "ev" in item:
        return _event(item)
    if "result" in item:
        return Reply(wire_id(item.get("re"), "re", minimum=0), _map(item, "result"))
    if "error" in item:
        return _error_reply(item)
    raise _bad("a server message must be a reply, an error or an event")
