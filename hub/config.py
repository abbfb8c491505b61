"""Node settings: one table drives the ``serve`` flags, ``HUBBUB_*`` variables and defaults.

Each :class:`Option` names a flag (``--outbox-limit``), the environment variable that
sets it when the flag is absent (``HUBBUB_OUTBOX_LIMIT``) and its default. A flag
beats the environment, which beats the default.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from hub.tokens import DEFAULT_MAX_TTL, SecretError, check_secret

__all__ = ["OPTIONS", "Option", "Settings", "add_arguments", "settings_from_args"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a node needs to run; see :data:`OPTIONS` for what each field means."""

    host: str = "127.0.0.1"
    port: int = 8765
    metrics_address: tuple[str, int] | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    data_dir: Path = Path("hubbub-data")
    secret: str | None = None
    max_token_ttl: int = DEFAULT_MAX_TTL
    token_audience: str | None = None
    token_issuer: str | None = None
    dev: bool = False
    sync: Literal["normal", "full"] = "normal"
    redis_url: str | None = None
    redis_cluster: bool = False
    partitions: int = 16
    redis_ca: Path | None = None
    redis_cert: Path | None = None
    redis_key: Path | None = None
    demo: bool = True
    demo_origins: tuple[str, ...] = ()
    max_frame: int = 64 * 1024
    outbox_limit: int = 4 * 1024 * 1024
    request_rate: float = 100.0
    request_burst: float = 300.0
    write_rate: float = 10.0
    write_burst: float = 30.0
    user_write_rate: float | None = None
    user_write_burst: float | None = None
    follows_per_hour: int = 200
    max_mentions: int = 10
    connections_per_user: int = 20
    flood_strikes: int = 50
    garbage_strikes: int = 10
    garbage_forgive: float = 30.0
    auth_timeout: float = 10.0
    presence_grace: float = 5.0
    presence_ttl: float = 15.0
    fanout_limit: int = 10_000
    counts_window: float = 0.25
    retention_seconds: int = 900
    retention_per_log: int = 1000
    retention_max_seconds: int = 86_400
    prune_interval: float = 60.0
    notification_days: int = 90
    notifications_per_user: int = 1000
    drain_timeout: float = 5.0
    ping_interval: float = 20.0


@dataclass(frozen=True, slots=True)
class Option:
    """One setting as the command line and the environment see it."""

    field: str
    help: str
    parse: Callable[[str], Any] = str
    flag_name: str | None = None

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--data-dir``."""
        return "--" + (self.flag_name or self.field.replace("_", "-"))

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``HUBBUB_DATA_DIR``."""
        return "HUBBUB_" + self.field.upper()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _number(
    kind: Callable[[str], float], low: float, *, above: bool = False, high: float | None = None
) -> Callable[[str], Any]:
    """A parser of ``kind`` (int or float) that refuses values below ``low`` (at or below
    it with ``above``) or over ``high``: a negative timeout or a zero rate is a mistake,
    not a setting."""
    bound = f"> {low:g}" if above else f">= {low:g}"
    what = f"{'a whole number' if kind is int else 'a number'} {bound}"
    if high is not None:
        what += f" and <= {high:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        out_of_range = value < low or (above and value == low)
        if not math.isfinite(value) or out_of_range or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_COUNT = _number(int, 1)
_SECONDS = _number(float, 0)
_POSITIVE = _number(float, 0, above=True)

_SYNC_MODES: dict[str, Literal["normal", "full"]] = {"normal": "normal", "full": "full"}


def _parse_sync(text: str) -> Literal["normal", "full"]:
    try:
        return _SYNC_MODES[text]
    except KeyError:
        raise ValueError("expected 'normal' or 'full'") from None


