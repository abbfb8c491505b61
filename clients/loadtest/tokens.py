"""Tokens for simulated users: signed locally with the hub's secret, or asked of a dev hub.

With ``--secret`` (the hub's HS256 secret) tokens are made here, thousands per second.
Without it, the hub must run with ``--dev`` and each token is fetched from
``GET /dev/token?user=NAME`` on the hub's port.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import warnings
from urllib.parse import quote, urlsplit

import jwt
import orjson

__all__ = ["TokenError", "TokenSource"]

TOKEN_TTL = 86_400


class TokenError(Exception):
    """No token could be had for a user."""


class TokenSource:
    """Makes or fetches a token per user id."""

    def __init__(self, url: str, secret: str | None, tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"ws", "wss"} or not parts.hostname:
            raise TokenError(f"not a WebSocket URL: {url!r} (expected ws://host:port/)")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "wss" else 80)
        self._secret = secret
        self._tls: ssl.SSLContext | bool = (tls or True) if parts.scheme == "wss" else False

    async def token(self, user: str) -> str:
        """A token for ``user``."""
        if self._secret is not None:
            now = int(time.time())
            claims = {"sub": user, "iat": now, "exp": now + TOKEN_TTL}
            with warnings.catch_warnings():  # a short secret is the hub's choice, not ours
                warnings.simplefilter("ignore")
                return jwt.encode(claims, self._secret, "HS256")
        return await self._fetch(user)

    async def _fetch(self, user: str) -> str:
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._tls)
        except OSError as exc:
            raise TokenError(f"cannot reach the hub for a dev token: {exc}") from exc
        try:
            writer.write(
                f"GET /dev/token?user={quote(user)} HTTP/1.1\r\nHost: {self._host}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            response = await reader.read()
        finally:
            writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            status = head.split(b"\r\n", 1)[0].decode(errors="replace")
            raise TokenError(
                f"/dev/token answered {status!r}: start the hub with --dev or pass --secret"
            )
        try:
            return str(orjson.loads(body)["token"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise TokenError("/dev/token answered something other than a token") from exc
