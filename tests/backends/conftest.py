"""Fixtures of the backend contract suite: each test runs against every implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.backends.backend_harness import FACTORIES, Backends, Factory, stop_redis


@pytest.fixture(scope="session", autouse=True)
def _redis_server() -> Iterator[None]:
    """Stop the contract suite's redis-server (started on first use) at the end."""
    yield
    stop_redis()


@pytest.fixture(params=sorted(FACTORIES))
async def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """A factory of backends of one implementation; everything opened is closed after."""
    opened: list[Backends] = []
    open_impl = FACTORIES[request.param]

    async def make(
        *,
        retention_seconds: float = 900,
        retention_per_log: int = 1000,
        retention_max_seconds: float = 86_400,
    ) -> Backends:
        backends = await open_impl(
            tmp_path / str(len(opened)), retention_seconds, retention_per_log, retention_max_seconds
        )
        opened.append(backends)
        return backends

    yield make
    for backends in opened:
        await backends.close()


@pytest.fixture
async def backend(make_backend: Factory) -> Backends:
    """Backends of one implementation with the default retention."""
    return await make_backend()
