"""The lean sinks of ``bench/lean_sinks.py`` (the suite's check of the load generator):
they count every post event once, however the bytes are cut, and against a real hub
process they count exactly the burst they were sent."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from tests.hub.serverproc import ServerProcess
from tests.loadtest.conftest import RELAXED, SECRET

ROOT = Path(__file__).resolve().parents[2]


def lean_sinks() -> ModuleType:
    """``bench/lean_sinks.py`` as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("lean_sinks", ROOT / "bench" / "lean_sinks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Transport:
    """What a sink writes, kept (a stand-in for the socket's transport)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def server_frame(payload: bytes) -> bytes:
    """An unmasked text frame, as the hub sends."""
    size = len(payload)
    head = bytes((0x81, size)) if size < 126 else bytes((0x81, 126)) + size.to_bytes(2, "big")
    return head + payload


async def test_a_sink_counts_each_post_event_once_however_the_reads_are_cut() -> None:
    module = lean_sinks()
    events = [
        {"ev": "feed.insert", "cursor": str(n), "data": {"id": n, "text": "x"}} for n in range(5)
    ]
    stream = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    stream += server_frame(b'{"re":1,"result":{"cursor":"0"}}')
    stream += server_frame(b'{"re":2,"result":{}}')
    stream += server_frame(json.dumps(events[:2], separators=(",", ":")).encode())
    stream += server_frame(b'{"ev":"presence","cursor":null,"data":{}}')
    stream += b"".join(
        server_frame(json.dumps(e, separators=(",", ":")).encode()) for e in events[2:]
    )
    for size in (1, 2, 3, 7, 17, len(stream)):
        counts = module.Counts(1)
        sink = module.LeanSink("127.0.0.1:1", "/", "token", counts)
        transport = Transport()
        sink.connection_made(cast(Any, transport))
        for start in range(0, len(stream), size):
            sink.data_received(stream[start : start + size])
        assert counts.events == 5 and counts.settled.done(), size
        sent = b"".join(transport.written)
        assert sent.startswith(b"GET / HTTP/1.1\r\n") and b'"op":"follow"' in sent


async def test_a_refused_follow_fails_the_setup() -> None:
    module = lean_sinks()
    counts = module.Counts(1)
    sink = module.LeanSink("127.0.0.1:1", "/", "token", counts)
    sink.connection_made(cast(Any, Transport()))
    sink.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    sink.data_received(server_frame(b'{"re":2,"error":{"code":"not_found","message":"no"}}'))
    assert isinstance(counts.settled.exception(), ConnectionError)


async def test_the_author_keeps_its_window_of_posts_in_flight() -> None:
    module = lean_sinks()
    counts = module.Counts(1)
    author = module.LeanAuthor("127.0.0.1:1", "/", "token", counts)
    transport = Transport()
    author.connection_made(cast(Any, transport))
    author.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    author.data_received(server_frame(b'{"re":1,"result":{"cursor":"0"}}'))
    assert counts.settled.done()

    def posts_sent() -> int:
        return sum(frame.count(b'"op":"post"') for frame in transport.written)

    author.burst(5, 2)
    assert posts_sent() == 2
    for number, expected in ((2, 3), (3, 4), (4, 5), (5, 5)):
        reply = server_frame(b'{"re":%d,"result":{"id":%d}}' % (number, number))
        author.data_received(reply[:3])  # a reply cut across reads counts once
        author.data_received(reply[3:])
        assert posts_sent() == expected and not author.done.done()
    author.data_received(server_frame(b'{"re":6,"result":{"id":6}}'))
    assert author.done.done() and posts_sent() == 5


def test_lean_sinks_count_a_burst_from_a_real_hub(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", SECRET, *RELAXED, "--ping-interval", "0")
    server.start()
    try:
        out = tmp_path / "lean.json"
        command = [sys.executable, "bench/lean_sinks.py", server.url, "--secret", SECRET]
        command += ["--followers", "40", "--posts", "25", "--workers", "2", "--json", str(out)]
        assert server.process is not None
        command += ["--hub-pid", str(server.process.pid)]
        subprocess.run(command, cwd=ROOT, check=True, timeout=100, capture_output=True)
        result = json.loads(out.read_text())
    finally:
        server.kill()
    deliveries = result["deliveries"]
    assert deliveries["total"] == deliveries["expected"] == 40 * 25
    assert deliveries["per_second"] > 0 and deliveries["seconds"] > 0
    assert set(result["cpu"]["deliveries"]) == {"hub", "clients"}
