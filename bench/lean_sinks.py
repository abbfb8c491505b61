"""Lean sinks: the burst measured by the leanest possible clients, to check the load
generator against.

Each sink is a raw TCP connection: it writes the WebSocket upgrade and its ``auth`` and
``follow`` frames by hand (masked with a zero key, which RFC 6455 allows), then only
counts the occurrences of ``"ev":"feed.insert"`` in the bytes it receives: no frame
parsing, no JSON, no UTF-8 (a few bytes kept from each read find a pattern cut across
two reads). Sinks never answer pings, so the hub they measure runs with
``--ping-interval 0``. An author as lean (it counts ``"re":`` for its replies) posts
``--posts`` posts with ``--in-flight`` in flight; the figure is deliveries counted over
first post sent to last delivery, the window ``hubbub loadtest`` uses, with the cores
of the hub (``--hub-pid``) and of the sink processes over it. Meant to be run by
``bench/suite.py`` (row L1)::

    .venv/bin/python bench/lean_sinks.py ws://127.0.0.1:8765/ --secret S --followers 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clients.loadtest.cpu import CpuSampler  # noqa: E402
from hub.tokens import issue_token  # noqa: E402

PATTERN = b'"ev":"feed.insert"'
"""What a sink counts: one per post event in a JSON frame."""
FOLLOWED = b'"re":2,"result"'
"""The reply to a sink's second request (its ``follow``): from then on it counts."""
REFUSED = b'"re":2,"error"'
"""An error reply to the ``follow``: the sink cannot measure anything."""
REPLY = b'"re":'
"""What the author counts: one per reply (it follows no one, so it gets no post events)."""
AUTHOR = "lean_author"
IDLE_SECONDS = 5.0
"""A sink process reports once its sinks have all they expect or have been quiet this long
after the first delivery."""


def client_frame(payload: bytes) -> bytes:
    """A masked text frame (zero mask key: the payload goes as it is)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    else:
        head = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


def request(number: int, op: str, args: dict[str, str]) -> bytes:
    """One request frame of the JSON subprotocol."""
    message = {"id": number, "op": op, "args": args}
    return client_frame(json.dumps(message, separators=(",", ":")).encode())


class Counts:
    """What the sinks of one process received."""

    def __init__(self, sinks: int) -> None:
        self.sinks = sinks
        self.ready = 0
        self.events = 0
        self.last = 0.0
        self.settled = asyncio.get_running_loop().create_future()

    def ready_one(self) -> None:
        """A sink's ``follow`` was answered."""
        self.ready += 1
        if self.ready == self.sinks and not self.settled.done():
            self.settled.set_result(None)

    def fail(self, why: str) -> None:
        """End the setup with ``why`` (nothing once it is over)."""
        if not self.settled.done():
            self.settled.set_exception(ConnectionError(why))


