"""Run ``hubbub serve`` as a real child process and find the port it printed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

LISTENING = re.compile(r"listening on wss?://[^:]+:(\d+)/")


class ServerProcess:
    """A ``hubbub serve`` child process on a free port."""

    def __init__(self, data_dir: Path, secret: str, *extra: str) -> None:
        self.data_dir = data_dir
        self.secret = secret
        self.extra = extra
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.output: list[str] = []

    def start(self) -> int:
        """Start the process and return its port once it listens."""
        env = {**os.environ, "HUBBUB_SECRET": self.secret, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub.cli",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(self.data_dir),
                *self.extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            found = LISTENING.search(line)
            if found:
                self.port = int(found.group(1))
                return self.port
        raise RuntimeError("hubbub serve exited early:\n" + "".join(self.output))

    @property
    def url(self) -> str:
        """The WebSocket URL of the process."""
        return f"ws://127.0.0.1:{self.port}/"

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self) -> str:
        """SIGTERM the process, wait for it to drain and return the rest of its output."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        rest, _ = self.process.communicate(timeout=20)
        self.output.append(rest)
        return "".join(self.output)
