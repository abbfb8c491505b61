"""Fixtures: a real in-process hub (from tests.hub) and SDK clients signed in to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from clients import Client, HubEvent, connect
from hub.node import Node
from hub.tokens import issue_token
from tests.hub.conftest import SECRET, node, settings

__all__ = ["FAST", "SECRET", "Open", "expect", "node", "settings", "token"]

FAST: dict[str, Any] = {"backoff_base": 0.02, "backoff_max": 0.2, "request_timeout": 5.0}
"""SDK options for tests: quick reconnects, bounded waits."""

Open = Callable[..., Awaitable[Client]]


def token(user: str) -> str:
    """A valid token for ``user`` on the test hub."""
    return issue_token(user, SECRET)


@pytest.fixture
def url(node: Node) -> str:
    """The test hub's WebSocket URL."""
    return f"ws://127.0.0.1:{node.port}/"


@pytest.fixture
async def sdk(url: str) -> AsyncIterator[Open]:
    """Open SDK clients: ``await sdk("alice", codec="msgpack")``; closed at the end."""
    opened: list[Client] = []

    async def open_client(user: str, **options: Any) -> Client:
        client = await connect(url, token=token(user), **{**FAST, **options})
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()


E = TypeVar("E", bound=HubEvent)


async def expect(events: AsyncIterator[HubEvent], kind: type[E], within: float = 5.0) -> E:
    """The next event of type ``kind`` (others are skipped); fail after ``within`` s."""
    async with asyncio.timeout(within):
        async for event in events:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"the events ended before a {kind.__name__}")
