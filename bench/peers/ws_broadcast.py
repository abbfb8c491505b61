"""A plain ``websockets`` fan-out server: the baseline that uses ``websockets.broadcast()``.

Messages are JSON text frames. A client sends ``{"id": n, "join": [authors]}`` to
follow authors, ``{"id": n, "author": a, "text": t}`` to post; the server answers
``{"re": n}`` and broadcasts ``{"author": a, "text": t}`` (encoded once) to every
connection that joined ``a``. Prints ``listening on ws://127.0.0.1:PORT/``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
from collections import defaultdict

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve

FOLLOWERS: defaultdict[str, set[ServerConnection]] = defaultdict(set)


async def handle(connection: ServerConnection) -> None:
    """Serve one connection: joins, posts, broadcasts."""
    joined: list[str] = []
    try:
        async for frame in connection:
            message = orjson.loads(frame)
            if "join" in message:
                for author in message["join"]:
                    FOLLOWERS[author].add(connection)
                    joined.append(author)
            elif "text" in message:
                event = orjson.dumps({"author": message["author"], "text": message["text"]})
                broadcast(FOLLOWERS[message["author"]], event.decode())
            await connection.send(orjson.dumps({"re": message.get("id")}).decode())
    finally:
        for author in joined:
            FOLLOWERS[author].discard(connection)


async def main(port: int) -> None:
    """Listen on ``port`` (0: a free one) until SIGTERM."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    async with serve(
        handle, "127.0.0.1", port, compression=None, ping_interval=None, backlog=4096
    ) as server:
        print(f"listening on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    import uvloop

    uvloop.run(main(parser.parse_args().port))
