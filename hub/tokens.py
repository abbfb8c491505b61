"""Signed access tokens: JWT HS256 carrying the user id (``sub``) and an expiry (``exp``).

A hub accepts a token only if its signature is good, it has not expired, it is valid for
at most :attr:`TokenRules.max_ttl` seconds (``--max-token-ttl``; a year-9999 ``exp`` is
refused) and, when configured, it names the hub's audience (``aud``) and issuer (``iss``).
The secret is at least :data:`MIN_SECRET_BYTES` long; the one kept in the data directory
must be a file of this user that no other user can read or change.
"""

from __future__ import annotations

import os
import secrets
import shlex
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from protocol.limits import USER_ID_RE

__all__ = [
    "DEFAULT_MAX_TTL",
    "DEFAULT_TTL",
    "MIN_SECRET_BYTES",
    "SECRET_FILE",
    "SecretError",
    "TokenError",
    "TokenRules",
    "Tokens",
    "check_secret",
    "issue_token",
    "load_or_create_secret",
    "resolve_secret",
    "verify_token",
]

ALGORITHM = "HS256"
SECRET_FILE = "token-secret"

MIN_SECRET_BYTES = 32
"""Shortest secret accepted, in UTF-8 bytes: HS256 wants a key of at least 256 bits."""

DEFAULT_TTL = 86_400
"""Seconds a token of ``hubbub token`` or ``/dev/token`` is valid by default (a day)."""

DEFAULT_MAX_TTL = 30 * 86_400
"""Longest validity a hub accepts by default (``--max-token-ttl``): 30 days."""

CLOCK_LEEWAY = 60
"""Seconds of clock difference allowed between the machine that issued a token and the
hub: for ``exp``, ``iat`` and ``nbf``, and when the expiry is compared with the hub's
clock plus the longest validity."""


class TokenError(Exception):
    """A token was missing, malformed, forged, expired or named an invalid user."""


class SecretError(ValueError):
    """The token secret must not be used: empty or too short, or a secret file that
    another user owns or that other users may read or change."""


@dataclass(frozen=True, slots=True)
class TokenRules:
    """What a hub requires of a token besides a good signature and a future expiry."""

    max_ttl: int = DEFAULT_MAX_TTL
    """Longest validity in seconds: ``exp`` at most this beyond ``iat`` and beyond now."""
    audience: str | None = None
    """The ``aud`` a token must name; ``None``: a token must name none."""
    issuer: str | None = None
    """The ``iss`` a token must name; ``None``: not checked."""


def check_secret(secret: str, source: str = "the token secret") -> str:
    """Return ``secret`` if it is at least :data:`MIN_SECRET_BYTES` long; raise
    :class:`SecretError` naming ``source`` otherwise."""
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        raise SecretError(
            f"{source} is too short: {size} bytes, at least {MIN_SECRET_BYTES} needed "
            "(make one with `openssl rand -hex 32`)"
        )
    return secret


def issue_token(
    user: str,
    secret: str,
    ttl_seconds: int = DEFAULT_TTL,
    *,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """Return a token for ``user`` valid for ``ttl_seconds``, signed with ``secret``,
    naming ``audience`` and ``issuer`` when given."""
    if not USER_ID_RE.fullmatch(user):
        raise TokenError(f"invalid user id {user!r}: use 1-32 of a-z, 0-9 and _")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now, "exp": now + ttl_seconds}
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, ALGORITHM)


