"""Fixtures: a real node on port 0 in this process, and authenticated protocol clients."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hub.config import Settings
from hub.node import Node
from hub.tokens import issue_token
from tests.hub.wsclient import WsClient

SECRET = "test-secret-0123456789-0123456789"

Connect = Callable[..., Awaitable[WsClient]]


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a fast test node: short grace and coalescing windows."""
    base = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=data_dir,
        secret=SECRET,
        presence_grace=0.2,
        counts_window=0.05,
        drain_timeout=2.0,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Test node settings; a ``@pytest.mark.node_settings(field=value)`` marker overrides."""
    marker = request.node.get_closest_marker("node_settings")
    return make_settings(tmp_path / "data", **(marker.kwargs if marker else {}))


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    """A running node, drained at the end of the test."""
    started = await Node.start(settings)
    yield started
    await started.drain()


@pytest.fixture
async def connect(node: Node) -> AsyncIterator[Connect]:
    """Open a client as a user: ``await connect("alice", subprotocol=...)``."""
    clients: list[WsClient] = []

    async def open_client(
        user: str | None = None, subprotocol: str = "hubbub.v1.json", resume: str | None = None
    ) -> WsClient:
        client = await WsClient.open(f"ws://127.0.0.1:{node.port}/", subprotocol)
        clients.append(client)
        if user is not None:
            args = {} if resume is None else {"cursor": resume}
            result = await client.call("auth", token=issue_token(user, SECRET), **args)
            client.auth_result = result
            client.cursor = result["cursor"]
        return client

    yield open_client
    for client in clients:
        await client.close()
