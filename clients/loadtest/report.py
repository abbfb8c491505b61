"""The live progress display, the merge of the workers' results, and the final report.

The JSON result (``--json FILE``) has these fields:

- ``scenario``, ``url``, ``workers``, ``graph`` (the generation spec plus ``edges``);
- ``connections``: ``target``, ``up``, ``failed``, ``seconds`` (first connect to last
  authenticated), ``per_second``, ``window`` (those two moments, Unix seconds);
- ``deliveries``: ``total`` (first receipts of load-test posts), ``seconds`` (first
  post sent to last delivery), ``per_second``, ``window`` (those two moments, or null);
- ``latency_ms``: publish -> receive ``p50``, ``p90``, ``p99``, ``p99_9``, ``max``,
  ``mean``, ``count``;
- ``posts``: ``published`` (acknowledged);
- ``errors``: count per code (error replies by code, ``connect:*`` failures,
  ``close:<code>`` unexpected closes);
- ``reconnects``: connections the hub closed with a code that asks for a reconnect
  (4000-4499, or an abnormal close) that reconnected and resumed, as a real client does;
- ``correctness``: ``expected``, ``received``, ``missed``, ``duplicated``,
  ``unexpected`` (received but never acknowledged), ``resyncs``, ``cursor_regressions``
  (events whose decimal cursor was below the previous event's: out of order);
- ``cpu``: for the ``connect`` window (first connect to last authenticated) and the
  ``deliveries`` window (first post sent to last delivery), the cores used by the
  load generator's workers (``clients``) and by the ``--hub-pid`` processes (``hub``),
  null where not measured: the side near its limit (1 core for a hub process, 1 per
  worker) was the bottleneck;
- ``token_error``: why tokens could not be had (null when fine);
- ``storm``: ``clients``, ``resumed``, ``seconds`` (cut to last resumed), or null;
- ``timeline``: per second ``t``, ``deliveries``, ``p50_ms``, ``p99_ms``, ``max_ms``;
- ``distribution``: ``[percentile, ms]`` points of the latency distribution.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from clients.loadtest.histogram import LatencyHistogram
from clients.loadtest.recorder import Correctness

__all__ = ["Progress", "format_report", "merge_results"]


class Progress:
    """Per-second snapshots from all workers: the live line and the timeline."""

    def __init__(self, target: int, workers: int, show: Callable[[str], None] | None) -> None:
        self.target = target
        self.show = show
        self.started = time.time()
        self.overall = LatencyHistogram()
        self.seconds: dict[int, tuple[int, LatencyHistogram]] = {}
        self._up = [0] * workers
        self._errors = [0] * workers
        self._shown = 0.0

    def add(self, worker: int, snapshot: dict[str, Any]) -> None:
        """Take one worker's snapshot; show a line at most once a second."""
        self._up[worker] = snapshot["up"]
        self._errors[worker] = snapshot["errors"]
        histogram = LatencyHistogram.decode(snapshot["histogram"])
        second = int(snapshot["time"] - self.started)
        count, merged = self.seconds.setdefault(second, (0, LatencyHistogram()))
        merged.add(histogram)
        self.seconds[second] = (count + snapshot["deliveries"], merged)
        self.overall.add(histogram)
        now = time.time()
        if self.show is not None and now - self._shown >= 1.0:
            self._shown = now
            self.show(self.line(second))

    def line(self, second: int) -> str:
        """The live status line."""
        last = self.seconds.get(second - 1, (0, None))[0]
        return (
            f"[{second:4d}s] connections {sum(self._up):,}/{self.target:,}"
            f"  deliveries/s {last:,}  p99 so far {self.overall.percentile_ms(99):.1f} ms"
            f"  errors {sum(self._errors):,}"
        )

    def finish(self) -> None:
        """End the live display."""
        if self.show is not None:
            self.show("")

    def timeline(self) -> list[dict[str, float]]:
        """Deliveries and latency per second of the run."""
        rows = []
        for second in sorted(self.seconds):
            count, histogram = self.seconds[second]
            summary = histogram.summary_ms()
            rows.append(
                {
                    "t": float(second),
                    "deliveries": float(count),
                    "p50_ms": summary["p50"],
                    "p99_ms": summary["p99"],
                    "max_ms": summary["max"],
                }
            )
        return rows


