"""Prometheus metrics of one node, in a registry of its own (several nodes may share a process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "NodeMetrics"]


class NodeMetrics:
    """The counters and gauges ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_*: CPU seconds, resident memory, open fds
        GCCollector(registry=r)  # python_gc_*: collections per generation (full = 2)
        self.connections = Gauge(
            "hubbub_connections", "Open authenticated WebSocket connections.", registry=r
        )
        self.messages_in = Counter(
            "hubbub_messages_in", "Requests received from clients.", registry=r
        )
        self.messages_out = Counter(
            "hubbub_messages_out", "Replies and events queued to clients.", registry=r
        )
        self.frames_out = Counter(
            "hubbub_frames_out", "WebSocket frames written (each may batch messages).", registry=r
        )
        self.deliveries = Counter(
            "hubbub_fanout_deliveries", "Live events queued by the fan-out.", registry=r
        )
        self.errors = Counter(
            "hubbub_errors", "Error replies sent, by error code.", ["code"], registry=r
        )
        self.closes = Counter(
            "hubbub_closes", "Connections closed by the hub, by close code.", ["code"], registry=r
        )
        self.outbox_drops = Counter(
            "hubbub_outbox_drops",
            "Connections cut because their outbox passed its byte limit.",
            registry=r,
        )

        self.catch_up_retries = Counter(
            "hubbub_catch_up_retries",
            "Catch-up replays retried because the store was briefly unavailable.",
            registry=r,
        )
        self.replay_rereads = Counter(
            "hubbub_replay_rereads",
            "Sign-in replays read again because an edit or a deletion scrubbed the log "
            "during the read.",
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
