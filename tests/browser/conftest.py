"""Fixtures: one headless Chromium per session and a ``hubbub serve --dev`` child process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.demo_page import chromium
from tests.hub.conftest import SECRET
from tests.hub.serverproc import ServerProcess

FAST = ("--dev", "--presence-grace", "0.2", "--counts-window", "0.05", "--drain-timeout", "1")
"""Flags for a quick dev hub: short presence grace and like-count coalescing."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, shared by a module's tests (closed before other modules)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def dev_hub(tmp_path: Path) -> Iterator[ServerProcess]:
    """A dev-mode hub child process on a free port, drained at the end."""
    hub = ServerProcess(tmp_path / "data", SECRET, *FAST)
    hub.start()
    yield hub
    hub.terminate()
