"""Signed access tokens: JWT HS256 carrying the user id (``sub``) and an expiry (``exp``)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import jwt

from protocol.limits import USER_ID_RE

__all__ = ["TokenError", "issue_token", "load_or_create_secret", "verify_token"]

ALGORITHM = "HS256"
SECRET_FILE = "token-secret"


class TokenError(Exception):
    """A token was missing, malformed, forged, expired or named an invalid user."""


def issue_token(user: str, secret: str, ttl_seconds: int = 86_400) -> str:
    """Return a token for ``user`` valid for ``ttl_seconds``, signed with ``secret``."""
    if not USER_ID_RE.fullmatch(user):
        raise TokenError(f"invalid user id {user!r}: use 1-32 of a-z, 0-9 and _")
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + ttl_seconds}, secret, ALGORITHM)


def verify_token(token: str, secret: str) -> str:
    """Return the user id of a valid ``token``; raise :class:`TokenError` otherwise."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired: get a new one") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"token rejected: {exc}") from exc
    user = claims.get("sub")
    if not isinstance(user, str) or not USER_ID_RE.fullmatch(user):
        raise TokenError("token names no valid user id")
    return user


def load_or_create_secret(data_dir: Path) -> str:
    """Return the secret kept in ``data_dir``, creating a random one (mode 0600) if absent.

    This lets ``hubbub serve`` and ``hubbub token`` agree on a secret with no
    configuration on one machine; production sets ``HUBBUB_SECRET`` instead.
    """
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret + "\n", encoding="utf-8")
    return secret
