"""The Hubbub benchmark suite: one command, a markdown table, baselines from the same run.

    .venv/bin/python bench/suite.py            # full scale (about 15 minutes)
    .venv/bin/python bench/suite.py --quick    # smaller scale (a few minutes)
    .venv/bin/python bench/suite.py --only B1,B3

It starts what each case needs (hub nodes, the baseline peers under bench/peers/,
a private redis-server) on free ports, drives them with ``hubbub loadtest`` and
prints one row per measurement with the targets of issue 6:

B1 burst fan-out, B2 sparse fan-out capacity, B3 idle memory, B4 two nodes + Redis,
B5 reconnect storm, B6 connect rate. Baselines: ``websockets.broadcast()`` (B1-B3)
and python-socketio (B1, B2; B4 with its Redis manager). Needs the bench extra:
``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import (
    ROOT,
    SECRET,
    Server,
    ServerFailed,
    hub,
    raise_open_files_limit,
    redis_server,
    servers,
    socketio,
    ws_broadcast,
)

WS = "bench.peers.dialects:WsBroadcastConnection"
SIO = "bench.peers.dialects:SocketIOConnection"


@dataclass(frozen=True)
class Scale:
    """Sizes of every case."""

    b1_followers: int
    b1_posts: int
    b2_users: int
    b2_authors: int
    b2_follows: int
    b2_steps: tuple[int, ...]
    b2_seconds: float
    b3_connections: int
    b4_users: int
    b4_authors: int
    b4_deliveries: int
    b4_seconds: float
    b5_clients: int


FULL = Scale(5000, 100, 10_000, 200, 20, (5_000, 10_000, 20_000, 40_000, 80_000, 120_000),
             10.0, 15_000, 10_000, 100, 50_000, 15.0, 10_000)  # fmt: skip
QUICK = Scale(1000, 30, 2000, 50, 10, (5_000, 10_000, 20_000), 5.0, 2000, 2000, 40, 10_000,
              5.0, 1000)  # fmt: skip


def say(text: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"bench: {text}", file=sys.stderr, flush=True)


def loadtest(urls: list[str], *args: str, connection: str = "", workers: int = 2) -> Any:
    """Run ``hubbub loadtest`` (live progress on stderr) and return its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, "-m", "hub.cli", "loadtest", *urls, "--secret", SECRET]
        command += ["--workers", str(workers), "--json", out.name, *args]
        if connection:
            command += ["--connection", connection]
        done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"loadtest failed:\n{done.stdout}")
        return json.loads(Path(out.name).read_text())


def errors(result: Any) -> str:
    """The three commonest error codes of a loadtest result, for a note."""
    top = sorted(result["errors"].items(), key=lambda item: -item[1])[:3]
    return ", ".join(f"{code} x{count}" for code, count in top) or "no errors"


@dataclass
class Row:
    """One line of the table."""

    case: str
    metric: str
    hubbub: float | None
    ws: float | None = None
    sio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""


