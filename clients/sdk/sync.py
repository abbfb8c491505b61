"""A blocking wrapper for scripts and notebooks: the async client on a private loop.

::

    from clients import connect_sync

    with connect_sync("ws://127.0.0.1:8765/", token=token) as client:
        client.post("hello from a script")
        print([p.text for p in client.home().items])

Every coroutine method of :class:`~clients.sdk.client.Client` is available as a
blocking method with the same name and arguments: :class:`SyncClient` forwards the
call to the event loop running in its own thread and waits for the result, so the
logic exists once. Reconnecting and resuming go on in that thread between calls.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from clients.sdk.client import Client, connect
from clients.sdk.events import Closed, HubEvent
from clients.sdk.feed import FeedView

__all__ = ["SyncClient", "connect_sync"]

T = TypeVar("T")


class SyncClient:
    """A blocking client; make one with :func:`connect_sync` and close it when done."""

    def __init__(self, url: str, token: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._events: queue.Queue[HubEvent] = queue.Queue()
        try:
            self._client: Client = self._run(connect(url, token=token, **options)._open())
        except BaseException:
            self._stop()
            raise
        self._loop.call_soon_threadsafe(
            self._client.connection.add_listener, self._events.put_nowait
        )

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        if not inspect.iscoroutinefunction(method):
            return method  # type: ignore[no-any-return]

        @functools.wraps(method)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._run(method(*args, **kwargs))

        return blocking

    @property
    def client(self) -> Client:
        """The async client underneath (use it only from its loop's thread)."""
        return self._client

    def events(self, timeout: float | None = None) -> Iterator[HubEvent]:
        """Events as they arrive (from the connect on); stops after ``timeout`` s of silence."""
        while True:
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                return
            if isinstance(event, Closed):
                if event.error is not None:
                    raise event.error
                return
            yield event

    def feed_view(self, limit: int = 20) -> FeedView:
        """A started live FeedView; read its ``posts`` and ``online`` from this thread."""
        return self._run(FeedView(self._client, limit).start())

    def close(self) -> None:
        """Close the connection and stop the private loop."""
        try:
            self._run(self._client.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect_sync(url: str, *, token: str, **options: Any) -> SyncClient:
    """Connect with a blocking client; options as for :func:`clients.sdk.client.connect`."""
    return SyncClient(url, token, **options)
