"""``--plot FILE.png``: latency over time and the latency distribution (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["PlotError", "plot_result"]


class PlotError(Exception):
    """The plot cannot be drawn (matplotlib missing)."""


def plot_result(result: dict[str, Any], path: Path) -> None:
    """Draw p50/p99/max and deliveries per second over time, and the percentile curve."""
    try:
        import matplotlib  # noqa: PLC0415 - optional extra, loaded only for --plot

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as exc:
        raise PlotError("--plot needs matplotlib: pip install 'hubbub[plot]'") from exc
    timeline = result["timeline"]
    figure, (over_time, distribution) = plt.subplots(1, 2, figsize=(12, 4.5))
    seconds = [row["t"] for row in timeline]
    busy = [row for row in timeline if row["deliveries"]]
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max")):
        over_time.plot([r["t"] for r in busy], [r[key] for r in busy], marker=".", label=label)
    over_time.set_xlabel("seconds into the run")
    over_time.set_ylabel("publish -> receive latency (ms)")
    over_time.set_title(f"{result['scenario']}: latency over time")
    rate = over_time.twinx()
    rate.bar(seconds, [row["deliveries"] for row in timeline], alpha=0.2, color="gray")
    rate.set_ylabel("deliveries per second")
    over_time.legend(loc="upper left")
    points = result["distribution"]
    if points:
        tails = [1.0 / max(1.0 - p / 100.0, 1e-6) for p, _ in points]
        distribution.plot(tails, [ms for _, ms in points])
        distribution.set_xscale("log")
        ticks = [1, 2, 10, 100, 1000, 10000]
        distribution.set_xticks(ticks, ["0", "50", "90", "99", "99.9", "99.99"])
    distribution.set_xlabel("percentile")
    distribution.set_ylabel("latency (ms)")
    distribution.set_title("latency distribution")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
