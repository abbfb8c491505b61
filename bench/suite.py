"""The Hubbub benchmark suite: one command, a markdown table, baselines from the same run.

    .venv/bin/python bench/suite.py            # full scale (about 15 minutes)
    .venv/bin/python bench/suite.py --quick    # smaller scale (a few minutes)
    .venv/bin/python bench/suite.py --only B1,B3

It starts what each case needs (hub nodes, the baseline peers under bench/peers/,
a private redis-server) on free ports, drives them with ``hubbub loadtest`` and
prints one row per measurement with the targets of issue 12:

C0 the ceiling: the null hub peer (the protocol, pre-framed bytes, coalesced writes,
no hub logic) under B1's burst: what the load generator can receive and what such
writes cost here; B1 burst fan-out and L1 the same burst counted by the lean sinks of
``bench/lean_sinks.py`` (the load generator must report at least 90% of what they
count), B2 sparse fan-out capacity, B3 idle memory,
B4 two nodes + Redis, B4C the same on a three-master Redis Cluster (against two nodes on
one Redis in the same run, with the publishes, scripts and commands per post on each shard),
B5 reconnect storm, B6 connect rate. Baselines:
``websockets.broadcast()`` (B1-B3, B6) and python-socketio (B1, B2; B4 with its Redis
manager). Every row says the cores the server process(es) and the load generator's
workers used while it was measured, and which side was the bottleneck: a server near
one core (one process, one thread), the clients near one core per worker, or the
machine when both together use nearly all of its cores. Needs the bench extra:
``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
    null_hub,
    raise_open_files_limit,
    redis_server,
    servers,
    socketio,
    ws_broadcast,
)
from shard_stats import per_post, shard_calls

from hub.local_redis import free_port, start_redis, start_redis_cluster

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


FULL = Scale(5000, 400, 10_000, 200, 20,
             (5_000, 10_000, 20_000, 40_000, 80_000, 120_000, 160_000), 10.0, 15_000, 10_000, 100,
             100_000, 15.0, 10_000)  # fmt: skip
QUICK = Scale(1000, 200, 2000, 50, 10, (5_000, 10_000, 20_000, 40_000), 5.0, 2000, 2000, 40, 20_000,
              5.0, 1000)  # fmt: skip
WORKERS = 2
"""Load-generator processes of every case."""
BURST_REPEATS = 2
"""Bursts of B1 and L1 on the hub, each on a fresh hub; the best counts (a burst lasts
about a second, so one alone is noisy)."""
BASELINE_POSTS = 50
"""B1's posts for the baseline peers (a burst of a few seconds at their rates)."""
P99_BOUND_MS = 50.0
"""B2's capacity is the highest rate whose p99 stays below this (B4's target too)."""


def say(text: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"bench: {text}", file=sys.stderr, flush=True)


def loadtest(
    started: list[Server],
    *args: str,
    connection: str = "",
    workers: int = WORKERS,
    also: tuple[int, ...] = (),
) -> Any:
    """Run ``hubbub loadtest`` against ``started`` (live progress on stderr), measuring
    their CPU (and that of the processes ``also``) beside the workers'; return its JSON
    result."""
    urls = [server.url for server in started]
    watched = [*(server.pid for server in started), *also]
    pids = [arg for pid in watched for arg in ("--hub-pid", str(pid))]
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, "-m", "hub.cli", "loadtest", *urls, "--secret", SECRET]
        command += ["--workers", str(workers), "--json", out.name, *pids, *args]
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
    cpu: Cpu | None = None


