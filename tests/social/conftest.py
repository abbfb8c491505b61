"""Fixtures of the domain tests: a SocialService on the embedded backend, with a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.backends.sqlite import SqliteBackend
from hub.social import SocialService


class Clock:
    """A clock the test moves by hand: starts at 1000 ms, ticks 1 ms per reading."""

    def __init__(self) -> None:
        self.now = 1000

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    """The embedded store and change log."""
    opened = await SqliteBackend.open(tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
async def social(backend: SqliteBackend) -> SocialService:
    """The domain, with users ann, bob and cat signed in."""
    service = SocialService(backend.store, Clock())
    for user in ("ann", "bob", "cat"):
        await service.sign_in(user)
    return service
