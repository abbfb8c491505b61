"""A real ``redis-server`` for tests: a free loopback port, AOF on, its own directory.

``RedisServer(dir).start()`` launches it; ``stop()`` ends it (SIGTERM, or SIGKILL with
``kill=True``); ``restart()`` starts it again on the same port and directory, so it
reloads its AOF; ``extra`` adds server arguments. Never port 6379, never a server someone
else started. With ``tls`` (a :class:`tests.tlsfiles.TlsFiles`) it speaks only TLS and
asks clients for a certificate its CA signed (``rediss://``).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.tlsfiles import TlsFiles

__all__ = ["RedisServer", "free_port", "require_redis_server"]

START_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_redis_server() -> str:
    """The path of ``redis-server``; fails with what to do when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError(
            "redis-server not found: `make test` installs it (apt-get install redis-server)"
        )
    return path


class RedisServer:
    """One redis-server child process with AOF persistence in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        fsync: str = "always",
        tls: TlsFiles | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.fsync = fsync
        self.tls = tls
        self.extra = extra
        """More ``redis-server`` arguments (cluster mode, for one)."""
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` (with TLS ``rediss://``) URL of the server."""
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start on a free port (the same port again after the first start)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        listen = ["--port", str(self.port)]
        if self.tls is not None:
            listen = [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(self.tls.server_cert),
                "--tls-key-file",
                str(self.tls.server_key),
                "--tls-ca-cert-file",
                str(self.tls.ca),
                "--tls-auth-clients",
                "yes",
            ]
        self.process = subprocess.Popen(
            [
                require_redis_server(),
                *listen,
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", self.fsync,
                "--save", "",
                "--protected-mode", "yes",
                "--logfile", str(self.directory / "redis.log"),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited:\n{log}")
            try:
                if self._pings():
                    return
            except OSError:
                pass
            time.sleep(0.02)  # polling a child process's readiness, not test synchronisation
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def _pings(self) -> bool:
        """Whether the server answers a PING now (over TLS, with the client certificate,
        when it speaks TLS)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
            sock: socket.socket = raw
            if self.tls is not None:
                context = ssl.create_default_context(cafile=str(self.tls.ca))
                context.load_cert_chain(self.tls.client_cert, self.tls.client_key)
                sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def stop(self, *, kill: bool = False) -> None:
        """End the server: SIGTERM (it writes its AOF out) or SIGKILL."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=20)
        self.process = None

    def restart(self) -> None:
        """Start again on the same port and directory (the AOF is replayed)."""
        self.start()