def verify_token(token: str, secret: str, rules: TokenRules = TokenRules()) -> str:
    """Return the user id of a valid ``token``; raise :class:`TokenError` otherwise.

    ``exp``, ``iat`` and ``nbf`` are checked with :data:`CLOCK_LEEWAY` seconds of slack
    for the difference between the issuer's clock and the hub's."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=rules.audience,
            issuer=rules.issuer,
            leeway=CLOCK_LEEWAY,
            options={"require": ["sub", "exp"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired: get a new one") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"token rejected: {exc}") from exc
    _check_lifetime(claims, rules.max_ttl)
    user = claims.get("sub")
    if not isinstance(user, str) or not USER_ID_RE.fullmatch(user):
        raise TokenError("token names no valid user id")
    return user


def _check_lifetime(claims: dict[str, Any], max_ttl: int) -> None:
    """Refuse a token valid for longer than ``max_ttl`` seconds: from its ``iat`` if it
    has one, and in any case from now (PyJWT has checked both are integers)."""
    exp = int(claims["exp"])
    too_long = exp - int(time.time()) > max_ttl + CLOCK_LEEWAY
    if "iat" in claims:
        too_long = too_long or exp - int(claims["iat"]) > max_ttl
    if too_long:
        raise TokenError(f"token rejected: valid for longer than the hub allows ({max_ttl} s)")


@dataclass(frozen=True, slots=True)
class Tokens:
    """A hub's secret and rules: issues the tokens it accepts and verifies them."""

    secret: str
    rules: TokenRules = TokenRules()

    def issue(self, user: str, ttl_seconds: int = DEFAULT_TTL) -> str:
        """A token for ``user`` that this hub accepts (at most ``max_ttl`` long)."""
        rules = self.rules
        ttl = min(ttl_seconds, rules.max_ttl)
        return issue_token(user, self.secret, ttl, audience=rules.audience, issuer=rules.issuer)

    def verify(self, token: str) -> str:
        """The user id of ``token`` if this hub accepts it; :class:`TokenError` otherwise."""
        return verify_token(token, self.secret, self.rules)


def resolve_secret(secret: str | None, data_dir: Path) -> str:
    """The secret to sign with: ``secret`` (``--secret`` / ``HUBBUB_SECRET``) if given,
    else the one kept in ``data_dir``; :class:`SecretError` if it must not be used."""
    if secret is not None:
        return check_secret(secret, "the secret (--secret / HUBBUB_SECRET)")
    return load_or_create_secret(data_dir)


def load_or_create_secret(data_dir: Path) -> str:
    """Return the secret kept in ``data_dir``, creating a random one (mode 0600, in a
    directory created 0700) if absent; :class:`SecretError` if the file must not be used.

    This lets ``hubbub serve`` and ``hubbub token`` agree on a secret with no
    configuration on one machine; production sets ``HUBBUB_SECRET`` instead.
    """
    path = data_dir / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return _create_secret(path)


def _read_secret(path: Path) -> str:
    """The secret in ``path``, once the opened file is known to be private."""
    with path.open("rb") as file:
        _check_private(path, os.fstat(file.fileno()))
        data = file.read()
    try:
        secret = data.decode().strip()
    except UnicodeDecodeError:
        raise SecretError(f"{path} is not UTF-8 text: delete it and a new one is made") from None
    return check_secret(secret, f"the secret in {path}")


def _check_private(path: Path, status: os.stat_result) -> None:
    """Refuse a secret file another user owns or that others may read or write."""
    quoted = shlex.quote(str(path))
    if status.st_uid != os.geteuid():
        raise SecretError(
            f"{path} belongs to uid {status.st_uid}, not to this user (uid {os.geteuid()}): "
            f"run `chown {os.geteuid()} {quoted}` or run the hub as its owner"
        )
    if status.st_mode & 0o077:
        mode = stat.S_IMODE(status.st_mode)
        raise SecretError(
            f"{path} may be read or changed by other users (mode {mode:04o}): "
            f"run `chmod 600 {quoted}`"
        )


def _create_secret(path: Path) -> str:
    """Write a new random secret to ``path`` (0600) whole, or return the one another
    process wrote there first: it is written to a private temporary file and linked
    into place, so nobody ever reads a half-written secret."""
    secret = secrets.token_urlsafe(32)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    try:
        with os.fdopen(
            os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"
        ) as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(draft, path)
    except FileExistsError:
        return _read_secret(path)
    finally:
        draft.unlink(missing_ok=True)
    return secret
