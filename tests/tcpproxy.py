"""A TCP proxy for fault injection: pass traffic, black-hole it, or cut it.

``TcpProxy(target_port).start()`` listens on a free loopback port and relays every
connection it accepts to ``127.0.0.1:target_port``. It runs in a thread of its own, so it
keeps relaying while the test's event loop is busy (a synchronous process start whose
child connects through the proxy, for instance).

* :meth:`TcpProxy.pass_traffic`: relay everything (the initial state).
* :meth:`TcpProxy.blackhole`: stop relaying in both directions without closing anything
  - no FIN, no RST, the peers see plain silence, as in a network partition. What they
  send meanwhile waits in the proxy and flows on after :meth:`pass_traffic`, like
  retransmitted segments. With ``marker``, only the connections whose client sent those
  bytes are held (``b"SUBSCRIBE"``: Redis pub/sub connections), also ones opened later,
  held from the chunk that carries the marker on.
* :meth:`TcpProxy.cut`: close connections now (RST to both peers) and, with
  ``refuse=True``, reset every new one until :meth:`pass_traffic`: Redis looks down.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["TcpProxy"]

T = TypeVar("T")

CHUNK = 65536
HEAD_LIMIT = 65536
"""Bytes of each client's first traffic kept for :meth:`TcpProxy.blackhole` markers."""
BUFFER_LIMIT = 4 * 1024 * 1024
"""Bytes buffered per direction before the proxy stops reading that side."""


class _Link:
    """One relayed connection: the client's socket and ours to the target."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.head = bytearray()
        self.to_upstream = bytearray()
        self.to_client = bytearray()
        self.held = False

    def peer(self, sock: socket.socket) -> tuple[socket.socket, bytearray, bytearray]:
        """The other socket, the buffer of what ``sock`` sent, and of what it receives."""
        if sock is self.client:
            return self.upstream, self.to_upstream, self.to_client
        return self.client, self.to_client, self.to_upstream


class TcpProxy:
    """A threaded TCP relay to ``127.0.0.1:target_port`` (see the module docstring)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._selector = selectors.DefaultSelector()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._wake_r, self._wake_w = socket.socketpair()
        self._links: dict[socket.socket, _Link] = {}
        self._interest: dict[socket.socket, int] = {}
        self._marker: bytes | None = None
        self._holding = False
        self._refusing = False
        self._commands: list[tuple[Callable[[], object], threading.Event]] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="tcpproxy", daemon=True)

    # -- control (from the test's thread) -----------------------------------------

    def start(self) -> TcpProxy:
        """Listen on a free loopback port and start relaying."""
        self.port = int(self._listener.getsockname()[1])
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread.start()
        return self

    @property
    def redis_url(self) -> str:
        """A Redis URL that reaches the target through this proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    def pass_traffic(self) -> None:
        """Relay everything again (held bytes flow on; new connections are accepted)."""
        self._call(self._set_mode, False, None, False)

    def blackhole(self, marker: bytes | None = None) -> int:
        """Stop relaying on every connection (or those whose client sent ``marker``),
        without closing them; return how many open connections are held now."""
        return self._call(self._set_mode, True, marker, False)

    def cut(self, *, refuse: bool = False) -> int:
        """Reset every open connection (RST both ways); with ``refuse``, reset new ones
        too until :meth:`pass_traffic`. Return how many were cut."""
        return self._call(self._cut, refuse)

    def close(self) -> None:
        """Stop the thread and close every socket."""
        if self._thread.is_alive():
            self._call(self._stop)
            self._thread.join(timeout=5)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()

    def _call(self, command: Callable[..., T], *args: Any) -> T:
        """Run ``command`` on the proxy's thread and return its result."""
        done = threading.Event()
        result: list[T] = []
        with self._lock:
            self._commands.append((lambda: result.append(command(*args)), done))
        self._wake_w.send(b"x")
        if not done.wait(timeout=10):
            raise RuntimeError("the proxy thread did not answer")
        return result[0]

    # -- the relay (on the proxy's thread) ----------------------------------------

    def _set_mode(self, holding: bool, marker: bytes | None, refusing: bool) -> int:
        self._holding, self._marker, self._refusing = holding, marker, refusing
        for link in set(self._links.values()):
            link.held = self._holds(link)
        return sum(link.held for link in set(self._links.values()))

    def _holds(self, link: _Link) -> bool:
        return self._holding and (self._marker is None or self._marker in link.head)

    def _cut(self, refuse: bool) -> int:
        links = set(self._links.values())
        for link in links:
            self._drop(link, reset=True)
        self._refusing = refuse
        return len(links)

    def _stop(self) -> None:
        for link in set(self._links.values()):
            self._drop(link, reset=True)
        self._stopping = True

    def _loop(self) -> None:
        while not self._stopping:
            self._update_interest()
            for key, mask in self._selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._wake_r:
                    self._run_commands()
                elif sock is self._listener:
                    self._accept()
                elif sock in self._links:
                    self._service(self._links[sock], sock, mask)

    def _run_commands(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        with self._lock:
            commands, self._commands = self._commands, []
        for command, done in commands:
            command()
            done.set()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._refusing:
            _reset(client)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
        except OSError:
            _reset(client)
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, upstream)
        link.held = self._holds(link)
        self._links[client] = self._links[upstream] = link

    def _service(self, link: _Link, sock: socket.socket, mask: int) -> None:
        other, sent, received = link.peer(sock)
        try:
            if mask & selectors.EVENT_READ:
                data = sock.recv(CHUNK)
                if not data:
                    raise ConnectionResetError("closed by peer")
                sent += data
                if sock is link.client and len(link.head) < HEAD_LIMIT:
                    link.head += data[: HEAD_LIMIT - len(link.head)]
                    link.held = self._holds(link)
                if not link.held:
                    with contextlib.suppress(BlockingIOError):
                        del sent[: other.send(sent)]
            if mask & selectors.EVENT_WRITE and received and not link.held:
                del received[: sock.send(received)]
        except OSError:
            with contextlib.suppress(OSError):  # best effort: what the peer already sent
                if sent and not link.held:
                    other.send(sent)
            self._drop(link, reset=False)

    def _update_interest(self) -> None:
        for sock, link in self._links.items():
            _, sent, received = link.peer(sock)
            events = 0
            if not link.held:
                if len(sent) < BUFFER_LIMIT:
                    events |= selectors.EVENT_READ
                if received:
                    events |= selectors.EVENT_WRITE
            if events != self._interest.get(sock, 0):
                if not events:
                    self._selector.unregister(sock)
                    del self._interest[sock]
                elif sock in self._interest:
                    self._selector.modify(sock, events)
                    self._interest[sock] = events
                else:
                    self._selector.register(sock, events)
                    self._interest[sock] = events

    def _drop(self, link: _Link, *, reset: bool) -> None:
        for sock in (link.client, link.upstream):
            if self._interest.pop(sock, 0):
                self._selector.unregister(sock)
            self._links.pop(sock, None)
            if reset:
                _reset(sock)
            else:
                sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
