"""Simulated users behave like real clients when the hub asks them to come back: a hub
restarted mid-run closes every connection with 4000, and each one reconnects and resumes
with nothing missed or repeated. A connection whose sign-in failed is closed at once,
never counted as up or as lost."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from clients.loadtest.connection import RequestError, SimConnection
from clients.loadtest.graph import GraphSpec, SocialGraph
from clients.loadtest.recorder import Recorder
from clients.loadtest.workers import run_loadtest
from protocol import JSON, ops
from tests.hub.serverproc import ServerProcess
from tests.loadtest.conftest import RELAXED, SECRET, config

RESTART_WAIT = 30.0


def _deliveries(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("hubbub_fanout_deliveries_total "):
                return float(line.split()[1])
    return 0.0


def _restart_once_traffic_flows(server: ServerProcess, done: threading.Event) -> None:
    """Wait until the hub fans out, then drain it (4000) and start it on the same port."""
    deadline = time.monotonic() + RESTART_WAIT
    while _deliveries(server.port) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling another process's counter, not a timer
    server.terminate()
    server.extra = (*server.extra, "--port", str(server.port))
    server.start()
    done.set()


def test_users_closed_by_a_draining_hub_reconnect_and_resume(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "hub", SECRET, *RELAXED, "--drain-timeout", "1")
    server.start()
    restarted = threading.Event()
    restarter = threading.Thread(
        target=_restart_once_traffic_flows, args=(server, restarted), daemon=True
    )
    spec = GraphSpec(users=40, follows=3, authors=6, alpha=0, prefix="rst")
    graph = SocialGraph.generate(spec)
    cfg = config(server.url, "steady", spec, posters=6, post_rate=15.0, duration=5.0)
    try:
        restarter.start()
        result = run_loadtest(cfg, graph, make_follows=True)
        restarter.join(RESTART_WAIT)
    finally:
        server.kill()
    assert restarted.is_set()
    corr = result["correctness"]
    assert result["errors"].get("close:4000", 0) > 0  # the hub did ask them to come back
    assert result["reconnects"] == result["errors"]["close:4000"]
    assert corr["expected"] > 0
    assert (corr["missed"], corr["duplicated"]) == (0, 0)


class RefusedSignIn(SimConnection):
    """A user whose ``auth`` is refused as a busy hub refuses it (``unavailable``): the
    hub keeps the socket open for another ``auth``."""

    async def handshake(self, token: str, resume_from: str | None) -> None:
        """Use the socket (a ping), then fail as a refused ``auth`` does."""
        await self._request_batch([ops.Ping()])
        raise RequestError("unavailable", "refused, as under a storm")


async def test_a_failed_sign_in_closes_its_socket_and_counts_no_close(hub_url: str) -> None:
    recorder, lost = Recorder(), asyncio.Event()
    user = RefusedSignIn(0, "ann", recorder, JSON.subprotocol)
    user.on_lost = lost.set
    with pytest.raises(RequestError):
        await user.open(hub_url, "")
    socket = user._socket
    assert socket is not None
    async with asyncio.timeout(2):  # not the hub's auth timeout (10 s) closing it later
        await socket.wait_closed()
    assert socket.close_code == 1000, "closed by the user, politely"
    assert recorder.connections_up == 0 and not recorder.errors and not lost.is_set()
