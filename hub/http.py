"""Plain HTTP on the WebSocket port: health, readiness, metrics and dev tokens.

``websockets`` calls :func:`HttpRoutes.process_request` for every incoming request;
returning ``None`` lets a WebSocket handshake continue, returning a response answers
plain HTTP. With ``--metrics-address``, ``/metrics`` moves to a listener of its own
(:class:`MetricsRoutes`) and the main port answers it 404.
"""

from __future__ import annotations

import http
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from hub.config import Settings
from hub.demo import DemoApp
from hub.metrics import CONTENT_TYPE_LATEST, NodeMetrics
from hub.tokens import TokenError, Tokens

__all__ = ["SERVER_HEADER", "HttpRoutes", "MetricsRoutes", "NodeStatus"]

SERVER_HEADER = "hubbub"
"""The ``Server`` header of every response: no library or Python versions."""


class NodeStatus(Protocol):
    """What the HTTP endpoints read of the node (``hub.node.Node`` provides it)."""

    settings: Settings
    metrics: NodeMetrics
    tokens: Tokens
    draining: bool

    @property
    def ready(self) -> bool:
        """Whether the node takes connections."""


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _text(status: http.HTTPStatus, text: str) -> Response:
    return _response(status, text.encode() + b"\n", "text/plain; charset=utf-8")


def _metrics(node: NodeStatus) -> Response:
    return _response(http.HTTPStatus.OK, node.metrics.render(), CONTENT_TYPE_LATEST)


class MetricsRoutes:
    """The ``--metrics-address`` listener: ``/metrics`` and nothing else, never a
    WebSocket."""

    def __init__(self, node: NodeStatus) -> None:
        self._node = node

    def process_request(self, connection: ServerConnection, request: Request) -> Response:
        """Answer ``/metrics``, or 404."""
        if urlsplit(request.path).path == "/metrics":
            return _metrics(self._node)
        return _text(http.HTTPStatus.NOT_FOUND, "not found: GET /metrics")


class HttpRoutes:
    """Answers the node's HTTP endpoints."""

    def __init__(self, node: NodeStatus) -> None:
        self._node = node
        settings = node.settings
        self._demo = DemoApp(settings.demo_origins) if settings.demo else None
        self._metrics_here = settings.metrics_address is None

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP, or return ``None`` to continue a WebSocket handshake."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if not self._node.ready:
                return _text(http.HTTPStatus.SERVICE_UNAVAILABLE, "node not ready; retry")
            return None
        url = urlsplit(request.path)
        if url.path == "/healthz":
            return _text(http.HTTPStatus.OK, "ok")
        if url.path == "/readyz":
            if self._node.ready:
                return _text(http.HTTPStatus.OK, "ready")
            why = "draining" if self._node.draining else "not ready"
            return _text(http.HTTPStatus.SERVICE_UNAVAILABLE, why)
        if url.path == "/metrics" and self._metrics_here:
            return _metrics(self._node)
        if url.path == "/dev/token" and self._node.settings.dev:
            return self._dev_token(parse_qs(url.query).get("user", [""])[0])
        if self._demo is not None and (page := self._demo.response(url.path, request.headers)):
            return page
        return _text(
            http.HTTPStatus.NOT_FOUND,
            "not found: connect a WebSocket with subprotocol hubbub.v1.json or "
            "hubbub.v1.msgpack, or GET /healthz, /readyz, /metrics",
        )

    def _dev_token(self, user: str) -> Response:
        try:
            token = self._node.tokens.issue(user)
        except TokenError as exc:
            return _text(http.HTTPStatus.BAD_REQUEST, str(exc))
        body = orjson.dumps({"user": user, "token": token})
        return _response(http.HTTPStatus.OK, body, "application/json")