def merge_results(parts: list[dict[str, Any]], progress: Progress) -> dict[str, Any]:
    """One result from the workers' results (the JSON fields listed above)."""
    histogram = LatencyHistogram()
    correctness = Correctness()
    errors: dict[str, int] = {}
    for part in parts:
        histogram.add(LatencyHistogram.decode(part["histogram"]))
        correctness.add(part["correctness"])
        for code, count in part["errors"].items():
            errors[code] = errors.get(code, 0) + count
    connects = [p["connect"] for p in parts]
    up, target = sum(c["up"] for c in connects), sum(c["target"] for c in connects)
    deliveries = sum(p["deliveries"] for p in parts)
    sends = [p["first_send_ns"] for p in parts if p["first_send_ns"]]
    last = max(p["last_receive_ns"] for p in parts)
    window = (last - min(sends)) / 1e9 if sends and last else 0.0
    connect_began = min(c["began"] for c in connects)
    connect_ended = max(c["ended"] for c in connects)
    connect_seconds = connect_ended - connect_began
    storms = [p["storm"] for p in parts if "storm" in p]
    token_errors = [p["token_error"] for p in parts if "token_error" in p]
    return {
        "token_error": token_errors[0] if token_errors else None,
        "connections": {
            "target": target,
            "up": up,
            "failed": target - up,
            "seconds": round(connect_seconds, 3),
            "per_second": round(up / connect_seconds, 1) if connect_seconds > 0 else 0.0,
            "window": [connect_began, connect_ended],
        },
        "deliveries": {
            "total": deliveries,
            "seconds": round(window, 3),
            "per_second": round(deliveries / window, 1) if window > 0 else 0.0,
            "window": [min(sends) / 1e9, last / 1e9] if window > 0 else None,
        },
        "latency_ms": histogram.summary_ms(),
        "posts": {"published": sum(p["published"] for p in parts)},
        "errors": dict(sorted(errors.items())),
        "reconnects": sum(p["reconnects"] for p in parts),
        "correctness": {
            "expected": correctness.expected,
            "received": correctness.received,
            "missed": correctness.missed,
            "duplicated": correctness.duplicated,
            "unexpected": correctness.unexpected,
            "resyncs": sum(p["resyncs"] for p in parts),
            "cursor_regressions": sum(p["cursor_regressions"] for p in parts),
        },
        "storm": {
            "clients": sum(s["clients"] for s in storms),
            "resumed": sum(s["resumed"] for s in storms),
            "seconds": max(s["seconds"] for s in storms),
        }
        if storms
        else None,
        "timeline": progress.timeline(),
        "distribution": histogram.distribution_ms(),
    }


def format_report(result: dict[str, Any]) -> str:
    """The human-readable final report."""
    conn, deliv, lat = result["connections"], result["deliveries"], result["latency_ms"]
    corr = result["correctness"]
    lines = [
        f"scenario {result['scenario']} against {result['url']} ({result['workers']} workers)",
        f"connections  {conn['up']:,}/{conn['target']:,} up in {conn['seconds']:.2f} s"
        f" ({conn['per_second']:,.0f}/s), {conn['failed']:,} failed",
        f"posts        {result['posts']['published']:,} published",
        f"deliveries   {deliv['total']:,} in {deliv['seconds']:.2f} s"
        f" = {deliv['per_second']:,.0f}/s",
        "latency ms   "
        + "  ".join(f"{k} {lat[k]:.2f}" for k in ("p50", "p90", "p99", "p99_9", "max")),
        f"correctness  expected {corr['expected']:,}  missed {corr['missed']:,}"
        f"  duplicated {corr['duplicated']:,}  unexpected {corr['unexpected']:,}"
        f"  resyncs {corr['resyncs']:,}  cursor regressions {corr['cursor_regressions']:,}",
        "errors       "
        + (", ".join(f"{code} {n:,}" for code, n in result["errors"].items()) or "none"),
        f"reconnects   {result['reconnects']:,} (closed by the hub, resumed)",
    ]
    cpu = result.get("cpu")
    if cpu:
        lines.append(
            "cpu cores    "
            + "; ".join(
                f"{window}: clients {_cores(shares['clients'])}, hub {_cores(shares['hub'])}"
                for window, shares in cpu.items()
            )
        )
    if result["token_error"]:
        lines.append(f"tokens       {result['token_error']}")
    if result["storm"] is not None:
        storm = result["storm"]
        lines.append(
            f"storm        {storm['resumed']:,}/{storm['clients']:,} resumed,"
            f" all within {storm['seconds']:.2f} s of the cut"
        )
    return "\n".join(lines)


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
