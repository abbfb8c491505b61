"""One worker process: its slice of the users, the scenario's phases, its counts.

Users ``i`` with ``i % workers == index`` belong to worker ``index``; all but a sample
of them count post events in raw frames (``--decode-every``, see
:mod:`clients.loadtest.connection`). Workers move
through the phases together (a barrier between each): connect, follow (when the
graph is new), act (the scenario), settle (wait until deliveries stop), inject
(the self-check losses and duplicates), then report what they published, get back
what everybody published, and check exactly-once receipt for their users.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib
import multiprocessing
import os
import random
import resource
import time
from typing import Any, Protocol

from clients.loadtest.config import LoadConfig
from clients.loadtest.connection import RequestError, SimConnection
from clients.loadtest.graph import SocialGraph
from clients.loadtest.pacing import ramped, settle
from clients.loadtest.recorder import Recorder
from clients.loadtest.tokens import TokenError, TokenSource
from clients.sdk.tls import trusting
from protocol import CODECS

__all__ = ["Channel", "Worker", "raise_open_files_limit"]

PROGRESS_INTERVAL = 1.0
STORM_POSTERS = 10
"""Posters of a storm when ``--posters`` is 0."""
RECONNECT_ATTEMPTS = 8
"""Connection attempts of a user who was cut (storm) or closed by the hub."""


class Channel(Protocol):
    """How a worker talks to the parent process."""

    def send(self, kind: str, payload: Any) -> None:
        """Send a message of ``kind`` to the parent."""

    def receive(self) -> Any:
        """Block until the parent sends something."""

    def barrier(self) -> None:
        """Block until every worker reached the same point."""


def raise_open_files_limit() -> int:
    """Raise this process's open-files soft limit to its hard limit; return the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def connection_class(spec: str) -> type[SimConnection]:
    """The connection class named ``module:Class`` (default :class:`SimConnection`)."""
    if not spec:
        return SimConnection
    module, _, name = spec.partition(":")
    found = getattr(importlib.import_module(module), name, None)
    if not (isinstance(found, type) and issubclass(found, SimConnection)):
        raise ValueError(f"{spec!r} names no subclass of SimConnection")
    return found


