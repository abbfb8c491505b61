"""What one worker measures: deliveries, latency, errors and exactly-once receipt.

Every post a simulated user publishes carries ``lt:<author>:<seq>:<send ns>`` in its
text (``<author>`` is the user number, ``<seq>`` counts that author's posts, ``<send
ns>`` is ``time.time_ns()`` when the request was sent; publishers and receivers share
the machine's clock). A receiver parses the text, so latency needs no id lookup, and
keeps per (receiver, author) a byte per ``seq`` counting receipts: 0 afterwards means
missed, more than 1 duplicated.

Counted users (the connections that count post events in raw frames, see
:mod:`clients.loadtest.connection`) keep two numbers instead: posts received once and
posts repeated (their cursor was not above one already seen). Their check compares the
first with what their followees published: fewer is missed, more unexpected. Their
latency comes per frame: the first and the last post of a frame, each standing for half
of the frame's posts.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clients.loadtest.histogram import LatencyHistogram, quantize_us

__all__ = ["TEXT_PREFIX", "Correctness", "Recorder", "parse_text"]

TEXT_PREFIX = "lt:"


def parse_text(text: str) -> tuple[int, int, int] | None:
    """(author, seq, send ns) from a load-test post text, or None for any other text."""
    if not text.startswith(TEXT_PREFIX):
        return None
    parts = text.split(":", 4)
    if len(parts) < 4 or not (parts[1].isdigit() and parts[2].isdigit() and parts[3].isdigit()):
        return None
    return int(parts[1]), int(parts[2]), int(parts[3])


@dataclass(slots=True)
class Correctness:
    """Exactly-once accounting: expected receipts, missing ones, repeats, strays."""

    expected: int = 0
    received: int = 0
    missed: int = 0
    duplicated: int = 0
    unexpected: int = 0

    def add(self, other: Correctness) -> None:
        """Add another worker's counts."""
        self.expected += other.expected
        self.received += other.received
        self.missed += other.missed
        self.duplicated += other.duplicated
        self.unexpected += other.unexpected


