"""Processes the benchmark suite starts: hub nodes, baseline peers, redis-server.

Every server listens on a free port on 127.0.0.1 and prints its URL; each is stopped
(SIGTERM, then SIGKILL) when the suite leaves its ``with`` block. The suite raises
its open-files limit first, and children inherit it.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
LISTENING = re.compile(r"listening on (ws://127\.0\.0\.1:\d+/)")
RELAXED = (
    "--write-rate", "1000000", "--write-burst", "1000000",
    "--request-rate", "1000000", "--request-burst", "1000000",
    "--outbox-limit", str(64 * 1024 * 1024), "--flood-strikes", "1000000",
    "--presence-grace", "60", "--demo", "false",
)  # fmt: skip
"""Hub flags for benchmarks: no rate limits in the way, room for bursts."""


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one (children inherit it)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class ServerFailed(RuntimeError):
    """A server process exited before it listened."""


class Server:
    """A child process that prints ``listening on ws://127.0.0.1:PORT/``."""

    def __init__(self, command: list[str], name: str) -> None:
        self.name = name
        self.output: list[str] = []
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            found = LISTENING.search(line)
            if found:
                self.url = found.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.process.wait()
        raise ServerFailed(f"{name} exited early:\n" + "".join(self.output[-20:]))

    def _drain(self) -> None:
        # Keep reading so that a chatty server never blocks on a full pipe.
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output = [*self.output[-50:], line]

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def rss_kib(self) -> int:
        """Resident memory of the process, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def open_files(self) -> int:
        """Open file descriptors of the process (about one per connection)."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def servers() -> Iterator[list[Server]]:
    """A list to add servers to; all are stopped on exit."""
    started: list[Server] = []
    try:
        yield started
    finally:
        for server in reversed(started):
            server.stop()


def hub(data_dir: Path, *extra: str) -> Server:
    """A ``hubbub serve`` node with relaxed limits and the bench secret."""
    command = [sys.executable, "-m", "hub.cli", "serve", "--port", "0"]
    command += ["--data-dir", str(data_dir), "--secret", SECRET, "--log-level", "warning"]
    command += [*RELAXED, *extra]
    return Server(command, "hubbub serve")


def ws_broadcast() -> Server:
    """The plain websockets.broadcast() peer."""
    return Server([sys.executable, "bench/peers/ws_broadcast.py"], "ws_broadcast peer")


def null_hub() -> Server:
    """The null hub peer: the protocol with no hub logic (the suite's ceiling)."""
    return Server([sys.executable, "bench/peers/null_hub.py"], "null hub peer")


def socketio(redis_url: str | None = None) -> Server:
    """A python-socketio peer node (sharing rooms over Redis when given a URL)."""
    extra = ["--redis", redis_url] if redis_url else []
    return Server([sys.executable, "bench/peers/sio_server.py", *extra], "socketio peer")


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A private redis-server on a free port; yields its URL and process id."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerFailed("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise ServerFailed("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0", process.pid
        finally:
            process.terminate()
            process.wait(timeout=10)
