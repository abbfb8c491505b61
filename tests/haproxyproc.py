"""A real HAProxy (Debian's) in front of local hub nodes, configured from the repo's own
``docker/haproxy.cfg`` (``hub.haproxy.local_config``): the same frontend, backend, health
check and timeouts, with loopback ports for the frontend, the stats page and each node,
and a quicker check interval for tests."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from hub.haproxy import local_config, template
from tests.redisproc import free_port

__all__ = ["HaProxy", "require_haproxy"]

START_TIMEOUT = 15.0


def require_haproxy() -> str:
    """The path of ``haproxy``; fails with what to do when it is missing."""
    path = shutil.which("haproxy")
    if path is None:
        raise RuntimeError("haproxy not found: `make test` installs it (apt-get install haproxy)")
    return path


class HaProxy:
    """One ``haproxy -db`` child process balancing over the hub nodes at ``nodes``."""

    def __init__(self, directory: Path, nodes: list[int], check: str = "200ms") -> None:
        self.directory = directory
        self.port = free_port()
        self.stats_port = free_port()
        self.nodes = nodes
        self.check = check
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The WebSocket URL of the load balancer."""
        return f"ws://127.0.0.1:{self.port}/"

    def start(self) -> HaProxy:
        """Write the local config, start HAProxy, wait until every node is UP."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "haproxy.cfg"
        text = local_config(
            template(), self.port, self.stats_port, self.nodes, check=self.check, maxconn=4000
        )
        config.write_text(text)
        self.process = subprocess.Popen(
            [require_haproxy(), "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "haproxy.log").open("wb"),
        )
        self.wait_for(lambda status: all(s == "UP" for s in status.values()))
        return self

    def statuses(self) -> dict[str, str]:
        """Each server of the ``hubs`` backend and its check status (UP, DOWN, ...)."""
        address = f"http://127.0.0.1:{self.stats_port}/;csv"
        with urllib.request.urlopen(address, timeout=2) as response:
            rows = csv.DictReader(io.StringIO(response.read().decode().lstrip("# ")))
            return {
                row["svname"]: row["status"].split()[0]
                for row in rows
                if row["pxname"] == "hubs" and row["svname"] not in {"FRONTEND", "BACKEND"}
            }

    def wait_for(
        self, condition: Callable[[dict[str, str]], bool], within: float = START_TIMEOUT
    ) -> dict[str, str]:
        """Poll the stats page until ``condition(statuses)`` holds; return the statuses."""
        deadline = time.monotonic() + within
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.directory / "haproxy.log").read_text(errors="replace")
                raise RuntimeError(f"haproxy exited:\n{log}")
            try:
                found = self.statuses()
                if condition(found):
                    return found
            except OSError:
                found = {}
            if time.monotonic() > deadline:
                raise TimeoutError(f"haproxy servers never got there: {found}")
            time.sleep(0.05)  # polling another process's state, not a timer

    def stop(self) -> None:
        """Stop HAProxy."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