class LeanSocket(asyncio.Protocol):
    """A raw connection that writes the upgrade, checks the ``101`` and then hands the
    bytes it receives to :meth:`received` with the last :attr:`keep` bytes of the read
    before, so that a pattern of up to ``keep + 1`` bytes cut across reads is seen once."""

    keep = 0

    def __init__(self, host: str, path: str, token: str, counts: Counts) -> None:
        self._host, self._path, self._token = host, path, token
        self._counts = counts
        self._head = b""
        self._tail = b""
        self._upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._transport.write(
            f"GET {self._path} HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: bGVhbnNpbmtsZWFuc2luaw==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: hubbub.v1.json\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        if not self._upgraded:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self._head.startswith(b"HTTP/1.1 101"):
                self._counts.fail(f"the upgrade was refused: {self._head[:200]!r}")
                return
            self._upgraded = True
            data = self._head[end + 4 :]
            self._transport.write(request(1, "auth", {"token": self._token}))
            self.upgraded()
        seen = self._tail + data
        self.received(seen)
        self._tail = seen[-self.keep :] if self.keep else b""

    def connection_lost(self, exc: Exception | None) -> None:
        self._counts.fail(f"a lean connection was cut: {exc}")

    def upgraded(self) -> None:
        """The upgrade was accepted and ``auth`` sent: send what else is needed."""

    def received(self, seen: bytes) -> None:
        """Bytes from the hub (after the response head), with the kept tail in front."""


class LeanSink(LeanSocket):
    """A follower: signs in, follows :data:`AUTHOR`, then counts :data:`PATTERN`."""

    keep = len(PATTERN) - 1

    def __init__(self, host: str, path: str, token: str, counts: Counts) -> None:
        super().__init__(host, path, token, counts)
        self._following = False

    def upgraded(self) -> None:
        self._transport.write(request(2, "follow", {"user": AUTHOR}))

    def received(self, seen: bytes) -> None:
        if not self._following:
            if REFUSED in seen:
                self._counts.fail(f"the follow was refused: {seen[-300:]!r}")
            if FOLLOWED in seen:
                self._following = True
                self._counts.ready_one()
        found = seen.count(PATTERN)
        if found:
            self._counts.events += found
            self._counts.last = time.time()


class LeanAuthor(LeanSocket):
    """The author: signs in, then on :meth:`burst` posts with a window of posts in
    flight, sending one more per reply (replies are counted as ``"re":`` in the bytes)."""

    keep = len(REPLY) - 1

    def __init__(self, host: str, path: str, token: str, counts: Counts) -> None:
        super().__init__(host, path, token, counts)
        self._replies = 0
        self._sent = 0
        self._posts = 0
        self._window = 0
        self.done = asyncio.get_running_loop().create_future()

    def received(self, seen: bytes) -> None:
        found = seen.count(REPLY)
        if not found:
            return
        if self._replies == 0:
            self._counts.ready_one()  # the auth reply
        self._replies += found
        if self._posts:
            self._send()
            if self._replies - 1 >= self._posts and not self.done.done():
                self.done.set_result(None)

    def burst(self, posts: int, in_flight: int) -> float:
        """Start posting ``posts`` posts, ``in_flight`` at a time; return when the first
        was sent (``time.time()``); :attr:`done` resolves once all are answered."""
        self._posts, self._window = posts, in_flight
        began = time.time()
        self._send()
        return began

    def _send(self) -> None:
        answered = self._replies - 1  # not the auth reply
        while self._sent < self._posts and self._sent - answered < self._window:
            self._sent += 1
            text = {"text": f"lean sink burst {self._sent}"}
            self._transport.write(request(self._sent + 1, "post", text))


async def open_lean(
    kind: type[LeanSocket], url: str, secret: str, names: Sequence[str], counts: Counts
) -> list[LeanSocket]:
    """Connect one ``kind`` per user of ``names`` to ``url``, 200 handshakes at a time."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    opened: list[LeanSocket] = []
    for start in range(0, len(names), 200):
        pairs = await asyncio.gather(
            *(
                loop.create_connection(
                    lambda name=name: kind(  # type: ignore[misc]
                        f"{host}:{port}", parts.path or "/", issue_token(name, secret), counts
                    ),
                    host,
                    port,
                )
                for name in names[start : start + 200]
            )
        )
        opened += [protocol for _, protocol in pairs]
    return opened


async def run_sinks(
    url: str, secret: str, names: Sequence[str], posts: int, pipe: Connection
) -> None:
    """Open the sinks of one process, report ready, then report what they counted."""
    counts = Counts(len(names))
    await open_lean(LeanSink, url, secret, names, counts)
    await counts.settled
    pipe.send("ready")
    expected = len(names) * posts
    while counts.events < expected:
        before = counts.events
        await asyncio.sleep(0.05)
        if counts.events == before and counts.last and time.time() - counts.last > IDLE_SECONDS:
            break
    pipe.send({"events": counts.events, "expected": expected, "last": counts.last})


def sink_process(url: str, secret: str, names: Sequence[str], posts: int, pipe: Connection) -> None:
    """The entry point of one sink process (uvloop when installed)."""
    try:
        import uvloop  # noqa: PLC0415 - optional

        uvloop.run(run_sinks(url, secret, names, posts, pipe))
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(run_sinks(url, secret, names, posts, pipe))


async def ready(pipe: Connection, process: BaseProcess) -> None:
    """Wait for a sink process to report its sinks ready (or fail)."""
    began = time.monotonic()
    while not pipe.poll():
        if not process.is_alive() or time.monotonic() - began > 300:
            raise SystemExit("the lean sinks did not all connect and follow")
        await asyncio.sleep(0.1)
    if pipe.recv() != "ready":
        raise SystemExit("the lean sinks did not all connect and follow")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Sign the author in, start the sink processes, run the burst once they all follow;
    the result as a JSON-ready map."""
    signed_in = Counts(1)
    (author,) = await open_lean(LeanAuthor, args.url, args.secret, [AUTHOR], signed_in)
    await signed_in.settled
    assert isinstance(author, LeanAuthor)
    names = [f"lean_{index}" for index in range(args.followers)]
    pipes, processes = [], []
    context = mp.get_context("spawn")
    for worker in range(args.workers):
        ours, theirs = context.Pipe()
        process = context.Process(
            target=sink_process,
            args=(args.url, args.secret, names[worker :: args.workers], args.posts, theirs),
            daemon=True,
        )
        process.start()
        pipes.append(ours)
        processes.append(process)
    for pipe, process in zip(pipes, processes, strict=True):
        await ready(pipe, process)
    print(f"{args.followers} lean sinks follow {AUTHOR}; posting {args.posts}", file=sys.stderr)
    sampler = CpuSampler({"hub": args.hub_pid, "clients": [p.pid or 0 for p in processes]})
    sampler.start()
    began = author.burst(args.posts, args.in_flight)
    await author.done
    reports = [await asyncio.to_thread(pipe.recv) for pipe in pipes]
    sampler.stop()
    for process in processes:
        process.join(10)
    events = sum(report["events"] for report in reports)
    ended = max(report["last"] for report in reports)
    seconds = ended - began
    return {
        "deliveries": {
            "total": events,
            "expected": sum(report["expected"] for report in reports),
            "seconds": round(seconds, 3),
            "per_second": round(events / seconds, 1) if seconds > 0 else 0.0,
        },
        "cpu": {
            "deliveries": {name: sampler.cores(name, began, ended) for name in ("hub", "clients")}
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, measure, print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "url", help="the hub, e.g. ws://127.0.0.1:8765/ (run it with --ping-interval 0)"
    )
    parser.add_argument("--secret", required=True, help="the hub's token secret")
    parser.add_argument("--followers", type=int, default=5000, help="sinks (default 5000)")
    parser.add_argument("--posts", type=int, default=400, help="posts in the burst (default 400)")
    parser.add_argument("--in-flight", type=int, default=256, help="posts in flight (default 256)")
    parser.add_argument("--workers", type=int, default=2, help="sink processes (default 2)")
    parser.add_argument(
        "--hub-pid", type=int, action="append", default=[], help="hub process to measure"
    )
    parser.add_argument("--json", type=Path, help="write the result here (default: stdout)")
    args = parser.parse_args(argv)
    result = json.dumps(asyncio.run(measure(args)), indent=2)
    if args.json:
        args.json.write_text(result)
    else:
        print(result)


if __name__ == "__main__":
    main()
