"""One write, one commit on Redis: a frozen Redis never leaves a write without its change.

Writers post replies that mention someone (a post, a counts change and two notifications
per write) while redis-server is stopped (SIGSTOP) for longer than the client's socket
timeout, so some writes fail with ``unavailable`` mid-flight. Afterwards every stored
post and notification has its change in the log: nothing pages show is missing from
the change log, whichever writes failed.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from hub.backends.base import BackendUnavailable
from hub.backends.bundle import open_redis
from hub.records import Notice
from hub.routing import route_keys
from tests.redisproc import RedisServer

WRITERS = 20
WAIT = 30.0


async def _stored_and_logged(url: str) -> tuple[int, int, int, int]:
    """Posts stored, ``post.created`` changes logged, notifications stored and
    notification changes logged."""
    admin = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        posts = await admin.zcard("hb:public")
        created = 0  # a post change's body is in its post's log hash (redis_append)
        for entry_id, fields in await admin.xrange("hb:log:posts", "-", "+"):
            seq = entry_id.partition("-")[0]
            body = await admin.hget(f"hb:{{p:{fields['p']}}}:log", seq)
            created += '"post.created"' in (body or "")
        notes = sum([await admin.zcard(f"hb:{{u:{user}}}:notes") for user in ("bob", "cat")])
        note_changes = sum([await admin.xlen(f"hb:{{u:{user}}}:log:n") for user in ("bob", "cat")])
    finally:
        await admin.aclose()
    return posts, created, notes, note_changes


async def test_writes_during_a_redis_freeze_leave_no_phantom(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    backends = await open_redis(
        redis_server.url, route_keys=route_keys, retention_seconds=900,
        retention_per_log=100_000, fanout_limit=100, presence_ttl=15,
    )  # fmt: skip
    store = backends.store
    for user in ("ann", "bob", "cat"):
        await store.ensure_profile(user, 0)
    root = (await store.create_post("bob", "root", None, None, (), (), (), 0)).value
    notices = (Notice("bob", "reply"), Notice("cat", "mention"))
    acknowledged, failed = [0], [0]
    stop, progress = asyncio.Event(), asyncio.Event()

    async def write() -> None:
        while not stop.is_set():
            try:
                await store.create_post(
                    "ann", "hi @cat", root.id, root.id, (), ("cat",), notices, 1
                )
                acknowledged[0] += 1
            except BackendUnavailable:
                failed[0] += 1
            progress.set()

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                progress.clear()
                await progress.wait()

    pid = redis_server.process.pid if redis_server.process else 0
    writers = [asyncio.create_task(write()) for _ in range(WRITERS)]
    try:
        await until(lambda: acknowledged[0] >= 50)
        os.kill(pid, signal.SIGSTOP)
        try:
            await until(lambda: failed[0] >= 1)
        finally:
            os.kill(pid, signal.SIGCONT)
        before = acknowledged[0]
        await until(lambda: acknowledged[0] >= before + 50)
    finally:
        stop.set()
        await asyncio.gather(*writers)
        await backends.close()
    posts, created, notes, note_changes = await _stored_and_logged(redis_server.url)
    assert failed[0] >= 1, "no write failed during the freeze: the test proved nothing"
    assert posts == created, (
        f"{posts} posts but {created} post.created changes ({failed[0]} failed)"
    )
    assert notes == note_changes, f"{notes} notifications but {note_changes} notification changes"
    assert posts >= acknowledged[0] + 1, f"{posts} posts for {acknowledged[0]} acknowledged"
