"""The demo web app: a fixed allow-list of static files served at ``/``.

The files ship inside the packages (``hub/demo/`` and the browser client
``clients/js/hubbub.js``), are read once, and are served with their content type,
an ETag (a conditional GET gets 304) and headers that keep the page to its own
origin. Any path not on the list is not ours: the caller answers 404 as before.
"""

from __future__ import annotations

import hashlib
import http
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from websockets.datastructures import Headers
from websockets.http11 import Response

__all__ = ["demo_response"]

_JS = "text/javascript; charset=utf-8"

_ASSETS: dict[str, tuple[str, str, str]] = {
    "/": ("hub", "demo/index.html", "text/html; charset=utf-8"),
    "/index.html": ("hub", "demo/index.html", "text/html; charset=utf-8"),
    "/app.js": ("hub", "demo/app.js", _JS),
    "/style.css": ("hub", "demo/style.css", "text/css; charset=utf-8"),
    "/hubbub.js": ("clients", "js/hubbub.js", _JS),
}
"""URL path -> (package, file inside it, content type)."""

_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'",
    ),
)


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


@cache
def _load(path: str) -> _Asset:
    package, name, content_type = _ASSETS[path]
    body = files(package).joinpath(name).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return _Asset(body, content_type, etag)


def demo_response(path: str, request_headers: Headers) -> Response | None:
    """The response for a demo asset at URL ``path``, or ``None`` when it is not one."""
    if path not in _ASSETS:
        return None
    asset = _load(path)
    headers = Headers(
        [
            ("Content-Type", asset.content_type),
            ("Cache-Control", "no-cache"),
            ("ETag", asset.etag),
            *_SECURITY_HEADERS,
        ]
    )
    if asset.etag in request_headers.get("If-None-Match", ""):
        headers["Content-Length"] = "0"
        status = http.HTTPStatus.NOT_MODIFIED
        return Response(status.value, status.phrase, headers, b"")
    headers["Content-Length"] = str(len(asset.body))
    return Response(http.HTTPStatus.OK.value, http.HTTPStatus.OK.phrase, headers, asset.body)
