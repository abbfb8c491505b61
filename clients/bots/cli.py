"""``hubbub bot run FILE``: load a bot file and run its :class:`Bot` against a hub."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import orjson

from clients.bots.framework import Bot
from clients.sdk.errors import SdkError
from clients.sdk.tls import trusting

__all__ = ["DESCRIPTION", "configure", "load_bot", "run"]

DESCRIPTION = """\
Run a bot: a Python file that defines `bot = Bot(...)` with handlers
(see clients/examples/). The bot reconnects and resumes by itself and stops on
Ctrl-C or SIGTERM.

examples:
  hubbub bot run clients/examples/reply_bot.py --url ws://127.0.0.1:8765/ --token TOKEN
  hubbub bot run clients/examples/welcome_bot.py --dev-user welcomer   # against `serve --dev`
"""


class BotError(Exception):
    """A bot could not be loaded or started; the message says what to do."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``bot``'s sub-commands and options."""
    commands = parser.add_subparsers(dest="action", required=True, metavar="run")
    runner = commands.add_parser("run", help="run a bot file", description=DESCRIPTION)
    runner.formatter_class = argparse.RawDescriptionHelpFormatter
    runner.add_argument("file", type=Path, help="the bot's Python file")
    runner.add_argument(
        "--url",
        default=os.environ.get("HUBBUB_URL", "ws://127.0.0.1:8765/"),
        help="the hub's WebSocket URL [env HUBBUB_URL; default ws://127.0.0.1:8765/]",
    )
    who = runner.add_mutually_exclusive_group()
    who.add_argument(
        "--token",
        default=os.environ.get("HUBBUB_TOKEN"),
        help="the bot user's token (from `hubbub token NAME`) [env HUBBUB_TOKEN]",
    )
    who.add_argument("--dev-user", help="get a token for this user from a `serve --dev` hub")
    runner.add_argument(
        "--ca-file",
        type=Path,
        default=os.environ.get("HUBBUB_CA_FILE"),
        help="for wss:// URLs: PEM file of the CA that signed the hub's certificate "
        "[env HUBBUB_CA_FILE; default the system's CAs]",
    )
    runner.add_argument("--codec", choices=["json", "msgpack"], default="json")
    runner.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def load_bot(path: Path) -> Bot:
    """The :class:`Bot` a file defines (its ``bot`` variable, or its only Bot)."""
    if not path.is_file():
        raise BotError(f"no bot file at {path}")
    spec = importlib.util.spec_from_file_location(f"hubbub_bot_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise BotError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = getattr(module, "bot", None)
    if isinstance(found, Bot):
        return found
    bots = [value for value in vars(module).values() if isinstance(value, Bot)]
    if len(bots) != 1:
        raise BotError(f"{path} must define one Bot, e.g. `bot = Bot('name')`")
    return bots[0]


def dev_token(url: str, user: str, tls: ssl.SSLContext | None = None) -> str:
    """Ask a ``serve --dev`` hub at ``url`` for a token of ``user`` (over HTTPS for a
    ``wss://`` URL, checked with ``tls``)."""
    parts = urllib.parse.urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    query = urllib.parse.urlencode({"user": user})
    address = f"{scheme}://{parts.netloc}/dev/token?{query}"
    try:
        with urllib.request.urlopen(address, timeout=10, context=tls) as response:
            return str(orjson.loads(response.read())["token"])
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise BotError(f"{address}: {exc.code} {detail} (is the hub run with --dev?)") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise BotError(f"cannot get a dev token from {address}: {exc}") from exc


async def _run_until_stopped(
    bot: Bot, url: str, token: str, codec: str, tls: ssl.SSLContext | None
) -> None:
    running = bot.run_forever(url, token, codec=codec, tls=tls)
    task = asyncio.get_running_loop().create_task(running)
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _tls(ca_file: str | Path | None) -> ssl.SSLContext | None:
    try:
        return trusting(Path(ca_file) if ca_file else None)
    except ValueError as exc:
        raise BotError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Load and run the bot; exit 1 with a readable message when it cannot run."""
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        bot = load_bot(args.file)
        tls = _tls(args.ca_file)
        token = dev_token(args.url, args.dev_user, tls) if args.dev_user else args.token
        if not token:
            raise BotError("give --token (or HUBBUB_TOKEN), or --dev-user NAME for a --dev hub")
        asyncio.run(_run_until_stopped(bot, args.url, token, args.codec, tls))
    except (BotError, SdkError) as exc:
        print(f"hubbub bot: {exc}", file=sys.stderr)
        return 1
    return 0
