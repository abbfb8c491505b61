"""What users run against a Hubbub hub: the Python SDK and the bot framework.

The SDK hides frames, cursors and reconnects::

    from clients import connect

    async with connect("ws://127.0.0.1:8765/", token=token) as client:
        await client.post("hello #hubbub")
        async for event in client.events():
            print(event)

:func:`connect_sync` gives the same client to blocking code, :class:`FeedView` keeps
the home feed's first page and the online followees current, and
:mod:`clients.bots` turns handlers into a bot (``hubbub bot run bot.py``). Nothing
here imports the hub: the SDK needs only the ``protocol`` package.
"""

from __future__ import annotations

from clients.sdk.client import Client, collect, connect
from clients.sdk.connection import Options
from clients.sdk.errors import (
    BadRequest,
    BadResponse,
    Blocked,
    Conflict,
    ConnectionLost,
    Forbidden,
    HubError,
    Internal,
    NotFound,
    RateLimited,
    RequestTimeout,
    SdkError,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnknownOperation,
)
from clients.sdk.events import (
    Closed,
    FeedInsert,
    HubEvent,
    NewNotification,
    Notice,
    Notification,
    Page,
    Post,
    PostDeleted,
    PostUpdated,
    PresenceChanged,
    Profile,
    Reconnected,
    Relation,
    RelationChanged,
    Resync,
    StreamInsert,
    UnknownEvent,
)
from clients.sdk.feed import FeedView
from clients.sdk.sync import SyncClient, connect_sync

__all__ = [
    "BadRequest",
    "BadResponse",
    "Blocked",
    "Client",
    "Closed",
    "Conflict",
    "ConnectionLost",
    "FeedInsert",
    "FeedView",
    "Forbidden",
    "HubError",
    "HubEvent",
    "Internal",
    "NewNotification",
    "NotFound",
    "Notice",
    "Notification",
    "Options",
    "Page",
    "Post",
    "PostDeleted",
    "PostUpdated",
    "PresenceChanged",
    "Profile",
    "RateLimited",
    "Reconnected",
    "Relation",
    "RelationChanged",
    "RequestTimeout",
    "Resync",
    "SdkError",
    "StreamInsert",
    "SyncClient",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UnknownEvent",
    "UnknownOperation",
    "collect",
    "connect",
    "connect_sync",
]
