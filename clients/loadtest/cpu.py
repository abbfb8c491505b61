"""CPU used by the load generator's workers and by the hub processes it is told of.

A figure of deliveries per second belongs to the hub only when the hub, not the client,
was the busy side; so the run reports both. :class:`CpuSampler` is a thread in the
parent process that reads ``/proc/PID/stat`` (user + system time) of every process in
its groups each :data:`SAMPLE_INTERVAL`; afterwards :meth:`CpuSampler.cores` gives the
cores a group used over any window of the run (the samples around both ends are
interpolated). Where ``/proc`` is missing (not Linux) every figure is None.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from pathlib import Path

__all__ = ["SAMPLE_INTERVAL", "CpuSampler", "process_cpu_seconds"]

SAMPLE_INTERVAL = 0.1
"""Seconds between two readings."""

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of process ``pid`` so far; None if unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


class CpuSampler:
    """Samples the CPU seconds of named groups of processes until :meth:`stop`."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = {name: list(pids) for name, pids in groups.items()}
        self._last: dict[int, float] = {}
        self._times: list[float] = []
        self._totals: dict[str, list[float]] = {name: [] for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self.available = Path("/proc/self/stat").exists()

    def start(self) -> None:
        """Take a first reading and keep sampling in the background."""
        if self.available:
            self._sample()
            self._thread.start()

    def stop(self) -> None:
        """Take a last reading and stop."""
        if self.available and self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._sample()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self._sample()

    def _sample(self) -> None:
        now = time.time()
        for name, pids in self._groups.items():
            total = 0.0
            for pid in pids:
                seconds = process_cpu_seconds(pid)
                if seconds is not None:  # an exited process keeps its last reading
                    self._last[pid] = seconds
                total += self._last.get(pid, 0.0)
            self._totals[name].append(total)
        self._times.append(now)

    def _at(self, name: str, moment: float) -> float:
        times, totals = self._times, self._totals[name]
        index = bisect_left(times, moment)
        if index <= 0:
            return totals[0]
        if index >= len(times):
            return totals[-1]
        before, after = times[index - 1], times[index]
        share = (moment - before) / (after - before) if after > before else 1.0
        return totals[index - 1] + share * (totals[index] - totals[index - 1])

    def cores(self, name: str, start: float, end: float) -> float | None:
        """Cores group ``name`` kept busy from ``start`` to ``end`` (wall-clock seconds,
        ``time.time()``); None without samples or for an empty window."""
        if not self._times or name not in self._totals or not self._totals[name] or end <= start:
            return None
        return round((self._at(name, end) - self._at(name, start)) / (end - start), 3)
