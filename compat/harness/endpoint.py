"""Where a server listens (TCP on 127.0.0.1 or a unix socket) and how to reach it."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    """A TCP port on the loopback interface, or a unix socket path."""

    host: str = LOOPBACK
    port: int = 0
    uds: str | None = None

    def connect(self, timeout: float) -> socket.socket:
        """Open a connection; ``timeout`` bounds the connect and every later operation."""
        if self.uds is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(self.uds)
            except OSError:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    @property
    def authority(self) -> str:
        """The value for a ``Host`` header."""
        return "localhost" if self.uds is not None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"unix:{self.uds}" if self.uds is not None else f"{self.host}:{self.port}"


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def accepts(endpoint: Endpoint, timeout: float = 0.2) -> bool:
    """Whether a connection to ``endpoint`` succeeds right now."""
    try:
        endpoint.connect(timeout).close()
    except OSError:
        return False
    return True


def wait_accepting(endpoint: Endpoint, timeout: float, alive: object = None) -> bool:
    """Poll until ``endpoint`` accepts a connection; ``False`` after ``timeout`` seconds or as
    soon as ``alive()`` (when given) says the process is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if accepts(endpoint):
            return True
        if callable(alive) and not alive():
            return False
        time.sleep(0.05)
    return False
