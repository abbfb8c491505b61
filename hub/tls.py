"""TLS for the hub: the server context of ``wss://`` and HTTPS, and the TLS options of a
``rediss://`` connection.

``hubbub serve --tls-cert FILE --tls-key FILE`` serves WebSocket (``wss://``), the HTTP
routes (``/healthz``, ``/readyz``, ``/metrics``, the demo) and a separate metrics
address over TLS 1.2 or later with that certificate chain (PEM, the leaf first) and
key. To Redis, ``--redis rediss://...`` speaks TLS and checks the server's certificate
against the system's authorities, or against ``--redis-ca``; ``--redis-cert`` and
``--redis-key`` present a client certificate (Redis' ``tls-auth-clients``). Those three
travel in the URL's query (``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, which
redis-py reads there), so every connection the node opens from the URL uses them.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["TlsError", "redis_url_with_tls", "server_context"]


class TlsError(ValueError):
    """A TLS option that cannot work (a missing or unreadable file, a mismatched key)."""


def server_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The server side of TLS with the certificate chain ``cert`` and its ``key`` (None
    for neither: plain ``ws://``)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise TlsError("--tls-cert and --tls-key go together: give both or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in (cert, key):
        if not path.is_file():
            raise TlsError(f"TLS file {path} not found: give a PEM file that exists")
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise TlsError(
            f"cannot use {cert} with {key} ({exc.reason or exc}): give a PEM certificate "
            "chain, leaf first, and the private key that matches it"
        ) from None
    return context


def redis_url_with_tls(
    url: str, ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> str:
    """``url`` with the TLS files of ``--redis-ca``, ``--redis-cert`` and ``--redis-key``
    in its query; raises :class:`TlsError` for a plain ``redis://`` URL given them, a
    certificate without its key (or the reverse), or a file that does not exist."""
    wanted = {"ssl_ca_certs": ca, "ssl_certfile": cert, "ssl_keyfile": key}
    given = {name: path for name, path in wanted.items() if path is not None}
    if not given:
        return url
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        raise TlsError(
            f"--redis-ca, --redis-cert and --redis-key need a rediss:// URL, not {parts.scheme}://"
        )
    if (cert is None) != (key is None):
        raise TlsError("--redis-cert and --redis-key go together: give both or neither")
    for path in given.values():
        if not path.is_file():
            raise TlsError(f"TLS file {path} not found: give a PEM file that exists")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in given]
    query += [(name, str(path)) for name, path in given.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))