@dataclass(frozen=True)
class Cpu:
    """Cores the server process(es) and the load generator used during a measurement."""

    server: float | None
    clients: float | None
    servers: int = 1
    workers: int = WORKERS

    @classmethod
    def of(cls, result: Any, window: str = "deliveries", servers: int = 1) -> Cpu:
        """The CPU figures of a loadtest result over ``window``."""
        shares = (result.get("cpu") or {}).get(window) or {}
        return cls(shares.get("hub"), shares.get("clients"), servers)

    def bottleneck(self) -> str:
        """Which side was at its limit: the server, the clients, the machine, or none."""
        server, clients = self.server or 0.0, self.clients or 0.0
        if server + clients >= 0.9 * CORES:
            return "machine (" + ("server" if server / self.servers >= 0.9 else "clients") + ")"
        if server >= 0.9 * self.servers:
            return "server"
        if clients >= 0.9 * min(self.workers, CORES):
            return "clients"
        return "neither"

    def cells(self) -> str:
        """The table cells: server cores, client cores, bottleneck."""
        return f"{_cores(self.server)} | {_cores(self.clients)} | {self.bottleneck()}"


CORES = os.cpu_count() or 1


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


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


def b1_args(scale: Scale, posts: int) -> list[str]:
    """The burst: user 0 and its followers, ``posts`` posts, 256 in flight."""
    args = ["--scenario", "burst", "--users", str(scale.b1_followers + 1), "--follows", "0"]
    return [*args, "--star", "--posts", str(posts), "--pipeline", "256", "--settle", "2"]


def correct(result: Any) -> str:
    """Missed and duplicated counts for a note."""
    corr = result["correctness"]
    return f"missed {corr['missed']}, dup {corr['duplicated']}"


def b1(scale: Scale, work: Path) -> list[Row]:
    """The ceiling (C0, the null hub), burst fan-out (B1) and the same burst counted by
    lean sinks (L1, the check of the load generator) on the hub."""
    rates: dict[str, float] = {}
    cpus: dict[str, Cpu] = {}
    notes: dict[str, str] = {}
    runs = (
        ("null", null_hub, "", scale.b1_posts, 1),
        ("hubbub", lambda: hub(fresh(work, "b1")), "", scale.b1_posts, BURST_REPEATS),
        ("ws", ws_broadcast, WS, BASELINE_POSTS, 1),  # 100x slower: fewer posts suffice
        ("sio", socketio, SIO, BASELINE_POSTS, 1),
    )
    for name, start, connection, posts, repeats in runs:
        for _ in range(repeats):
            say(f"B1 {name}: {scale.b1_followers} followers, {posts} posts")
            with servers() as started:
                started.append(start())
                result = loadtest(started, *b1_args(scale, posts), connection=connection)
            if result["deliveries"]["per_second"] >= rates.get(name, -1.0):
                rates[name] = result["deliveries"]["per_second"]
                cpus[name], notes[name] = Cpu.of(result), correct(result)
    lean, lean_cpu, lean_note = lean_burst(scale, work)
    ceiling, ours = rates["null"], rates["hubbub"]
    share = ours / ceiling if ceiling else 0.0
    checked = ours / lean if lean else 0.0
    return [
        Row("C0", "ceiling: null hub burst deliveries/s", ceiling, None, None,
            ">= 3,000,000 received", ceiling >= 3_000_000,
            f"{notes['null']}; the load generator's limit when the clients are the "
            "bottleneck", cpus["null"]),
        Row("B1", "burst deliveries/s", ours, rates["ws"], rates["sio"],
            ">= 3,000,000 and >= 60% of C0", ours >= 3_000_000 and share >= 0.6,
            f"{share:.0%} of C0; hubbub {notes['hubbub']}; ws {notes['ws']}; sio {notes['sio']}",
            cpus["hubbub"]),
        Row("L1", "B1's burst counted by lean sinks", lean, None, None,
            "B1 >= 90% of it", checked >= 0.9,
            f"B1 (the load generator) is {checked:.0%} of it; {lean_note}", lean_cpu),
    ]  # fmt: skip


def fresh(work: Path, name: str) -> Path:
    """A new, empty data directory for a hub under ``work``."""
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))


