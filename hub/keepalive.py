"""One keepalive loop for the whole node instead of one task per connection.

websockets' own keepalive runs a task and a timer per connection: about 2 KiB each for
every idle connection. The node turns it off (``ping_interval=None``) and runs one
:class:`Keepalive`. Each round takes the open connections and spreads them over the
interval in slices of :data:`PING_SLICE`: a slice is pinged, then the loop sleeps
``interval / slices`` before the next, so 10,000 connections cost a few milliseconds
every fraction of a second rather than one long stall (which would show up as latency
spikes in the fan-out). A slice's check pings each connection in its own short task —
``ping()`` itself waits while a socket's write buffer is full, and one stuck peer must
not hold up the verdict on the others — waits up to ``interval`` for the pongs and hands
each connection that did not answer to ``on_dead``. The node cuts it at once: a
best-effort 1011 close frame (websockets' own choice), then the socket is aborted — a
close handshake would wait behind a full buffer, forever if the peer never reads.
Clients need nothing new: answering pings is part of the WebSocket protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from hub.background import Background, stop_task

__all__ = ["KEEPALIVE_CLOSE", "PING_SLICE", "Keepalive", "answers"]

KEEPALIVE_CLOSE = 1011
"""The close code of a connection that did not answer a ping (websockets' own choice)."""

PING_SLICE = 100
"""Connections pinged together; a round paces its slices evenly over the interval."""


class Keepalive:
    """Pings every connection once per ``interval``; reports those that stay silent."""

    def __init__(
        self,
        connections: Callable[[], Iterable[ServerConnection]],
        interval: float,
        on_dead: Callable[[ServerConnection], None],
    ) -> None:
        self._connections = connections
        self._interval = interval
        self._on_dead = on_dead
        self._task: asyncio.Task[None] | None = None
        self._checks = Background()

    def start(self) -> None:
        """Start pinging (a no-op when the interval is 0: keepalive off)."""
        if self._interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop pinging and drop the checks under way."""
        await stop_task(self._task)
        await self._checks.cancel()

    async def _run(self) -> None:
        while True:
            connections = list(self._connections())
            if not connections:
                await asyncio.sleep(self._interval)
                continue
            slices = range(0, len(connections), PING_SLICE)
            for start in slices:
                self._checks.spawn(self.check(connections[start : start + PING_SLICE]))
                await asyncio.sleep(self._interval / len(slices))

    async def check(self, connections: Iterable[ServerConnection]) -> None:
        """Ping ``connections`` side by side; after at most one interval, report those
        whose pong has not come back."""
        loop = asyncio.get_running_loop()
        checks = {connection: loop.create_task(answers(connection)) for connection in connections}
        if not checks:
            return
        await asyncio.wait(checks.values(), timeout=self._interval)
        for connection, answered in checks.items():
            if not answered.done():
                answered.cancel()
                self._on_dead(connection)


async def answers(connection: ServerConnection) -> None:
    """Ping ``connection`` and wait for its pong (a connection closing meanwhile counts
    as answered: it is ending anyway)."""
    with contextlib.suppress(ConnectionClosed):
        await (await connection.ping())