@dataclass
class Recorder:
    """Counters of one worker process; merged by :mod:`clients.loadtest.workers`."""

    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    deliveries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    connections_up: int = 0
    resyncs: int = 0
    reconnects: int = 0
    cursor_regressions: int = 0
    first_send_ns: int = 0
    last_receive_ns: int = 0
    published: dict[int, list[int]] = field(default_factory=dict)
    _receipts: dict[int, dict[int, bytearray]] = field(default_factory=dict)
    _counts: dict[int, int] = field(default_factory=dict)
    _repeats: Counter[int] = field(default_factory=Counter)
    _next_seq: Counter[int] = field(default_factory=Counter)
    _interval_deliveries: int = 0
    _interval: Counter[int] = field(default_factory=Counter)

    def post_text(self, author: int) -> tuple[int, str]:
        """A fresh (seq, text) for the next post of ``author``, stamped now."""
        seq = self._next_seq[author]
        self._next_seq[author] = seq + 1
        now = time.time_ns()
        if not self.first_send_ns:
            self.first_send_ns = now
        return seq, f"{TEXT_PREFIX}{author}:{seq}:{now}"

    def acknowledged(self, author: int, seq: int) -> None:
        """The hub acknowledged post ``seq`` of ``author``: followers must get it once."""
        self.published.setdefault(author, []).append(seq)

    def cursor_moved(self, old: str | None, new: str) -> None:
        """Count an event whose cursor is below the previous one's (events must arrive
        in cursor order). Cursors are opaque: only decimal ones (the hub's) are compared."""
        if old is not None and old.isdigit() and new.isdigit() and int(new) < int(old):
            self.cursor_regressions += 1

    def error(self, code: str) -> None:
        """Count an error reply, failed connection or unexpected close by its code."""
        self.errors[code] += 1

    def delivered(self, user: int, text: str) -> None:
        """User ``user`` received a post with ``text`` (other texts are ignored)."""
        parsed = parse_text(text)
        if parsed is None:
            return
        author, seq, sent_ns = parsed
        now = time.time_ns()
        by_author = self._receipts.setdefault(user, {})
        counts = by_author.get(author)
        if counts is None:
            counts = by_author[author] = bytearray()
        if seq >= len(counts):
            counts.extend(bytes(seq + 1 - len(counts)))
        seen = counts[seq]
        counts[seq] = min(seen + 1, 255)
        if seen:
            return
        self._interval[quantize_us((now - sent_ns) // 1000)] += 1
        self.deliveries += 1
        self._interval_deliveries += 1
        self.last_receive_ns = now

    def count_only(self, user: int) -> None:
        """From now on ``user`` reports posts by :meth:`counted` and :meth:`tallied`."""
        self._counts.setdefault(user, 0)

    def counted(self, user: int, posts: int, first_sent_ns: int, last_sent_ns: int) -> None:
        """Counted user ``user`` received ``posts`` new posts in one frame, the first
        sent at ``first_sent_ns`` and the last at ``last_sent_ns``."""
        now = time.time_ns()
        self._counts[user] += posts
        later = posts // 2
        self._interval[quantize_us((now - first_sent_ns) // 1000)] += posts - later
        if later:
            self._interval[quantize_us((now - last_sent_ns) // 1000)] += later
        self.deliveries += posts
        self._interval_deliveries += posts
        self.last_receive_ns = now

    def tallied(self, user: int, text: str, repeat: bool) -> None:
        """Counted user ``user`` received a decoded post with ``text`` (other texts are
        ignored), a repeat when its cursor was not above one already seen."""
        parsed = parse_text(text)
        if parsed is None:
            return
        if repeat:
            self._repeats[user] += 1
        else:
            self.counted(user, 1, parsed[2], parsed[2])

    def take_interval(self) -> tuple[int, LatencyHistogram]:
        """Deliveries and latencies since the last call (for progress and the timeline)."""
        interval = LatencyHistogram()
        interval.record_all(self._interval)
        self.histogram.add(interval)
        taken = self._interval_deliveries, interval
        self._interval_deliveries, self._interval = 0, Counter()
        return taken

    def correctness(
        self, expectations: Iterable[tuple[int, Iterable[int]]], published: dict[int, list[int]]
    ) -> Correctness:
        """Check receipts against ``published`` (author -> acknowledged seqs, all workers).

        ``expectations`` gives, per measured user, the authors whose every post that
        user must receive exactly once. Receipts from other authors only count toward
        ``duplicated`` (a repeat is wrong whoever the author) and ``received``.
        """
        result = Correctness()
        for user, authors in expectations:
            if user in self._counts:
                self._check_count(result, user, authors, published)
                continue
            by_author = self._receipts.get(user, {})
            for author in authors:
                counts = by_author.get(author, bytearray())
                for seq in published.get(author, ()):
                    result.expected += 1
                    if seq >= len(counts) or not counts[seq]:
                        result.missed += 1
        acknowledged = {a: set(seqs) for a, seqs in published.items()}
        for by_author in self._receipts.values():
            for author, counts in by_author.items():
                known = acknowledged.get(author, set())
                for seq, count in enumerate(counts):
                    if count:
                        result.received += 1
                        result.duplicated += count - 1
                        result.unexpected += seq not in known
        for user, count in self._counts.items():
            result.received += count + self._repeats[user]
            result.duplicated += self._repeats[user]
        return result

    def _check_count(
        self,
        result: Correctness,
        user: int,
        authors: Iterable[int],
        published: dict[int, list[int]],
    ) -> None:
        expected = sum(len(published.get(author, ())) for author in authors)
        count = self._counts[user]
        result.expected += expected
        result.missed += max(expected - count, 0)
        result.unexpected += max(count - expected, 0)

    def totals(self) -> dict[str, Any]:
        """This worker's share of the final result, in a form that pickles small.

        Call after the last :meth:`take_interval`, which folds latencies into the total.
        """
        return {
            "histogram": self.histogram.encode(),
            "deliveries": self.deliveries,
            "errors": dict(self.errors),
            "resyncs": self.resyncs,
            "reconnects": self.reconnects,
            "cursor_regressions": self.cursor_regressions,
            "first_send_ns": self.first_send_ns,
            "last_receive_ns": self.last_receive_ns,
            "published": sum(map(len, self.published.values())),
        }
