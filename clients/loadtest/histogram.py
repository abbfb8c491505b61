"""Latency histograms: an HDR histogram in microseconds, mergeable across processes.

Values from 1 us to 10 minutes are kept with 3 significant digits (0.1 % precision),
so a reported percentile is within 0.1 % of the exact value of the recorded samples
(0.2 % for latencies counted through :func:`quantize_us` first).
"""

from __future__ import annotations

from collections.abc import Mapping

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

__all__ = ["PERCENTILES", "LatencyHistogram", "quantize_us"]

LOWEST_US = 1
HIGHEST_US = 600_000_000
SIGNIFICANT_DIGITS = 3

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}
"""Report key -> percentile."""


def quantize_us(value: int) -> int:
    """``value`` rounded down to 10 significant bits (within 0.1 %), so that a worker
    can count latencies in a dict cheaply and record them in bulk."""
    shift = value.bit_length() - 10
    return value if shift <= 0 else (value >> shift) << shift


class LatencyHistogram:
    """Latencies in microseconds; record, merge, encode, and read percentiles in ms."""

    def __init__(self) -> None:
        self._hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def record_us(self, value: int, count: int = 1) -> None:
        """Record a latency in microseconds ``count`` times (clamped into the range)."""
        self._hdr.record_value(min(max(value, LOWEST_US), HIGHEST_US), count)

    def record_all(self, counts: Mapping[int, int]) -> None:
        """Record many latencies: microseconds -> how many times."""
        for value, count in counts.items():
            self.record_us(value, count)

    @property
    def count(self) -> int:
        """How many values were recorded."""
        return int(self._hdr.get_total_count())

    def add(self, other: LatencyHistogram) -> None:
        """Add another histogram's counts to this one."""
        self._hdr.add(other._hdr)

    def percentile_ms(self, percentile: float) -> float:
        """The value at ``percentile`` (0..100), in milliseconds; 0 when empty."""
        if not self.count:
            return 0.0
        return float(self._hdr.get_value_at_percentile(percentile)) / 1000.0

    def summary_ms(self) -> dict[str, float]:
        """p50, p90, p99, p99.9, max and mean in milliseconds, plus the count."""
        result = {key: self.percentile_ms(p) for key, p in PERCENTILES.items()}
        empty = not self.count
        result["max"] = 0.0 if empty else float(self._hdr.get_max_value()) / 1000.0
        result["mean"] = 0.0 if empty else float(self._hdr.get_mean_value()) / 1000.0
        result["count"] = float(self.count)
        return result

    def distribution_ms(self) -> list[tuple[float, float]]:
        """(percentile, latency ms) points of the whole distribution, for plotting."""
        points: list[tuple[float, float]] = []
        if not self.count:
            return points
        for item in self._hdr.get_percentile_iterator(5):
            points.append((float(item.percentile), float(item.value_iterated_to) / 1000.0))
        return points

    def encode(self) -> str:
        """A compact text form (base64 of compressed HDR data) to send between processes."""
        return str(self._hdr.encode().decode("ascii"))

    @classmethod
    def decode(cls, text: str) -> LatencyHistogram:
        """The histogram that :meth:`encode` produced ``text`` from."""
        histogram = cls()
        if text:
            histogram._hdr = HdrHistogram.decode(text.encode("ascii"))
        return histogram
