"""Row helpers the embedded store's modules share: keyset pages of rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hub.records import Page

__all__ = ["NO_BOUND", "Row", "rows_page"]

T = TypeVar("T")
Row = tuple[Any, ...]
"""One result row."""

NO_BOUND = 2**63 - 1
"""The ``before`` bound of a first page (above every id)."""


def rows_page(rows: list[Row], limit: int, convert: Callable[[Row], T]) -> Page[T]:
    """A page from up to ``limit + 1`` rows whose first column is the cursor key."""
    more = len(rows) > limit
    rows = rows[:limit]
    items = tuple(convert(row[1:]) for row in rows)
    return Page(items, str(rows[-1][0]) if more and rows else None)