def fmt(value: float | None) -> str:
    """A figure for the table."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def ratio(ours: float | None, theirs: float | None, lower_is_better: bool = False) -> str:
    """How many times better Hubbub is than a baseline."""
    if not ours or not theirs:
        return "-"
    return f"{(theirs / ours if lower_is_better else ours / theirs):.1f}x"


# -- the cases --------------------------------------------------------------------------


def b1(scale: Scale, work: Path) -> list[Row]:
    """Burst fan-out: one author, N connected followers, K posts."""
    args = ["--scenario", "burst", "--users", str(scale.b1_followers + 1), "--follows", "0"]
    args += ["--star", "--posts", str(scale.b1_posts), "--settle", "2"]
    rates: dict[str, float] = {}
    notes: list[str] = []
    for name, start, connection in (
        ("hubbub", lambda: hub(work / "b1"), ""),
        ("ws", ws_broadcast, WS),
        ("sio", socketio, SIO),
    ):
        say(f"B1 {name}: {scale.b1_followers} followers, {scale.b1_posts} posts")
        with servers() as started:
            started.append(start())
            result = loadtest([started[0].url], *args, connection=connection)
        rates[name] = result["deliveries"]["per_second"]
        corr = result["correctness"]
        notes.append(f"{name}: missed {corr['missed']}, dup {corr['duplicated']}")
    ours = rates["hubbub"]
    met = ours >= 1_000_000 and ours >= 10 * rates["ws"] and ours >= 50 * rates["sio"]
    return [
        Row("B1", "burst deliveries/s", ours, rates["ws"], rates["sio"],
            ">= 1,000,000; 10x ws; 50x sio", met, "; ".join(notes)),
    ]  # fmt: skip


def b2_step(urls: list[str], scale: Scale, graph: Path, target: int, connection: str) -> Any:
    """One posting-rate step of B2."""
    followers = scale.b2_users * scale.b2_follows / scale.b2_authors + 1
    rate = target / followers / scale.b2_authors
    args = ["--scenario", "steady", "--users", str(scale.b2_users), "--authors"]
    args += [str(scale.b2_authors), "--follows", str(scale.b2_follows), "--alpha", "0"]
    args += ["--posters", str(scale.b2_authors), "--post-rate", f"{rate:.4f}"]
    args += ["--duration", str(scale.b2_seconds), "--graph", str(graph), "--quiet"]
    return loadtest(urls, *args, connection=connection)


def b2_capacity(
    url: str, scale: Scale, graph: Path, connection: str, name: str
) -> tuple[float, float]:
    """Raise the rate until p99 >= 100 ms or delivery falls behind; best (rate, p99).

    When even the first step misses, its p99 is returned with rate 0.
    """
    best = (0.0, 0.0)
    for target in scale.b2_steps:
        result = b2_step([url], scale, graph, target, connection)
        rate, p99 = result["deliveries"]["per_second"], result["latency_ms"]["p99"]
        missed = result["correctness"]["missed"]
        say(f"B2 {name}: offered {target:,}/s -> {rate:,.0f}/s, p99 {p99:.1f} ms, missed {missed}")
        if p99 >= 100 or rate < 0.8 * target or missed:
            return best if best[0] else (0.0, p99)
        best = (rate, p99)
    return best


def b2(scale: Scale, work: Path) -> list[Row]:
    """Sparse fan-out capacity: many connections, each following many authors."""
    found: dict[str, tuple[float, float]] = {}
    for name, start, connection in (
        ("hubbub", lambda: hub(work / "b2"), ""),
        ("ws", ws_broadcast, WS),
        ("sio", socketio, SIO),
    ):
        graph = work / f"b2-{name}.graph.json"
        with servers() as started:
            started.append(start())
            say(f"B2 {name}: {scale.b2_users} users following {scale.b2_follows} of "
                f"{scale.b2_authors} authors")  # fmt: skip
            found[name] = b2_capacity(started[0].url, scale, graph, connection, name)
    ours, p99 = found["hubbub"]
    return [
        Row("B2", "sparse deliveries/s, p99 < 100 ms", ours, found["ws"][0], found["sio"][0],
            ">= 120,000", ours >= 120_000, f"p99 {p99:.1f} ms at that rate"),
    ]  # fmt: skip


def idle_memory(server: Server, count: int, connection: str) -> float:
    """KiB of RSS per idle connection with ``count`` connections open."""
    time.sleep(0.5)
    before = server.rss_kib()
    baseline_files = server.open_files()
    args = ["--scenario", "idle", "--users", str(count), "--follows", "0", "--duration", "600"]
    command = [sys.executable, "-m", "hub.cli", "loadtest", server.url, "--secret", SECRET]
    command += ["--workers", "2", "--quiet", *args]
    if connection:
        command += ["--connection", connection]
    began = time.monotonic()
    client = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        while server.open_files() - baseline_files < count:
            if client.poll() is not None or time.monotonic() - began > 300:
                raise RuntimeError("the idle clients did not all connect")
            time.sleep(0.1)
        time.sleep(2)
        after = server.rss_kib()
    finally:
        client.terminate()
        client.wait()
    return (after - before) / count


def connect_rate(url: str, count: int, connection: str) -> float:
    """Authenticated connections per second, first connect to last ``auth`` reply."""
    args = ["--scenario", "idle", "--users", str(count), "--follows", "0", "--duration", "0"]
    result = loadtest([url], *args, "--concurrency", "500", "--quiet", connection=connection)
    return float(result["connections"]["per_second"])


def b3_b6(scale: Scale, work: Path) -> list[Row]:
    """Idle memory per connection (B3) and the connect rate (B6)."""
    memory: dict[str, float] = {}
    rate: dict[str, float] = {}
    for name, start, connection in (
        ("hubbub", lambda: hub(work / "b3"), ""),
        ("ws", ws_broadcast, WS),
    ):
        say(f"B3 {name}: {scale.b3_connections} idle connections")
        with servers() as started:
            started.append(start())
            memory[name] = idle_memory(started[0], scale.b3_connections, connection)
        say(f"B6 {name}: connect rate with {scale.b3_connections} connections")
        with servers() as started:
            started.append(start() if name == "ws" else hub(work / "b6"))
            rate[name] = connect_rate(started[0].url, scale.b3_connections, connection)
    return [
        Row("B3", "KiB RSS per idle connection", memory["hubbub"], memory["ws"], None,
            "<= 16 KiB", memory["hubbub"] <= 16, "hubbub: authenticated; ws: plain"),
        Row("B6", "authenticated connections/s", rate["hubbub"], rate["ws"], None,
            ">= 2,000", rate["hubbub"] >= 2000, "ws: plain handshake, no auth"),
    ]  # fmt: skip


def b4_args(scale: Scale, graph: Path) -> list[str]:
    """A steady load of ``b4_deliveries`` per second over the graph."""
    followers = scale.b4_users * 10 / scale.b4_authors + 1
    rate = scale.b4_deliveries / followers / scale.b4_authors
    args = ["--scenario", "steady", "--users", str(scale.b4_users), "--authors"]
    args += [str(scale.b4_authors), "--follows", "10", "--alpha", "0", "--posters"]
    args += [str(scale.b4_authors), "--post-rate", f"{rate:.4f}", "--duration"]
    return [*args, str(scale.b4_seconds), "--graph", str(graph)]


def b4(scale: Scale, work: Path) -> list[Row]:
    """Two nodes sharing Redis: latency at a fixed delivery rate."""
    results: dict[str, Any] = {}
    with redis_server() as redis_url:
        say(f"B4 python-socketio: two nodes + Redis manager, {scale.b4_deliveries:,}/s")
        with servers() as started:
            started += [socketio(redis_url), socketio(redis_url)]
            urls = [s.url for s in started]
            results["sio"] = loadtest(urls, *b4_args(scale, work / "b4-sio.json"), connection=SIO)
        say("B4 hubbub: two nodes with --redis")
        try:
            with servers() as started:
                started.append(hub(work / "b4a", "--redis", redis_url))
                started.append(hub(work / "b4b", "--redis", redis_url))
                urls = [s.url for s in started]
                results["hubbub"] = loadtest(urls, *b4_args(scale, work / "b4-hub.json"))
        except (ServerFailed, RuntimeError) as exc:
            say(f"B4 hubbub skipped: {str(exc).splitlines()[0]}")
            results["hubbub"] = None
    sio = results["sio"]["latency_ms"]
    ours = results["hubbub"]
    if ours is None or not ours["deliveries"]["total"]:
        note = (
            "needs the Redis backend: `hubbub serve --redis` failed"
            if ours is None
            else f"{ours['deliveries']['total']} delivered, {ours['correctness']['missed']} "
            f"missed; {errors(ours)}"
        )
        return [Row("B4", "p99 ms, two nodes", None, None, sio["p99"], "< 50 ms", None, note)]
    lat = ours["latency_ms"]
    rate = ours["deliveries"]["per_second"]
    missed = ours["correctness"]["missed"]
    return [
        Row("B4", "p50 ms, two nodes + Redis", lat["p50"], None, sio["p50"], "", None,
            f"{rate:,.0f} deliveries/s, {missed} missed; {errors(ours)}"),
        Row("B4", "p99 ms, two nodes + Redis", lat["p99"], None, sio["p99"], "< 50 ms",
            lat["p99"] < 50, f"sio at {results['sio']['deliveries']['per_second']:,.0f}/s"),
    ]  # fmt: skip


def b5(scale: Scale, work: Path) -> list[Row]:
    """Reconnect storm: every client cut and back with resume within 5 s."""
    posters = 10
    users = scale.b5_clients + posters
    args = ["--scenario", "storm", "--users", str(users), "--authors", str(posters)]
    args += ["--follows", "3", "--alpha", "0", "--posters", str(posters), "--post-rate", "0.2"]
    args += ["--storm-window", "5", "--settle", "2"]
    say(f"B5 hubbub: {scale.b5_clients} clients cut and reconnecting within 5 s")
    with servers() as started:
        started.append(hub(work / "b5"))
        result = loadtest([started[0].url], *args)
    storm, corr = result["storm"], result["correctness"]
    met = (storm["resumed"] == storm["clients"] and storm["seconds"] <= 10
           and not corr["missed"] and not corr["duplicated"])  # fmt: skip
    return [
        Row("B5", "seconds until all resumed", storm["seconds"], None, None,
            "<= 10 s, 0 missed, 0 dup", met,
            f"{storm['resumed']}/{storm['clients']} resumed, missed {corr['missed']}, "
            f"duplicated {corr['duplicated']}, resyncs {corr['resyncs']}; {errors(result)}"),
    ]  # fmt: skip


CASES: dict[str, Callable[[Scale, Path], list[Row]]] = {
    "B1": b1, "B2": b2, "B3": b3_b6, "B4": b4, "B5": b5,
}  # fmt: skip


def table(rows: list[Row]) -> str:
    """The markdown table."""
    lines = [
        "| case | metric | Hubbub | websockets.broadcast | python-socketio | vs ws | vs sio "
        "| target | met | note |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        lower = "ms" in r.metric or "KiB" in r.metric or "seconds" in r.metric
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.case} | {r.metric} | {fmt(r.hubbub)} | {fmt(r.ws)} | {fmt(r.sio)} "
            f"| {ratio(r.hubbub, r.ws, lower)} | {ratio(r.hubbub, r.sio, lower)} "
            f"| {r.target} | {met} | {r.note} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Run the selected cases and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller scale, a few minutes")
    parser.add_argument(
        "--only", default=",".join(CASES), help="cases, e.g. B1,B3 (B3 includes B6)"
    )
    options = parser.parse_args()
    raise_open_files_limit()
    scale = QUICK if options.quick else FULL
    wanted = [c.strip().upper() for c in options.only.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]}: choose from {', '.join(CASES)}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-") as folder:
        for case in wanted:
            began = time.monotonic()
            try:
                rows += CASES[case](scale, Path(folder))
            except (ServerFailed, RuntimeError) as exc:
                say(f"{case} failed: {exc}")
                rows.append(Row(case, "failed", None, note=str(exc).splitlines()[0][:120]))
            say(f"{case} done in {time.monotonic() - began:.0f} s")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
