"""A real ``hubbub serve`` process with relaxed limits, shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.loadtest.config import LoadConfig
from clients.loadtest.graph import GraphSpec
from tests.hub.serverproc import ServerProcess

SECRET = "loadtest-secret-0123456789abcdef0123456789"
RELAXED = (
    "--write-rate", "100000", "--write-burst", "100000",
    "--request-rate", "100000", "--request-burst", "100000",
)  # fmt: skip


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a hub process that lives for the whole test module."""
    server = ServerProcess(tmp_path_factory.mktemp("hub"), SECRET, *RELAXED)
    server.start()
    yield server.url
    server.kill()


def config(url: str, scenario: str, spec: GraphSpec, **fields: object) -> LoadConfig:
    """A quiet config signing tokens with the test hub's secret."""
    settings: dict[str, object] = {"secret": SECRET, "progress": False, "settle": 0.5}
    settings.update(fields)
    return LoadConfig((url,), scenario, spec, **settings)  # type: ignore[arg-type]


def graph_file(tmp_path: Path) -> Path:
    """Where a test keeps its graph."""
    return tmp_path / "graph.json"
