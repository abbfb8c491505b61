"""The wall clock the node reads: milliseconds since the Unix epoch."""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """The current time in milliseconds since the epoch (the wire's timestamps)."""
    return int(time.time() * 1000)
