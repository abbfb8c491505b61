"""Events encoded once and shared by every recipient.

The hub's fan-out wraps each event in a :class:`PreparedEvent` and hands the
same object to every recipient's outbox; each outbox asks for the bytes of its
connection's codec. The first request per codec encodes, the rest get the
cached bytes, so an event costs at most one encoding per codec however many
recipients it has.
"""

from __future__ import annotations

from protocol.codec import Codec
from protocol.messages import Event

__all__ = ["PreparedEvent"]


class PreparedEvent:
    """One event plus its encodings, made lazily at most once per codec."""

    __slots__ = ("_encoded", "event")

    def __init__(self, event: Event) -> None:
        self.event = event
        """The event itself."""
        self._encoded: dict[Codec, bytes] = {}

    def bytes_for(self, codec: Codec) -> bytes:
        """The event encoded as one message by ``codec`` (cached after the first call)."""
        encoded = self._encoded.get(codec)
        if encoded is None:
            encoded = self._encoded[codec] = codec.encode_event(self.event)
        return encoded

    def __repr__(self) -> str:
        return f"PreparedEvent({self.event!r})"