def lean_burst(scale: Scale, work: Path) -> tuple[float, Cpu, str]:
    """B1's burst on the hub counted by ``bench/lean_sinks.py`` (best of
    :data:`BURST_REPEATS`): deliveries/s, cores, and what was counted."""
    best: tuple[float, Cpu, str] = (0.0, Cpu(None, None), "")
    for _ in range(BURST_REPEATS):
        say(f"L1 lean sinks: {scale.b1_followers} followers, {scale.b1_posts} posts")
        with servers() as started, tempfile.NamedTemporaryFile(suffix=".json") as out:
            started.append(hub(fresh(work, "lean"), "--ping-interval", "0"))  # sinks never pong
            command = [sys.executable, "bench/lean_sinks.py", started[0].url, "--secret", SECRET]
            command += ["--followers", str(scale.b1_followers), "--posts", str(scale.b1_posts)]
            command += ["--workers", str(WORKERS), "--hub-pid", str(started[0].pid)]
            done = subprocess.run([*command, "--json", out.name], cwd=ROOT, check=False)
            if done.returncode != 0:
                raise RuntimeError("the lean sinks failed")
            result = json.loads(Path(out.name).read_text())
        deliveries = result["deliveries"]
        if deliveries["per_second"] >= best[0]:
            note = f"{deliveries['total']:,} of {deliveries['expected']:,} counted"
            best = (deliveries["per_second"], Cpu.of(result), note)
    return best


def b2_step(started: list[Server], scale: Scale, graph: Path, target: int, connection: str) -> Any:
    """One posting-rate step of B2."""
    followers = scale.b2_users * scale.b2_follows / scale.b2_authors + 1
    rate = target / followers / scale.b2_authors
    args = ["--scenario", "steady", "--users", str(scale.b2_users), "--authors"]
    args += [str(scale.b2_authors), "--follows", str(scale.b2_follows), "--alpha", "0"]
    args += ["--posters", str(scale.b2_authors), "--post-rate", f"{rate:.4f}"]
    args += ["--duration", str(scale.b2_seconds), "--graph", str(graph), "--quiet"]
    return loadtest(started, *args, connection=connection)


def b2_capacity(
    started: list[Server], scale: Scale, graph: Path, connection: str, name: str
) -> tuple[float, float, Cpu | None]:
    """Raise the rate until p99 >= P99_BOUND_MS or delivery falls behind; the best
    (rate, p99, cpu). When even the first step misses, its p99 is returned with rate 0.
    """
    best: tuple[float, float, Cpu | None] = (0.0, 0.0, None)
    for target in scale.b2_steps:
        result = b2_step(started, scale, graph, target, connection)
        rate, p99 = result["deliveries"]["per_second"], result["latency_ms"]["p99"]
        missed, cpu = result["correctness"]["missed"], Cpu.of(result)
        say(f"B2 {name}: offered {target:,}/s -> {rate:,.0f}/s, p99 {p99:.1f} ms, "
            f"missed {missed}, cores server {cpu.cells()}")  # fmt: skip
        if p99 >= P99_BOUND_MS or rate < 0.8 * target or missed:
            return best if best[0] else (0.0, p99, cpu)
        best = (rate, p99, cpu)
    return best


def b2(scale: Scale, work: Path) -> list[Row]:
    """Sparse fan-out capacity: many connections, each following many authors."""
    found: dict[str, tuple[float, float, Cpu | None]] = {}
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
            found[name] = b2_capacity(started, scale, graph, connection, name)
    ours, p99, cpu = found["hubbub"]
    where = "at that rate" if ours else f"already at the first step, {scale.b2_steps[0]:,}/s"
    return [
        Row("B2", f"sparse deliveries/s, p99 < {P99_BOUND_MS:.0f} ms", ours, found["ws"][0],
            found["sio"][0], ">= 120,000", ours >= 120_000, f"p99 {p99:.1f} ms {where}", cpu),
    ]  # fmt: skip


def idle_memory(server: Server, count: int, connection: str) -> float:
    """KiB of RSS per idle connection with ``count`` connections open."""
    time.sleep(0.5)
    before = server.rss_kib()
    baseline_files = server.open_files()
    args = ["--scenario", "idle", "--users", str(count), "--follows", "0", "--duration", "600"]
    command = [sys.executable, "-m", "hub.cli", "loadtest", server.url, "--secret", SECRET]
    command += ["--workers", str(WORKERS), "--quiet", *args]
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


