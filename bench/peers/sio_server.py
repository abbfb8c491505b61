"""The same fan-out on python-socketio (aiohttp), optionally sharing rooms over Redis.

Events: ``join`` (a list of authors; the client enters one room per author) and
``post`` (``{"author", "text"}``; emitted to the author's room as ``post``). Both
are acknowledged. ``--redis URL`` uses ``AsyncRedisManager`` so that several
processes form one cluster. Prints ``listening on ws://127.0.0.1:PORT/``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import socket
from typing import Any

import socketio
from aiohttp import web


def build(redis: str | None) -> web.Application:
    """The aiohttp application with the Socket.IO server attached."""
    manager = socketio.AsyncRedisManager(redis) if redis else None
    sio = socketio.AsyncServer(
        async_mode="aiohttp", client_manager=manager, ping_interval=60, ping_timeout=60
    )

    @sio.on("join")  # type: ignore[misc]
    async def join(sid: str, authors: list[str]) -> int:
        for author in authors:
            await sio.enter_room(sid, author)
        return len(authors)

    @sio.on("post")  # type: ignore[misc]
    async def post(sid: str, data: dict[str, Any]) -> bool:
        await sio.emit("post", data, room=data["author"])
        return True

    app = web.Application()
    sio.attach(app)
    return app


async def main(port: int, redis: str | None) -> None:
    """Serve on ``port`` (0: a free one) until SIGTERM."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    runner = web.AppRunner(build(redis), access_log=None)
    await runner.setup()
    await web.SockSite(runner, listener, backlog=4096).start()
    print(f"listening on ws://127.0.0.1:{listener.getsockname()[1]}/", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis", default=None)
    options = parser.parse_args()
    import uvloop

    uvloop.run(main(options.port, options.redis))
