"""HAProxy in front of local nodes, configured from the repo's ``docker/haproxy.cfg``.

:func:`local_config` keeps that file's frontend, backend, health check (``/readyz``) and
timeouts and changes only where things listen: the frontend and the stats page on
loopback ports, and one ``server hubN 127.0.0.1:<port>`` line per local node instead of
the three compose services. ``hubbub cluster --haproxy`` and the tests both use it, so what
they run is the compose topology's load balancer.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["DOCKER_CONFIG", "local_config", "template"]

DOCKER_CONFIG = Path(__file__).resolve().parents[1] / "docker" / "haproxy.cfg"
"""The compose topology's HAProxy configuration (in a clone of the repository)."""

_SERVER = re.compile(r"^(\s*)server hub\d+ hub\d+:8765$", flags=re.M)


def template() -> str:
    """The text of ``docker/haproxy.cfg``; a clear error when it is not there (the hub was
    installed without its repository)."""
    try:
        return DOCKER_CONFIG.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{DOCKER_CONFIG} not found: run from a clone of the hubbub repository"
        ) from None


def local_config(
    text: str, port: int, stats_port: int, nodes: list[int], *, check: str = "2s", maxconn: int = 0
) -> str:
    """``text`` (``docker/haproxy.cfg``) with loopback ports: the frontend on ``port``,
    stats on ``stats_port``, server ``hubN`` at ``127.0.0.1:nodes[N-1]``, health checks
    every ``check`` and, when ``maxconn`` is given, that connection limit."""
    servers = list(_SERVER.finditer(text))
    if not servers or not nodes:
        raise ValueError("no `server hubN hubN:8765` lines to replace, or no nodes")
    indent = servers[0].group(1)
    lines = "\n".join(
        f"{indent}server hub{n} 127.0.0.1:{node}" for n, node in enumerate(nodes, start=1)
    )
    text = text[: servers[0].start()] + lines + text[servers[-1].end() :]
    text = text.replace("bind :8765", f"bind 127.0.0.1:{port}")
    text = text.replace("bind :8404", f"bind 127.0.0.1:{stats_port}")
    if maxconn:
        text = re.sub(r"maxconn \d+", f"maxconn {maxconn}", text)
    return re.sub(r"check inter \S+", f"check inter {check}", text)
