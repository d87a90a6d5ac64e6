"""Where a server listens (TCP on 127.0.0.1 or a unix socket) and how to reach it."""

from __future__ import annotations

import random
import socket
import time
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
# The name a TLS client asks for (SNI) and the run's certificate carries.
SERVER_NAME = "localhost"


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
        if sock.getsockname() == sock.getpeername():
            # A TCP self-connect: nothing is listening (see free_port).
            sock.close()
            raise ConnectionRefusedError(f"self-connect on {self}")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    @property
    def authority(self) -> str:
        """The value for a ``Host`` header."""
        return "localhost" if self.uds is not None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"unix:{self.uds}" if self.uds is not None else f"{self.host}:{self.port}"


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for clients' local ports (Linux default if unreadable)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as file:
            low, high = (int(x) for x in file.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago, chosen *below* the ephemeral range.

    A port from the ephemeral range (what ``bind(0)`` gives) can be handed out again as
    the local port of the harness's own readiness probes; a connect from port P to port P
    with nothing listening succeeds as a TCP self-connect, which then sits on the
    server's port. Ports outside that range never collide with client sockets."""
    low, _ = ephemeral_range()
    top = max(low, 2048)
    for port in random.sample(range(max(1025, top - 12000), top), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
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
