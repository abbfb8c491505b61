"""The protocol's limits and identifier formats, in one place (SPEC.md section "Limits")."""

from __future__ import annotations

import re
from typing import Final

MAX_CLIENT_FRAME_BYTES: Final = 64 * 1024
"""Largest frame a client may send; larger frames close the connection with 1009."""
MAX_SERVER_FRAME_BYTES: Final = 1024 * 1024
"""Largest frame the hub sends; clients should accept at least this much."""
MAX_BATCH: Final = 256
"""Most messages one frame (a batch array) may carry, in either direction."""

MAX_ID: Final = 2**53 - 1
"""Largest request, post or notification id: the largest integer JavaScript holds exactly."""

MAX_POST_CHARS: Final = 500
"""Longest post text, in Unicode code points after stripping surrounding white space."""
MAX_NAME_CHARS: Final = 50
"""Longest display name."""
MAX_BIO_CHARS: Final = 300
"""Longest profile bio."""
MAX_TOKEN_CHARS: Final = 4096
"""Longest authentication token."""

DEFAULT_PAGE_LIMIT: Final = 20
"""Page size when a request gives no ``limit``."""
MAX_PAGE_LIMIT: Final = 100
"""Largest page a client may ask for."""
MAX_PRESENCE_USERS: Final = 100
"""Most users one ``presence`` request may ask about."""
MAX_RESUME_EVENTS: Final = 5000
"""Most events one ``resume`` replays; a longer gap is answered with ``resync``."""
MAX_SUBSCRIPTIONS: Final = 32
"""Most extra streams one connection may subscribe to."""

USER_ID_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
"""A user id (handle): lower-case letters, digits and underscore, 1-32 characters."""
TAG_RE: Final = re.compile(r"[a-z0-9_]{1,64}")
"""A hashtag without its ``#``, lower-cased."""
CURSOR_RE: Final = re.compile(r"[0-9A-Za-z._:\-]{1,64}")
"""A cursor or page cursor: opaque to clients, 1-64 characters of this set."""
STREAM_RE: Final = re.compile(r"public|tag:[a-z0-9_]{1,64}|thread:[1-9][0-9]{0,15}")
"""A subscribable stream: ``public``, ``tag:<tag>`` or ``thread:<root post id>``."""