def _parse_secret(text: str) -> str:
    try:
        return check_secret(text)
    except SecretError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_ORIGIN = re.compile(r"(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?/?", re.I)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _parse_origins(text: str) -> tuple[str, ...]:
    """Web origins (``scheme://host[:port]``, separated by commas or spaces) as a browser
    writes them: lower case, without a default port or a trailing slash."""
    origins: list[str] = []
    for item in text.replace(",", " ").split():
        match = _ORIGIN.fullmatch(item)
        port = int(match.group(3) or 0) if match else 0
        if match is None or port > 65535:
            raise argparse.ArgumentTypeError(
                f"expected origins like https://app.example.com or http://127.0.0.1:8080, "
                f"got {item!r}"
            )
        scheme, host = match.group(1).lower(), match.group(2).lower()
        shown_port = f":{port}" if match.group(3) and port != _DEFAULT_PORTS[scheme] else ""
        origins.append(f"{scheme}://{host}{shown_port}")
    return tuple(dict.fromkeys(origins))


def _parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9100`` for IPv6; port 0 picks a free one)."""
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:9100, got {text!r}")
    return host, int(port)


OPTIONS: tuple[Option, ...] = (
    Option("host", "interface to listen on (0.0.0.0 for all)"),
    Option(
        "port", "TCP port for WebSocket and HTTP (0 picks a free one)", _number(int, 0, high=65535)
    ),
    Option(
        "metrics_address",
        "HOST:PORT to serve /metrics on instead of the main port (default: the main port)",
        _parse_address,
    ),
    Option(
        "tls_cert",
        "PEM certificate chain (leaf first): serve wss:// and https:// (with --tls-key)",
        Path,
    ),
    Option("tls_key", "PEM private key of --tls-cert", Path),
    Option("data_dir", "directory of the embedded store and the token secret", Path),
    Option(
        "secret",
        "HS256 secret that signs tokens, at least 32 bytes (default: one kept in the data dir)",
        _parse_secret,
    ),
    Option(
        "max_token_ttl",
        "longest token validity accepted, in seconds (exp beyond iat, and beyond now)",
        _COUNT,
    ),
    Option("token_audience", "the aud claim a token must carry (default: tokens carry none)"),
    Option("token_issuer", "the iss claim a token must carry (default: not checked)"),
    Option("dev", "development mode: the hub hands out tokens at /dev/token", _parse_bool),
    Option(
        "sync", "SQLite durability: 'normal' survives a crash, 'full' a power loss", _parse_sync
    ),
    Option(
        "redis_url",
        "Redis URL (redis://host:port/db): share one world across nodes (default: embedded)",
        flag_name="redis",
    ),
    Option(
        "redis_cluster",
        "with --redis: the URL names one node of a Redis Cluster (7+; sharded pub/sub)",
        _parse_bool,
    ),
    Option(
        "partitions",
        "with --redis-cluster: partitions of a new world (fixed once the first node starts)",
        _number(int, 1, high=1024),
    ),
    Option("redis_ca", "with --redis rediss://: PEM file of the CAs to check Redis against", Path),
    Option("redis_cert", "with --redis rediss://: PEM client certificate (with --redis-key)", Path),
    Option("redis_key", "with --redis rediss://: PEM private key of --redis-cert", Path),
    Option("demo", "serve the demo web app at / (false to turn it off)", _parse_bool),
    Option(
        "demo_origins",
        "origins (comma-separated) that may frame the demo and hand it a token by "
        "postMessage (default: its own origin only)",
        _parse_origins,
    ),
    Option("max_frame", "largest frame a client may send, in bytes", _COUNT),
    Option("outbox_limit", "bytes queued for one slow client before it is cut with 4001", _COUNT),
    Option("request_rate", "requests per second allowed per connection", _POSITIVE),
    Option("request_burst", "burst of requests allowed per connection", _POSITIVE),
    Option("write_rate", "writes (post, like, follow, ...) per second per connection", _POSITIVE),
    Option("write_burst", "burst of writes allowed per connection", _POSITIVE),
    Option(
        "user_write_rate",
        "writes per second per user, on all connections (None: --write-rate)",
        _POSITIVE,
    ),
    Option("user_write_burst", "burst of writes per user (None: --write-burst)", _POSITIVE),
    Option("follows_per_hour", "new follows per user per hour (also the burst)", _COUNT),
    Option("max_mentions", "most users one post may @mention (more: too_large)", _COUNT),
    Option("connections_per_user", "connections one user may hold on all nodes (4004)", _COUNT),
    Option(
        "flood_strikes", "frames rate_limited (1 forgiven/s) before the next one is 4502", _COUNT
    ),
    Option("garbage_strikes", "undecodable frames (not forgiven yet) before 4501", _COUNT),
    Option("garbage_forgive", "seconds after which one garbage strike is forgiven", _POSITIVE),
    Option("auth_timeout", "seconds a new connection has to authenticate", _POSITIVE),
    Option("presence_grace", "seconds offline before followers see it (no flapping)", _SECONDS),
    Option("presence_ttl", "with --redis: seconds until a dead node's users go offline", _POSITIVE),
    Option("fanout_limit", "with --redis: followers from which posts are merged on read", _COUNT),
    Option("counts_window", "seconds over which like-count updates are coalesced", _SECONDS),
    Option("retention_seconds", "resume window: seconds of changes kept", _number(int, 0)),
    Option("retention_per_log", "resume window: newest changes kept per log, whatever age", _COUNT),
    Option(
        "retention_max_seconds",
        "hard bound: no change older than this survives a prune (the newest per log neither)",
        _number(int, 0),
    ),
    Option("prune_interval", "seconds between change-log prunes", _POSITIVE),
    Option("notification_days", "days a notification is kept after its newest actor", _COUNT),
    Option("notifications_per_user", "newest notifications kept per user (prune)", _COUNT),
    Option(
        "drain_timeout", "seconds SIGTERM waits for clients to take their last frames", _SECONDS
    ),
    Option(
        "ping_interval",
        "seconds between keepalive pings; a connection silent for as long is closed (0: off)",
        _SECONDS,
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per :data:`OPTIONS` entry, documenting its variable and default."""
    defaults = Settings()
    for option in OPTIONS:
        default = getattr(defaults, option.field)
        kind = "flag" if option.parse is _parse_bool else "value"
        parser.add_argument(
            option.flag,
            dest=option.field,
            metavar=None if kind == "flag" else option.field.upper(),
            default=None,
            type=option.parse,
            nargs="?" if kind == "flag" else None,
            const=True if kind == "flag" else None,
            help=f"{option.help} [env {option.env}; default {default}]",
        )


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> Settings:
    """Build :class:`Settings` from parsed flags, falling back to ``HUBBUB_*`` variables;
    exit with a one-line message when options contradict each other."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        value = getattr(args, option.field, None)
        if value is None and option.env in environ:
            try:
                value = option.parse(environ[option.env])
            except (ValueError, argparse.ArgumentTypeError) as exc:
                raise SystemExit(f"hubbub: bad {option.env}: {exc}") from exc
        if value is not None:
            values[option.field] = value
    if ("tls_cert" in values) != ("tls_key" in values):
        raise SystemExit("hubbub: --tls-cert and --tls-key go together: give both or neither")
    if "redis_url" not in values and {"redis_ca", "redis_cert", "redis_key"} & set(values):
        raise SystemExit("hubbub: --redis-ca, --redis-cert and --redis-key need --redis")
    if "redis_url" not in values and values.get("redis_cluster"):
        raise SystemExit("hubbub: --redis-cluster needs --redis URL (any node of the cluster)")
    if not values.get("redis_cluster") and "partitions" in values:
        raise SystemExit("hubbub: --partitions needs --redis-cluster (one Redis has one)")
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in values.items() if k in known})
    if settings.retention_max_seconds < settings.retention_seconds:
        raise SystemExit(
            f"hubbub: --retention-max-seconds ({settings.retention_max_seconds}) is below"
            f" --retention-seconds ({settings.retention_seconds}): the hard bound must not"
            " cut the resume window short; raise it or lower --retention-seconds"
        )
    return settings
