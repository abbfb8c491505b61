"""The demo web app: a fixed allow-list of static files served at ``/``.

The files ship inside the packages (``hub/demo/`` and the browser client
``clients/js/hubbub.js``), are read once, and are served with their content type,
an ETag (a conditional GET gets 304) and headers that keep the page to its own
origin. Any path not on the list is not ours: the caller answers 404 as before.

Framing: only the page's own origin and the configured ``--demo-origins`` may frame it
(``Content-Security-Policy: frame-ancestors``; ``X-Frame-Options: SAMEORIGIN`` for
browsers without CSP). The page learns the same origins from a ``<meta
name="hubbub-embedders">`` tag filled in here, and takes a ``postMessage`` token only
from its parent frame on one of them (``hub/demo/app.js``).
"""

from __future__ import annotations

import hashlib
import html
import http
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files

from websockets.datastructures import Headers
from websockets.http11 import Response

__all__ = ["EMBEDDERS_PLACEHOLDER", "DemoApp"]

_JS = "text/javascript; charset=utf-8"
_HTML = "text/html; charset=utf-8"

_ASSETS: dict[str, tuple[str, str, str]] = {
    "/": ("hub", "demo/index.html", _HTML),
    "/index.html": ("hub", "demo/index.html", _HTML),
    "/app.js": ("hub", "demo/app.js", _JS),
    "/style.css": ("hub", "demo/style.css", "text/css; charset=utf-8"),
    "/hubbub.js": ("clients", "js/hubbub.js", _JS),
}
"""URL path -> (package, file inside it, content type)."""

EMBEDDERS_PLACEHOLDER = b"{{embedders}}"
"""Where ``index.html`` gets the space-separated origins allowed to embed the page."""

_CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'self'"
)


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


def _load(path: str, embedders: bytes) -> _Asset:
    package, name, content_type = _ASSETS[path]
    body = files(package).joinpath(name).read_bytes()
    if content_type == _HTML:
        body = body.replace(EMBEDDERS_PLACEHOLDER, embedders)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return _Asset(body, content_type, etag)


class DemoApp:
    """The demo's files and headers for a hub whose page the ``origins`` may embed
    (``scheme://host[:port]`` each, as :mod:`hub.config` validates them)."""

    def __init__(self, origins: Iterable[str] = ()) -> None:
        allowed = " ".join(origins)
        embedders = html.escape(allowed).encode()
        self._assets = {path: _load(path, embedders) for path in _ASSETS}
        self._headers = (
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "SAMEORIGIN"),
            ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", f"{_CSP} {allowed}".rstrip()),
        )

    def response(self, path: str, request_headers: Headers) -> Response | None:
        """The response for a demo asset at URL ``path``, or ``None`` when it is not one."""
        asset = self._assets.get(path)
        if asset is None:
            return None
        headers = Headers(
            [
                ("Content-Type", asset.content_type),
                ("Cache-Control", "no-cache"),
                ("ETag", asset.etag),
                *self._headers,
            ]
        )
        if asset.etag in request_headers.get("If-None-Match", ""):
            headers["Content-Length"] = "0"
            status = http.HTTPStatus.NOT_MODIFIED
            return Response(status.value, status.phrase, headers, b"")
        headers["Content-Length"] = str(len(asset.body))
        return Response(http.HTTPStatus.OK.value, http.HTTPStatus.OK.phrase, headers, asset.body)
