"""Run a load test in ``--workers`` processes and merge what they measured.

Each worker process runs :class:`~clients.loadtest.worker.Worker` for its slice of
the users. The parent relays the published posts between workers (each needs all of
them to check exactly-once receipt), gathers the per-second progress into the live
display and the timeline, and merges the workers' results into one report.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.context import SpawnProcess
from typing import Any

from clients.loadtest.config import LoadConfig
from clients.loadtest.cpu import CpuSampler
from clients.loadtest.graph import SocialGraph
from clients.loadtest.report import Progress, merge_results
from clients.loadtest.worker import Worker

__all__ = ["LoadTestError", "run_loadtest"]

GC_THRESHOLDS = (50_000, 20, 10)
"""The worker's garbage-collector thresholds (CPython: 700, 10, 10): thousands of
connections make each full collection a stall of a good fraction of a second, and
frequent young collections promote short-lived objects until full ones come every few
seconds. The hub tunes its own the same way (``hub.serve.GC_THRESHOLDS``)."""

BARRIER_TIMEOUT = 600.0
"""Seconds a worker waits for the others at a phase boundary before giving up."""


class LoadTestError(Exception):
    """A worker failed; the message carries its traceback."""


class _QueueChannel:
    """A worker's end: one shared queue up, its own queue down, one barrier for all."""

    def __init__(self, index: int, up: Any, down: Any, barrier: threading.Barrier) -> None:
        self.index, self.up, self.down, self._barrier = index, up, down, barrier

    def send(self, kind: str, payload: Any) -> None:
        """Send a message of ``kind`` to the parent."""
        self.up.put((kind, self.index, payload))

    def receive(self) -> Any:
        """What the parent sent this worker (times out with ``queue.Empty``)."""
        return self.down.get(timeout=BARRIER_TIMEOUT)

    def barrier(self) -> None:
        """Wait for every worker at a phase boundary."""
        self._barrier.wait(BARRIER_TIMEOUT)


def _worker_main(
    config: LoadConfig,
    graph: SocialGraph,
    index: int,
    follow: bool,
    channel: _QueueChannel,
) -> None:
    gc.set_threshold(*GC_THRESHOLDS)  # the worker's own GC pauses would count as latency
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        runner: Callable[..., Any] = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(Worker(config, graph, index, channel, follow).run())
    except BaseException:
        channel.send("failed", traceback.format_exc())
        raise SystemExit(1) from None


def cpu_shares(sampler: CpuSampler, result: dict[str, Any], hub: bool) -> dict[str, Any]:
    """Cores the workers and the hub processes used while connecting and while
    delivering (first post sent to last delivery)."""
    windows = {
        "connect": result["connections"]["window"],
        "deliveries": result["deliveries"]["window"],
    }
    return {
        name: {
            "clients": sampler.cores("clients", *window) if window else None,
            "hub": sampler.cores("hub", *window) if window and hub else None,
        }
        for name, window in windows.items()
    }


def run_loadtest(
    config: LoadConfig,
    graph: SocialGraph,
    make_follows: bool,
    show: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``config`` against its hub and return the merged result (see report.py).

    ``make_follows`` creates the graph's follows through the protocol first;
    ``show`` receives a progress line about once a second.
    """
    context = multiprocessing.get_context("spawn")
    up = context.Queue()
    barrier = context.Barrier(config.workers)
    downs = [context.Queue() for _ in range(config.workers)]
    processes: list[SpawnProcess] = [
        context.Process(
            target=_worker_main,
            args=(config, graph, i, make_follows, _QueueChannel(i, up, downs[i], barrier)),
            daemon=True,
            name=f"loadtest-worker-{i}",
        )
        for i in range(config.workers)
    ]
    for process in processes:
        process.start()
    sampler = CpuSampler(
        {"clients": [p.pid for p in processes if p.pid], "hub": list(config.hub_pids)}
    )
    sampler.start()
    progress = Progress(len(graph.followees), config.workers, show)
    published: dict[int, dict[int, list[int]]] = {}
    results: dict[int, dict[str, Any]] = {}
    try:
        while len(results) < config.workers:
            try:
                kind, index, payload = up.get(timeout=1.0)
            except queue.Empty:
                dead = [p.name for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise LoadTestError(f"worker {dead[0]} died") from None
                continue
            if kind == "progress":
                progress.add(index, payload)
            elif kind == "published":
                published[index] = payload
                if len(published) == config.workers:
                    merged = {a: s for part in published.values() for a, s in part.items()}
                    for down in downs:
                        down.put(merged)
            elif kind == "result":
                results[index] = payload
            else:
                raise LoadTestError(f"worker {index} failed:\n{payload}")
    finally:
        sampler.stop()
        barrier.abort()
        for process in processes:
            if len(results) < config.workers:
                process.terminate()  # a failed or interrupted run: stop at once
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    progress.finish()
    result = merge_results(list(results.values()), progress)
    result["cpu"] = cpu_shares(sampler, result, bool(config.hub_pids))
    result.update(
        scenario=config.scenario,
        url=" ".join(config.urls),
        workers=config.workers,
        graph={**asdict(graph.spec), "edges": graph.edges},
        finished_at=time.time(),
    )
    return result
