"""``hubbub token USER``: print a signed token, by default with the data directory's secret."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hub.config import Settings
from hub.tokens import TokenError, issue_token, load_or_create_secret

__all__ = ["DESCRIPTION", "configure", "run"]

DESCRIPTION = """\
Print a JWT (HS256) for USER, signed with --secret / HUBBUB_SECRET or, by default,
the secret kept in the data directory: the one `hubbub serve` uses there.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``token``'s arguments."""
    parser.add_argument("user", help="user id: 1-32 of a-z, 0-9 and _")
    parser.add_argument("--secret", default=None, help="signing secret [env HUBBUB_SECRET]")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where the default secret lives [env HUBBUB_DATA_DIR; default {Settings().data_dir}]",
    )
    parser.add_argument("--ttl", type=int, default=86_400, help="seconds valid [default 86400]")


def run(args: argparse.Namespace) -> int:
    """Print a signed token for ``args.user``."""
    secret = args.secret or os.environ.get("HUBBUB_SECRET")
    if not secret:
        default_dir = os.environ.get("HUBBUB_DATA_DIR", str(Settings().data_dir))
        secret = load_or_create_secret(args.data_dir or Path(default_dir))
    try:
        print(issue_token(args.user, secret, args.ttl))
    except TokenError as exc:
        print(f"hubbub token: {exc}", file=sys.stderr)
        return 2
    return 0
