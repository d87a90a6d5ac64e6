"""A certificate authority made for one run, a server certificate it signed for 127.0.0.1 and
localhost, and client TLS contexts that trust it and offer chosen ALPN protocols."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

from compat.harness.endpoint import SERVER_NAME


@dataclass(frozen=True)
class TLSFiles:
    """The server's PEM files and what a client needs to check them."""

    certfile: Path  # the server certificate (leaf first, then the chain)
    keyfile: Path  # its private key, PKCS#8 (the one key format every peer reads)
    ca_pem: bytes
    server_cert_pem: str  # the leaf certificate, as the tls extension reports it

    def client_context(self, alpn: list[str]) -> ssl.SSLContext:
        """A client context that trusts the run's CA and offers ``alpn``."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        context.set_alpn_protocols(alpn)
        return context


def make_tls_files(folder: Path) -> TLSFiles:
    """Write a fresh server certificate and key into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert(SERVER_NAME, "127.0.0.1")
    certfile = folder / "server.crt"
    keyfile = folder / "server.key"
    certfile.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keyfile.chmod(0o600)
    return TLSFiles(
        certfile=certfile,
        keyfile=keyfile,
        ca_pem=ca.cert_pem.bytes(),
        server_cert_pem=issued.cert_chain_pems[0].bytes().decode(),
    )


def pem_to_der(pem: str) -> bytes:
    """The DER bytes of one PEM certificate (comparing DER ignores line-wrapping choices)."""
    return ssl.PEM_cert_to_DER_cert(pem.strip() + "\n")
