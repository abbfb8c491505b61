"""The bot framework: declare handlers on a :class:`Bot`, run it with ``hubbub bot run``."""

from __future__ import annotations

from clients.bots.framework import Bot, Mention

__all__ = ["Bot", "Mention"]
