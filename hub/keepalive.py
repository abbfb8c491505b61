"""One keepalive task for the whole node instead of one per connection.

websockets' own keepalive runs a task and a timer per connection: about 2 KiB each for
every idle connection. The node turns it off (``ping_interval=None``) and runs one
:class:`Keepalive`: every ``interval`` seconds it starts a short-lived check per open
connection (ping, then wait for the pong), a slice at a time so that the loop keeps
serving, waits up to ``interval`` seconds for all of them and hands each connection
whose check did not finish to ``on_dead`` (the node closes it with 1011, as websockets
would). The checks run side by side because ``ping()`` itself waits while the socket's
write buffer is full: one stuck peer must not hold up the verdict on the others.
Clients need nothing new: answering pings is part of the WebSocket protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from hub.background import stop_task

__all__ = ["KEEPALIVE_CLOSE", "PING_SLICE", "Keepalive"]

KEEPALIVE_CLOSE = 1011
"""The close code of a connection that did not answer a ping (websockets' own choice)."""

PING_SLICE = 500
"""Connections pinged before the sweep yields to the event loop."""


class Keepalive:
    """Pings every connection each ``interval`` seconds; reports those that stay silent."""

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

    def start(self) -> None:
        """Start sweeping (a no-op when the interval is 0: keepalive off)."""
        if self._interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop sweeping."""
        await stop_task(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.sweep()

    async def sweep(self) -> None:
        """Ping every open connection once and report those whose pong does not come
        back within the interval."""
        loop = asyncio.get_running_loop()
        checks: dict[ServerConnection, asyncio.Task[None]] = {}
        for count, connection in enumerate(list(self._connections()), 1):
            checks[connection] = loop.create_task(_answers(connection))
            if count % PING_SLICE == 0:
                await asyncio.sleep(0)
        if not checks:
            return
        await asyncio.wait(checks.values(), timeout=self._interval)
        for connection, check in checks.items():
            if not check.done():
                check.cancel()
                self._on_dead(connection)


async def _answers(connection: ServerConnection) -> None:
    """Ping ``connection`` and wait for its pong (a connection closing meanwhile counts
    as answered: it is ending anyway)."""
    with contextlib.suppress(ConnectionClosed):
        await (await connection.ping())
