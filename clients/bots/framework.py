"""A bot is a set of handlers the framework calls with typed events and a client.

::

    from clients.bots import Bot

    bot = Bot("echo")

    @bot.on_mention
    async def answer(mention, client):
        if mention.post is not None:
            await client.reply(mention.post.id, f"@{mention.notification.actor} hello!")

Handlers run one at a time, in event order; timers (:meth:`Bot.every`) run beside
them. An exception in a handler is logged and the bot goes on; a ``blocked`` refusal
(replying to, liking or following someone who blocked the bot) is expected, not a bug,
and is logged in one line. The client under a
bot retries ``rate_limited`` requests after the hub's ``retry_after`` and reconnects
and resumes by itself (see :mod:`clients.sdk.connection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from clients.sdk.client import Client, connect
from clients.sdk.errors import Blocked, SdkError
from clients.sdk.events import FeedInsert, HubEvent, NewNotification, Notification, Post

__all__ = ["Bot", "Mention"]

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[E, Client], Awaitable[None]]
"""An event handler: ``async def handler(event, client) -> None``."""
Timer = Callable[[Client], Awaitable[None]]
"""A timer or start handler: ``async def handler(client) -> None``."""

RATE_LIMIT_RETRIES = 5
"""How often a bot's request is retried after ``rate_limited`` by default."""


@dataclass(frozen=True, slots=True)
class Mention:
    """A mention or reply notification with the post it is about (None if not found)."""

    notification: Notification
    post: Post | None


class Bot:
    """Handlers for one bot; decorate functions with its ``on_*`` methods."""

    def __init__(self, name: str = "bot") -> None:
        self.name = name
        self._posts: list[Handler[Post]] = []
        self._mentions: list[Handler[Mention]] = []
        self._replies: list[Handler[Mention]] = []
        self._follows: list[Handler[Notification]] = []
        self._notifications: list[Handler[Notification]] = []
        self._starts: list[Timer] = []
        self._timers: list[tuple[float, Timer]] = []
        self.started = asyncio.Event()
        """Set once the start handlers have run and events are being handled."""

    # -- declaring handlers -------------------------------------------------------

    def on_post(self, handler: Handler[Post]) -> Handler[Post]:
        """Call ``handler(post, client)`` for each new post of someone the bot follows."""
        self._posts.append(handler)
        return handler

    def on_mention(self, handler: Handler[Mention]) -> Handler[Mention]:
        """Call ``handler(mention, client)`` when a post mentions the bot."""
        self._mentions.append(handler)
        return handler

    def on_reply(self, handler: Handler[Mention]) -> Handler[Mention]:
        """Call ``handler(mention, client)`` when someone replies to the bot's post."""
        self._replies.append(handler)
        return handler

    def on_follow(self, handler: Handler[Notification]) -> Handler[Notification]:
        """Call ``handler(notification, client)`` for a new follower (``.actor``)."""
        self._follows.append(handler)
        return handler

    def on_notification(self, handler: Handler[Notification]) -> Handler[Notification]:
        """Call ``handler(notification, client)`` for every notification."""
        self._notifications.append(handler)
        return handler

    def on_start(self, handler: Timer) -> Timer:
        """Call ``handler(client)`` once connected, before any event handler."""
        self._starts.append(handler)
        return handler

    def every(self, seconds: float) -> Callable[[Timer], Timer]:
        """Call the decorated ``handler(client)`` every ``seconds`` (first after one period)."""
        if seconds <= 0:
            raise ValueError("a timer period must be positive")

        def register(handler: Timer) -> Timer:
            self._timers.append((seconds, handler))
            return handler

        return register

    # -- running ------------------------------------------------------------------

    async def run_forever(self, url: str, token: str, **options: Any) -> None:
        """Connect and run until the connection ends for good (raises its reason)."""
        options.setdefault("rate_limit_retries", RATE_LIMIT_RETRIES)
        async with connect(url, token=token, **options) as client:
            await self.run(client)

    async def run(self, client: Client) -> None:
        """Run the handlers on ``client``'s events until it closes."""
        log.info("bot %s running as @%s", self.name, client.me.id)
        for start in self._starts:
            await _guarded(start, client)
        timers = [
            asyncio.get_running_loop().create_task(_tick(seconds, handler, client))
            for seconds, handler in self._timers
        ]
        self.started.set()
        try:
            async for event in client.events():
                await self._dispatch(event, client)
        finally:
            for timer in timers:
                timer.cancel()
            await asyncio.gather(*timers, return_exceptions=True)

    async def _dispatch(self, event: HubEvent, client: Client) -> None:
        if isinstance(event, FeedInsert) and event.post.author != client.me.id:
            for on_post in self._posts:
                await _guarded(on_post, event.post, client)
        elif isinstance(event, NewNotification):
            note = event.notification
            for on_note in self._notifications:
                await _guarded(on_note, note, client)
            if note.kind == "follow":
                for on_follow in self._follows:
                    await _guarded(on_follow, note, client)
            handlers = {"mention": self._mentions, "reply": self._replies}.get(note.kind, [])
            if handlers:
                mention = Mention(note, await _find_post(client, note))
                for handler in handlers:
                    await _guarded(handler, mention, client)


async def _guarded(handler: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Run a handler; log its exception instead of ending the bot."""
    name = getattr(handler, "__name__", handler)
    try:
        await handler(*args)
    except Blocked as exc:
        log.info("bot handler %s was refused by a block: %s", name, exc)
    except Exception:
        log.exception("bot handler %s failed", name)


async def _tick(seconds: float, handler: Timer, client: Client) -> None:
    while True:
        await asyncio.sleep(seconds)
        await _guarded(handler, client)


async def _find_post(client: Client, note: Notification) -> Post | None:
    """The post a notification is about (None when it is gone or cannot be read)."""
    if note.post is None:
        return None
    with contextlib.suppress(SdkError):
        return await client.get_post(note.post)
    return None
