"""The UserLimits seam on every implementation: the in-process one, Redis (a real
redis-server) and Redis Cluster (each user's limits in the user's partition), a fresh
namespace per test, opened through the backend bundle."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hub.backends.bundle import Backends, open_embedded
from hub.backends.limits import MemoryUserLimits, UserQuotas
from tests.backends.backend_harness import open_shared_bundle

QUOTAS = UserQuotas(write_rate=20.0, write_burst=5.0, follows_per_hour=2, connections=2)

Open = Callable[[], Awaitable[Backends]]
_namespaces = itertools.count(1)


@pytest.fixture(params=["embedded", "redis", "cluster"])
async def open_backends(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Open]:
    """Open bundles of one implementation with :data:`QUOTAS`; with Redis, every bundle
    of a test is one more node on the same namespace."""
    opened: list[Backends] = []
    namespace = f"limits{next(_namespaces)}:"

    async def make() -> Backends:
        if request.param == "embedded":
            backends = await open_embedded(
                tmp_path / str(len(opened)),
                synchronous="normal",
                retention_seconds=900,
                retention_per_log=1000,
                quotas=QUOTAS,
            )
        else:
            backends = await open_shared_bundle(request.param, tmp_path, namespace, quotas=QUOTAS)
        opened.append(backends)
        return backends

    yield make
    for backends in opened:
        await backends.close()


async def test_writes_take_from_the_users_bucket_and_say_when_to_retry(
    open_backends: Open,
) -> None:
    limits = (await open_backends()).limits
    assert [await limits.take("ann") for _ in range(5)] == [None] * 5
    refused = await limits.take("ann")
    assert refused is not None and "this user" in refused.why
    assert 0 < refused.retry_after <= 1 / QUOTAS.write_rate + 0.001
    assert await limits.take("bob") is None  # one bucket per user
    # The bucket refills at write_rate: wait the retry_after the limits named itself.
    await asyncio.sleep(refused.retry_after)
    assert await limits.take("ann") is None


async def test_follows_have_their_own_bucket_and_a_follow_not_new_gives_back(
    open_backends: Open,
) -> None:
    limits = (await open_backends()).limits
    assert await limits.take("ann", follow=True) is None
    await limits.give_back_follow("ann")  # that follow was not new
    assert await limits.take("ann", follow=True) is None
    assert await limits.take("ann", follow=True) is None
    refused = await limits.take("ann", follow=True)
    assert refused is not None and "2 new follows per hour" in refused.why
    assert 1700 < refused.retry_after <= 1800  # one hour / 2
    assert await limits.take("ann") is None  # a refused follow spent no write token


async def test_connections_are_capped_per_user_and_counted_out(open_backends: Open) -> None:
    limits = (await open_backends()).limits
    assert [await limits.connect("ann") for _ in range(3)] == [True, True, False]
    assert await limits.connect("bob")
    await limits.disconnect("ann")
    assert await limits.connect("ann")
    assert not await limits.connect("ann")


async def test_nodes_share_the_cap_until_one_of_them_is_gone(open_backends: Open) -> None:
    first = await open_backends()
    if isinstance(first.limits, MemoryUserLimits):
        pytest.skip("one process, one node: nothing is shared")
    second = await open_backends()
    assert await first.limits.connect("ann")
    assert await second.limits.connect("ann")
    assert not await first.limits.connect("ann")
    assert not await second.limits.connect("ann")
    await first.close()  # its heartbeat entry goes: its connections count no more
    assert await second.limits.connect("ann")
