"""The blocking wrapper, and the SDK's independence from the hub package."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from clients import FeedInsert, NotFound, connect_sync
from tests.clients.conftest import FAST, token


async def test_sync_client_from_a_thread(url: str) -> None:
    def script() -> tuple[str, list[int], int]:
        with connect_sync(url, token=token("alice"), **FAST) as alice:
            with pytest.raises(NotFound):
                alice.profile("nobody")
            post = alice.post("hello from a script")
            view = alice.feed_view(limit=5)
            event = next(e for e in alice.events(timeout=5) if isinstance(e, FeedInsert))
            return alice.client.me.id, [p.id for p in view.posts], event.post.id - post.id

    me, shown, delta = await asyncio.to_thread(script)
    assert me == "alice" and len(shown) == 1 and delta == 0


def test_clients_never_import_the_hub() -> None:
    code = (
        "import sys; sys.modules['hub'] = None\n"
        "import clients, clients.bots, clients.bots.cli\n"
        "import clients.examples.reply_bot\n"
        "assert not any(m == 'hub' or m.startswith('hub.') for m in sys.modules if sys.modules[m])"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