def connect_rate(started: list[Server], count: int, connection: str) -> tuple[float, Cpu]:
    """Authenticated connections per second, first connect to last ``auth`` reply."""
    args = ["--scenario", "idle", "--users", str(count), "--follows", "0", "--duration", "0"]
    result = loadtest(started, *args, "--concurrency", "500", "--quiet", connection=connection)
    return float(result["connections"]["per_second"]), Cpu.of(result, "connect")


def b3_b6(scale: Scale, work: Path) -> list[Row]:
    """Idle memory per connection (B3) and the connect rate (B6)."""
    memory: dict[str, float] = {}
    rate: dict[str, tuple[float, Cpu]] = {}
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
            rate[name] = connect_rate(started, scale.b3_connections, connection)
    ours, cpu = rate["hubbub"]
    return [
        Row("B3", "KiB RSS per idle connection", memory["hubbub"], memory["ws"], None,
            "<= 8 KiB", memory["hubbub"] <= 8, "hubbub: authenticated; ws: plain"),
        Row("B6", "authenticated connections/s", ours, rate["ws"][0], None,
            ">= 5,000", ours >= 5000, "ws: plain handshake, no auth", cpu),
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
    with redis_server() as (redis_url, redis_pid):
        say(f"B4 python-socketio: two nodes + Redis manager, {scale.b4_deliveries:,}/s")
        with servers() as started:
            started += [socketio(redis_url), socketio(redis_url)]
            args = b4_args(scale, work / "b4-sio.json")
            results["sio"] = loadtest(started, *args, connection=SIO, also=(redis_pid,))
        say(f"B4 hubbub: two nodes with --redis, {scale.b4_deliveries:,}/s")
        try:
            with servers() as started:
                started.append(hub(work / "b4a", "--redis", redis_url))
                started.append(hub(work / "b4b", "--redis", redis_url))
                args = b4_args(scale, work / "b4-hub.json")
                results["hubbub"] = loadtest(started, *args, also=(redis_pid,))
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
    cpu = Cpu.of(ours, servers=3)  # two nodes and redis-server
    met = lat["p99"] < P99_BOUND_MS and rate >= 0.95 * scale.b4_deliveries and not missed
    return [
        Row("B4", "deliveries/s, two nodes + Redis", rate, None,
            results["sio"]["deliveries"]["per_second"], f">= {scale.b4_deliveries:,}",
            rate >= 0.95 * scale.b4_deliveries, f"{missed} missed; {errors(ours)}", cpu),
        Row("B4", "p99 ms, two nodes + Redis", lat["p99"], None, sio["p99"],
            f"< {P99_BOUND_MS:.0f} ms, 0 missed", met, f"p50 {lat['p50']:.1f} ms", cpu),
    ]  # fmt: skip


def b4c(scale: Scale, work: Path) -> list[Row]:
    """B4 on a Redis Cluster: two nodes on three masters, against two nodes on one Redis
    (both with the AOF, fsync every second) under the same load, measured in this run."""
    results: dict[str, Any] = {}
    shards = ""
    say(f"B4C hubbub: two nodes on one redis-server (AOF), {scale.b4_deliveries:,}/s")
    one = start_redis(work / "b4c-redis", free_port(), "everysec")
    try:
        with servers() as started:
            started += [hub(work / f"b4c-one{n}", "--redis", one.url) for n in range(2)]
            pid = one.processes[0].pid
            results["one"] = loadtest(started, *b4_args(scale, work / "b4c-one.json"), also=(pid,))
    finally:
        one.stop()
    say(f"B4C hubbub: two nodes on a Redis Cluster of 3 masters, {scale.b4_deliveries:,}/s")
    cluster = start_redis_cluster(work / "b4c-cluster", 3, 0, "everysec")
    try:
        ports = cluster.ports
        cluster_args = ("--redis", cluster.url, "--redis-cluster")
        with servers() as started:
            started += [hub(work / f"b4c-cl{n}", *cluster_args) for n in range(2)]
            before = shard_calls(ports)
            pids = tuple(p.pid for p in cluster.processes)
            results["cluster"] = loadtest(
                started, *b4_args(scale, work / "b4c-cluster.json"), also=pids
            )
            posts = results["cluster"]["posts"]["published"]
            shards = per_post(before, shard_calls(ports), posts)
    finally:
        cluster.stop()
    one_redis, ours = results["one"], results["cluster"]
    lat, base = ours["latency_ms"], one_redis["latency_ms"]
    rate = ours["deliveries"]["per_second"]
    missed = ours["correctness"]["missed"]
    met = lat["p99"] < P99_BOUND_MS and rate >= 0.95 * scale.b4_deliveries and not missed
    cpu = Cpu.of(ours, servers=5)  # two nodes and three redis-servers
    return [
        Row("B4C", "deliveries/s, two nodes + 3-master cluster", rate, None, None,
            f">= {scale.b4_deliveries:,}", rate >= 0.95 * scale.b4_deliveries,
            f"{missed} missed; one Redis: {one_redis['deliveries']['per_second']:,.0f}/s;"
            f" {errors(ours)}", cpu),
        Row("B4C", "p99 ms, two nodes + 3-master cluster", lat["p99"], None, None,
            f"< {P99_BOUND_MS:.0f} ms, 0 missed", met,
            f"p50 {lat['p50']:.1f} ms; one Redis p99 {base['p99']:.1f} ms, p50"
            f" {base['p50']:.1f} ms; {shards}", cpu),
    ]  # fmt: skip


def b5(scale: Scale, work: Path) -> list[Row]:
    """Reconnect storm: every client cut and back with resume within 5 s."""
    posters = 10
    users = scale.b5_clients + posters
    args = ["--scenario", "storm", "--users", str(users), "--authors", str(posters)]
    args += ["--follows", "3", "--alpha", "0", "--posters", str(posters), "--post-rate", "0.2"]
    args += ["--storm-window", "2", "--settle", "2"]
    say(f"B5 hubbub: {scale.b5_clients} clients cut and reconnecting within 2 s")
    with servers() as started:
        started.append(hub(work / "b5"))
        result = loadtest(started, *args)
    storm, corr = result["storm"], result["correctness"]
    met = (storm["resumed"] == storm["clients"] and storm["seconds"] <= 5
           and not corr["missed"] and not corr["duplicated"])  # fmt: skip
    return [
        Row("B5", "seconds until all resumed", storm["seconds"], None, None,
            "<= 5 s, 0 missed, 0 dup", met,
            f"{storm['resumed']}/{storm['clients']} resumed, missed {corr['missed']}, "
            f"duplicated {corr['duplicated']}, resyncs {corr['resyncs']}; {errors(result)}",
            Cpu.of(result, "connect")),
    ]  # fmt: skip


CASES: dict[str, Callable[[Scale, Path], list[Row]]] = {
    "B1": b1, "B2": b2, "B3": b3_b6, "B4": b4, "B4C": b4c, "B5": b5,
}  # fmt: skip


def table(rows: list[Row]) -> str:
    """The markdown table."""
    lines = [
        "| case | metric | Hubbub | websockets.broadcast | python-socketio | vs ws | vs sio "
        "| target | met | server cores | client cores | bottleneck | note |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|---|---|",
    ]
    for r in rows:
        lower = "ms" in r.metric or "KiB" in r.metric or "seconds" in r.metric
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        cpu = r.cpu.cells() if r.cpu is not None else "- | - | -"
        lines.append(
            f"| {r.case} | {r.metric} | {fmt(r.hubbub)} | {fmt(r.ws)} | {fmt(r.sio)} "
            f"| {ratio(r.hubbub, r.ws, lower)} | {ratio(r.hubbub, r.sio, lower)} "
            f"| {r.target} | {met} | {cpu} | {r.note} |"
        )
    return "\n".join(lines)


def machine() -> str:
    """One line about the machine the table was measured on."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"Measured {time.strftime('%Y-%m-%d')} on {CORES} cores ({model}), {memory:.0f} GiB, "
        f"Python {sys.version.split()[0]}, {WORKERS} load-generator workers; "
        "server cores = the measured server process(es), client cores = the workers."
    )


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
    print(machine())
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
