"""The settings of one load-test run (built by the CLI, pickled to every worker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clients.loadtest.graph import GraphSpec

__all__ = ["SCENARIOS", "LoadConfig"]

SCENARIOS = ("idle", "burst", "steady", "storm")
"""idle connections; burst fan-out; steady social traffic; reconnect storm."""


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """Everything a run needs; see ``hubbub loadtest --help`` for each field."""

    urls: tuple[str, ...]
    scenario: str
    graph: GraphSpec
    graph_file: Path | None = None
    codec: str = "hubbub.v1.json"
    secret: str | None = None
    workers: int = 1
    ramp: float = 0.0
    concurrency: int = 200
    duration: float = 10.0
    posts: int = 100
    posts_per_user: int = 0
    post_rate: float = 0.1
    like_rate: float = 0.0
    reply_rate: float = 0.0
    follow_rate: float = 0.0
    pipeline: int = 64
    settle: float = 1.0
    storm_window: float = 5.0
    posters: int = 0
    inject_loss: int = 0
    inject_dup: int = 0
    connection: str = ""
    progress: bool = True
    decode_every: int = 250
    hub_pids: tuple[int, ...] = ()
    ca_file: Path | None = None
