from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.serverproc import ServerProcess, sandman


@dataclass(frozen=True)
class ServerCertificate:
    """A throwaway CA and the certificate it issued for localhost and 127.0.0.1."""

    ca: trustme.CA
    cert: trustme.LeafCert
    #: The key and the chain in one file, for ``--ssl-certfile``.
    pem: Path

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        """A client context that trusts the CA, offering ``alpn`` if given."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context


@pytest.fixture(scope="session")
def server_certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    pem = tmp_path_factory.mktemp("tls") / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(pem)
    return ServerCertificate(ca, cert, pem)


@pytest.fixture(scope="module")
def hello_server() -> Iterator[ServerProcess]:
    with sandman("tests.apps:hello") as server:
        yield server


@pytest.fixture(scope="module")
def scope_server() -> Iterator[ServerProcess]:
    with sandman("tests.apps:scope_echo") as server:
        yield server
