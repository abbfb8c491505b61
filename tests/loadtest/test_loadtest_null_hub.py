"""The load generator against the null hub peer (bench/peers/null_hub.py), a real
process speaking the hub protocol with no hub logic: a burst is received exactly once
by every user, counted and decoded connections alike, and the run reports the CPU its
workers (and, when told its pid, the hub) used while delivering."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.loadtest.graph import GraphSpec, SocialGraph
from clients.loadtest.workers import run_loadtest
from tests.loadtest.conftest import config

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on (ws://127\.0\.0\.1:\d+/)")
USERS = 301
POSTS = 40


class NullHub:
    """The null hub process and the URL it listens on."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "bench/peers/null_hub.py"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        output: list[str] = []
        for line in self.process.stdout:  # ends when the process exits
            output.append(line)
            found = LISTENING.search(line)
            if found:
                self.url = found.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.process.wait()
        raise RuntimeError("the null hub exited before it listened:\n" + "".join(output))

    def _drain(self) -> None:
        # Keep reading so that the process never blocks on a full pipe.
        assert self.process.stdout is not None
        for _line in self.process.stdout:
            pass

    def stop(self) -> None:
        """Terminate it (SIGTERM: it stops serving), kill it if it lingers."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def null_hub() -> Iterator[NullHub]:
    """A null hub process shared by the module's tests."""
    hub = NullHub()
    try:
        yield hub
    finally:
        hub.stop()


def burst(url: str, prefix: str, **fields: object) -> dict[str, Any]:
    """A burst of POSTS posts by user 0, followed by all USERS users (star graph)."""
    spec = GraphSpec(users=USERS, follows=0, star=True, prefix=prefix)
    cfg = config(url, "burst", spec, posts=POSTS, workers=2, decode_every=10, **fields)
    return run_loadtest(cfg, SocialGraph.generate(spec), make_follows=True)


def assert_exact(result: dict[str, Any]) -> None:
    """Every user received every post exactly once, and each delivery was timed."""
    corr = result["correctness"]
    assert result["connections"]["up"] == USERS
    assert result["posts"]["published"] == POSTS
    assert corr["expected"] == corr["received"] == USERS * POSTS
    assert (corr["missed"], corr["duplicated"], corr["unexpected"]) == (0, 0, 0)
    assert result["deliveries"]["total"] == USERS * POSTS
    assert result["latency_ms"]["count"] == result["deliveries"]["total"]
    assert result["errors"] == {}


def test_burst_through_the_null_hub_is_received_exactly_once(null_hub: NullHub) -> None:
    """301 users (every tenth decoded, the rest counted in place) each get all 40 posts
    once; the workers' CPU while delivering is reported and the hub's is not asked for."""
    result = burst(null_hub.url, "nh")
    assert_exact(result)
    clients = result["cpu"]["deliveries"]["clients"]
    assert isinstance(clients, float | int) and clients > 0
    assert result["cpu"]["deliveries"]["hub"] is None


def test_burst_with_the_hub_pid_reports_the_hubs_cpu(null_hub: NullHub) -> None:
    """Told the null hub's pid, the run also reports the cores the hub used while
    delivering; the counts stay exact."""
    result = burst(null_hub.url, "nhp", hub_pids=(null_hub.process.pid,))
    assert_exact(result)
    hub = result["cpu"]["deliveries"]["hub"]
    assert isinstance(hub, float | int) and hub >= 0
    clients = result["cpu"]["deliveries"]["clients"]
    assert isinstance(clients, float | int) and clients > 0