class Worker:
    """Runs the configured scenario for one slice of the users."""

    def __init__(
        self, config: LoadConfig, graph: SocialGraph, index: int, channel: Channel, follow: bool
    ) -> None:
        self.config = config
        self.graph = graph
        self.index = index
        self.channel = channel
        self.make_follows = follow
        self.recorder = Recorder()
        tls = trusting(config.ca_file)
        self.tokens = TokenSource(config.urls[0], config.secret, tls)
        self.factory = connection_class(config.connection)
        self.connections = {
            user: self.factory(user, graph.name(user), self.recorder, config.codec)
            for user in range(index, graph.size, config.workers)
        }
        for connection in self.connections.values():
            connection.tls = tls
        self.up: set[int] = set()
        self.measured: set[int] = set()
        self.stats: dict[str, Any] = {}
        self._background: list[asyncio.Task[None]] = []
        self._reconnecting: set[asyncio.Task[None]] = set()
        self._connecting: set[int] = set()
        for user, connection in self.connections.items():
            if self._counts_raw(user):
                connection.counted = True
                self.recorder.count_only(user)
        if self.factory.PERSISTENT_FOLLOWS:  # peers would have to re-join: not resumable
            for user, connection in self.connections.items():
                connection.on_lost = functools.partial(self._lost, user)

    def _counts_raw(self, user: int) -> bool:
        """Whether ``user`` counts post events in raw frames instead of decoding them.

        Not the decoded sample (every ``--decode-every``-th user), not a codec other than
        JSON, not when follows change during the run (counts could not be checked), and
        not a poster that replies or likes (it needs the ids of the posts it receives).
        """
        config = self.config
        if not self.factory.COUNTS_RAW or CODECS[config.codec].binary or config.follow_rate:
            return False
        if config.decode_every <= 1 or user % config.decode_every == 0:
            return False
        acts_on_posts = config.reply_rate > 0 or config.like_rate > 0
        return not (acts_on_posts and (not config.posters or user < config.posters))

    async def _phase(self) -> None:
        await asyncio.to_thread(self.channel.barrier)

    async def run(self) -> None:
        """All the phases; the result goes to the parent through the channel."""
        raise_open_files_limit()
        reporter = asyncio.create_task(self._report_progress())
        try:
            await self._connect_all()
            await self._phase()
            if self.make_follows or not self.factory.PERSISTENT_FOLLOWS:
                await ramped(sorted(self.up), self._follow, 0, self.config.concurrency)
            gc.freeze()  # the connections live to the end: full collections skip them
            await self._phase()
            await self.act()
            await self._phase()
            for task in self._background:
                task.cancel()
            await settle(lambda: self.recorder.deliveries, self.config.settle)
            await self._phase()
            await self._inject()
            published = self._exchange_published()
        finally:
            reporter.cancel()
            for pending in list(self._reconnecting):
                pending.cancel()
            await asyncio.gather(*(c.close() for c in self.connections.values()))
        expectations = (
            (user, (*self.graph.followees[user], user)) for user in sorted(self.measured)
        )
        correctness = self.recorder.correctness(expectations, published)
        self._send_progress()
        self.channel.send(
            "result",
            {**self.recorder.totals(), "correctness": correctness, **self.stats},
        )

    def _exchange_published(self) -> dict[int, list[int]]:
        self.channel.send("published", self.recorder.published)
        merged: dict[int, list[int]] = self.channel.receive()
        return merged

    # -- connecting -----------------------------------------------------------------

    async def _connect_all(self) -> None:
        rate = self.config.ramp / self.config.workers
        began = time.time()
        await ramped(list(self.connections), self._connect, rate, self.config.concurrency)
        self.stats["connect"] = {
            "began": began,
            "ended": time.time(),
            "up": len(self.up),
            "target": len(self.connections),
        }
        self.measured = set(self.up)

    async def _connect(self, user: int, resume_from: str | None = None) -> bool:
        connection = self.connections[user]
        try:
            token = await self.tokens.token(connection.name) if self.factory.NEEDS_TOKEN else ""
            url = self.config.urls[user % len(self.config.urls)]
            await connection.open(url, token, resume_from)
        except RequestError as exc:
            self.recorder.error(f"connect:{exc.code}")
        except TokenError as exc:
            self.recorder.error("connect:token")
            self.stats.setdefault("token_error", str(exc))
        except Exception as exc:  # any failure to connect is counted, never fatal
            self.recorder.error(f"connect:{type(exc).__name__}")
        else:
            self.up.add(user)
            return True
        return False

    async def _connect_with_backoff(self, user: int, resume_from: str | None) -> bool:
        """Try to connect ``user`` (resuming) up to RECONNECT_ATTEMPTS times with backoff.

        Meanwhile a failed attempt's socket closing does not start a second loop."""
        self._connecting.add(user)
        try:
            for attempt in range(RECONNECT_ATTEMPTS):
                if await self._connect(user, resume_from):
                    return True
                await asyncio.sleep(min(0.2 * 2**attempt, 3.0) * random.uniform(0.5, 1.0))
            return False
        finally:
            self._connecting.discard(user)

    def _lost(self, user: int) -> None:
        """The hub closed ``user``'s connection asking for a reconnect: resume, like a
        real client, so that the correctness counts judge the hub's promise."""
        self.up.discard(user)
        if user in self._connecting:
            return  # its reconnect loop is already running
        cursor = self.connections[user].cursor
        task = asyncio.get_running_loop().create_task(self._reconnect(user, cursor))
        self._reconnecting.add(task)
        task.add_done_callback(self._reconnecting.discard)

    async def _reconnect(self, user: int, cursor: str | None) -> None:
        await asyncio.sleep(random.uniform(0.05, 0.5))
        if await self._connect_with_backoff(user, cursor):
            self.recorder.reconnects += 1

    async def _follow(self, user: int) -> None:
        names = [self.graph.name(u) for u in self.graph.followees[user]]
        with contextlib.suppress(RequestError):
            await self.connections[user].follow(names)

    # -- the scenarios --------------------------------------------------------------

    async def act(self) -> None:
        """Run this worker's part of the configured scenario."""
        config = self.config
        if config.inject_loss or config.inject_dup:
            self._cut_for_injection()
        if config.scenario == "idle":
            await asyncio.sleep(config.duration)
        elif config.scenario == "burst":
            await self._burst()
        elif config.scenario == "steady":
            deadline = time.monotonic() + config.duration
            posters = [u for u in self.up if not config.posters or u < config.posters]
            await asyncio.gather(*(self._social(u, deadline) for u in posters))
        elif config.scenario == "storm":
            await self._storm()

    async def _burst(self) -> None:
        author = self.connections.get(0)
        if author is None or 0 not in self.up:
            return
        gate = asyncio.Semaphore(self.config.pipeline)

        async def one() -> None:
            async with gate:
                with contextlib.suppress(RequestError):
                    await author.post()

        await asyncio.gather(*(one() for _ in range(self.config.posts)))

    async def _social(self, user: int, deadline: float, posts_only: bool = False) -> None:
        config, connection = self.config, self.connections[user]
        rates = [config.post_rate, config.reply_rate, config.like_rate, config.follow_rate]
        if posts_only:
            rates = [config.post_rate, 0.0, 0.0, 0.0]
        total = sum(rates)
        if total <= 0:
            return
        rng = random.Random(user)
        posts = 0
        while not config.posts_per_user or posts < config.posts_per_user:
            pause = rng.expovariate(total)
            if time.monotonic() + pause >= deadline:
                await asyncio.sleep(max(deadline - time.monotonic(), 0))
                return
            await asyncio.sleep(pause)
            action = rng.choices(range(4), rates)[0]
            recent = connection.recent
            try:
                if action == 0 or (action in (1, 2) and not recent):
                    await connection.post()
                    posts += 1
                elif action == 1:
                    await connection.post(reply_to=rng.choice(recent))
                    posts += 1
                elif action == 2:
                    await connection.like(rng.choice(recent))
                else:
                    target = rng.randrange(self.graph.size)
                    if target != user:
                        await connection.follow([self.graph.name(target)])
            except RequestError:
                continue

    async def _storm(self) -> None:
        config = self.config
        count = config.posters or STORM_POSTERS
        posters = [u for u in self.up if u < count]
        clients = [u for u in self.up if u >= count]
        forever = time.monotonic() + 86_400
        self._background = [
            asyncio.create_task(self._social(u, forever, posts_only=True)) for u in posters
        ]
        await asyncio.sleep(1.0)
        cursors = {u: self.connections[u].cursor for u in clients}
        for user in clients:
            self.connections[user].cut()
        cut_at = time.monotonic()
        finished: list[float] = []

        async def back(user: int) -> None:
            await asyncio.sleep(random.uniform(0, config.storm_window))
            if await self._connect_with_backoff(user, cursors[user]):
                finished.append(time.monotonic() - cut_at)

        await asyncio.gather(*(back(u) for u in clients))
        self.stats["storm"] = {
            "clients": len(clients),
            "resumed": len(finished),
            "seconds": max(finished, default=0.0),
        }
        await asyncio.sleep(1.0)

    # -- self-checks: known losses and duplicates ------------------------------------

    def _injected(self) -> tuple[list[int], list[int]]:
        posters = self.config.posters or STORM_POSTERS
        followers = [u for u in sorted(self.graph.followers()[0]) if u >= posters]
        loss = (
            followers[len(followers) - self.config.inject_loss :] if self.config.inject_loss else []
        )
        rest = followers[: len(followers) - len(loss)]
        dup = rest[len(rest) - self.config.inject_dup :] if self.config.inject_dup else []
        return [u for u in loss if u in self.up], [u for u in dup if u in self.up]

    def _cut_for_injection(self) -> None:
        loss, _ = self._injected()
        for user in loss:
            self.connections[user].cut()

    async def _inject(self) -> None:
        loss, dup = self._injected()
        if not loss and not dup:
            return
        for user in dup:
            self.connections[user].cut()
        await asyncio.gather(
            *(self._connect(u) for u in loss),
            *(self._connect(u, self.connections[u].auth_cursor) for u in dup),
        )
        await settle(lambda: self.recorder.deliveries, self.config.settle)

    # -- progress -------------------------------------------------------------------

    def _send_progress(self) -> None:
        deliveries, interval = self.recorder.take_interval()
        self.channel.send(
            "progress",
            {
                "time": time.time(),
                "up": self.recorder.connections_up,
                "deliveries": deliveries,
                "errors": sum(self.recorder.errors.values()),
                "histogram": interval.encode(),
            },
        )

    async def _report_progress(self) -> None:
        parent = multiprocessing.parent_process()
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            if parent is not None and not parent.is_alive():
                os._exit(1)  # the parent was killed: leave no orphan holding connections
            self._send_progress()
