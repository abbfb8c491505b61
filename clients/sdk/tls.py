"""TLS for the clients: trusting a private certificate authority on ``wss://``."""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["trusting"]


def trusting(ca_file: Path | None) -> ssl.SSLContext | None:
    """A client TLS context that checks servers against the CAs in ``ca_file`` (PEM),
    hostname included; None for None (then the system's authorities are used). Raises
    ValueError when the file is missing or holds no certificate."""
    if ca_file is None:
        return None
    if not ca_file.is_file():
        raise ValueError(f"CA file {ca_file} not found: give the PEM file of the hub's CA")
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except ssl.SSLError as exc:
        raise ValueError(f"{ca_file} holds no PEM certificate ({exc.reason or exc})") from None
