"""Creating listening sockets and announcing them, as uvicorn does.

Python binds (so ``--fd``, ``--uds``, pre-bound sockets for ``--workers``/``--reload`` and
``Server.serve(sockets=...)`` all share one path); the Rust core accepts on a duplicate of
the descriptor.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sandman_asgi.config import Config

logger = logging.getLogger("uvicorn.error")


class BindError(OSError):
    """The address could not be bound; the message is uvicorn's log line."""

    def __str__(self) -> str:
        # The message already starts with "[Errno N]"; OSError's str() would add another.
        return str(self.strerror)


def _bind_error(exc: OSError, address: object) -> BindError:
    reason = (exc.strerror or str(exc)).lower()
    return BindError(
        exc.errno,
        f"[Errno {exc.errno}] error while attempting to bind on address {address!r}: {reason}",
    )


def bind_socket(config: Config) -> socket.socket:
    """Create, bind and listen on the socket ``config`` describes (uds, fd, or host:port)."""
    if config.fd is not None:
        sock = socket.fromfd(config.fd, socket.AF_UNIX, socket.SOCK_STREAM)
        # fromfd guesses nothing: re-create with the real family so getsockname() is right.
        family = sock.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
        sock.close()
        return socket.socket(fileno=os.dup(config.fd), family=family, type=socket.SOCK_STREAM)

    if config.uds is not None:
        path = config.uds
        mode = None
        if os.path.exists(path):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.remove(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            raise _bind_error(exc, path) from None
        os.chmod(path, mode if mode is not None else 0o666)
        sock.listen(config.backlog)
        return sock

    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(config.host, config.port, family=family, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
        if family == socket.AF_INET:
            try:
                infos = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise _bind_error(exc, (config.host, config.port)) from None
    if not infos:
        raise BindError(0, f"Could not resolve host {config.host!r}")
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise _bind_error(exc, (config.host, config.port)) from None
    sock.listen(config.backlog)
    return sock


def log_running(config: Config, sock: socket.socket) -> None:
    """Log ``Sandman running on ...`` for the socket (uvicorn's line, our name)."""
    if config.fd is not None:
        message = "Sandman running on socket %s (Press CTRL+C to quit)"
        args: tuple = (sock.getsockname(),)
        color = (
            "Sandman running on " + click.style("socket %s", bold=True) + " (Press CTRL+C to quit)"
        )
    elif config.uds is not None:
        message = "Sandman running on unix socket %s (Press CTRL+C to quit)"
        args = (config.uds,)
        color = (
            "Sandman running on "
            + click.style("unix socket %s", bold=True)
            + " (Press CTRL+C to quit)"
        )
    else:
        port = sock.getsockname()[1]
        addr_format = "%s://[%s]:%d" if ":" in config.host else "%s://%s:%d"
        scheme = "https" if config.is_ssl else "http"
        message = f"Sandman running on {addr_format} (Press CTRL+C to quit)"
        args = (scheme, config.host, port)
        color = (
            "Sandman running on " + click.style(addr_format, bold=True) + " (Press CTRL+C to quit)"
        )
    logger.info(message, *args, extra={"color_message": color})
    sys.stdout.flush()
