"""Certificates for TLS tests, made by a private CA of the test's own (``trustme``)."""

from __future__ import annotations

import base64
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["TlsFiles", "make_tls_files"]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA, a server's chain and key (127.0.0.1, localhost), a client's
    chain and key, and the CA of a stranger nobody should trust."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_ca: Path

    def serve_flags(self) -> list[str]:
        """``hubbub serve`` flags that serve ``wss://`` with the server certificate."""
        return ["--tls-cert", str(self.server_cert), "--tls-key", str(self.server_key)]

    def trusting(self) -> ssl.SSLContext:
        """A client context that trusts the CA (and checks hostnames)."""
        return ssl.create_default_context(cafile=str(self.ca))

    def trusting_the_stranger(self) -> ssl.SSLContext:
        """A client context that trusts only the stranger's CA."""
        return ssl.create_default_context(cafile=str(self.stranger_ca))

    def server_spki_sha256(self) -> str:
        """Base64 SHA-256 of the server key's SubjectPublicKeyInfo (what Chromium's
        ``--ignore-certificate-errors-spki-list`` names)."""
        cert = x509.load_pem_x509_certificate(self.server_cert.read_bytes())
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def make_tls_files(directory: Path) -> TlsFiles:
    """Write a fresh CA, server and client certificates under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, stranger = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("hubbub-node@example.test")
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        stranger_ca=directory / "stranger.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    stranger.cert_pem.write_to_path(str(files.stranger_ca))
    server.private_key_pem.write_to_path(str(files.server_key))
    client.private_key_pem.write_to_path(str(files.client_key))
    with files.server_cert.open("wb") as out:
        for blob in server.cert_chain_pems:
            out.write(blob.bytes())
    with files.client_cert.open("wb") as out:
        for blob in client.cert_chain_pems:
            out.write(blob.bytes())
    return files
