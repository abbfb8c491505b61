"""``hubbub token USER``: print a signed token, by default with the data directory's secret."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hub.config import Settings
from hub.tokens import (
    DEFAULT_MAX_TTL,
    DEFAULT_TTL,
    SecretError,
    TokenError,
    issue_token,
    resolve_secret,
)

__all__ = ["DESCRIPTION", "configure", "run"]

DESCRIPTION = f"""\
Print a JWT (HS256) for USER, signed with --secret / HUBBUB_SECRET or, by default,
the secret kept in the data directory: the one `hubbub serve` uses there.

A hub refuses a token valid for longer than its --max-token-ttl (default
{DEFAULT_MAX_TTL} s), and one whose aud / iss differ from its --token-audience /
--token-issuer: give this command the same --audience and --issuer.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``token``'s arguments."""
    parser.add_argument("user", help="user id: 1-32 of a-z, 0-9 and _")
    parser.add_argument(
        "--secret", default=None, help="signing secret, at least 32 bytes [env HUBBUB_SECRET]"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where the default secret lives [env HUBBUB_DATA_DIR; default {Settings().data_dir}]",
    )
    parser.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL, help=f"seconds valid [default {DEFAULT_TTL}]"
    )
    parser.add_argument("--audience", default=None, help="aud claim (the hub's --token-audience)")
    parser.add_argument("--issuer", default=None, help="iss claim (the hub's --token-issuer)")


def run(args: argparse.Namespace) -> int:
    """Print a signed token for ``args.user``; a one-line error (exit 2) if it cannot."""
    default_dir = Path(os.environ.get("HUBBUB_DATA_DIR", str(Settings().data_dir)))
    try:
        if args.ttl < 1:
            raise TokenError(f"--ttl must be at least 1 second, got {args.ttl}")
        secret = resolve_secret(
            os.environ.get("HUBBUB_SECRET") if args.secret is None else args.secret,
            args.data_dir or default_dir,
        )
        token = issue_token(args.user, secret, args.ttl, audience=args.audience, issuer=args.issuer)
    except (TokenError, SecretError, OSError) as exc:
        print(f"hubbub token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0
