"""Starting a server in a child process (the ``spawn`` start method, never ``fork``).

``fork`` would copy the parent's Rust runtime threads and locks in whatever state they
were in; ``spawn`` starts a fresh interpreter that imports the app itself. The listening
sockets travel to the child as inherited descriptors (``allow_connection_pickling``).
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import TYPE_CHECKING, Any

from sandman_asgi.config import STARTUP_FAILURE

if TYPE_CHECKING:
    from sandman_asgi.config import Config
    from sandman_asgi.metrics import SharedMetrics

multiprocessing.allow_connection_pickling()
_spawn = multiprocessing.get_context("spawn")

Target = Callable[..., None]
"""What a child runs: called as ``target(sockets=[...])``, in practice ``Server.run``."""


def spawn_process(
    config: Config,
    target: Target,
    sockets: list[socket.socket],
    health: Connection | None = None,
    metrics: SharedMetrics | None = None,
) -> SpawnProcess:
    """Prepare (not start) a child that runs ``target(sockets=sockets)``.

    ``health`` is the child's end of a pipe: the child answers each ping on it with whether
    its server has finished starting up (see ``multiprocess.Worker``). ``metrics`` is the
    group's metrics segment, which the child's server records into (``--metrics-port``).
    """
    try:
        stdin_fileno: int | None = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        stdin_fileno = None
    kwargs = {
        "config": config,
        "target": target,
        "sockets": sockets,
        "stdin_fileno": stdin_fileno,
        "health": health,
        "metrics": metrics,
    }
    return _spawn.Process(target=child_main, kwargs=kwargs)


def child_main(
    config: Config,
    target: Target,
    sockets: list[socket.socket],
    stdin_fileno: int | None,
    health: Connection | None,
    metrics: SharedMetrics | None = None,
) -> None:
    """Entry point of a child process."""
    # multiprocessing points the child's stdin at /dev/null; give the real one back so a
    # breakpoint() in the app still works under --reload.
    if stdin_fileno is not None:
        try:
            sys.stdin = os.fdopen(stdin_fileno)
        except OSError:
            pass
    # Logging configuration is process state: the child has to apply it again.
    config.configure_logging()

    server: Any = getattr(target, "__self__", None)
    if metrics is not None and server is not None:
        # The supervisor serves the metrics port; this server only records into the group.
        server.metrics = metrics
    if health is not None:
        threading.Thread(target=answer_pings, args=(health, server), daemon=True).start()
    try:
        target(sockets=sockets)
    except KeyboardInterrupt:
        # The re-raised SIGINT after a graceful stop: the parent knows, no traceback wanted.
        pass
    if server is not None and getattr(server, "started", True) is False:
        # Lifespan startup failed: exit like a single-process server does, so that the
        # supervisor stops instead of respawning a worker that can never start.
        sys.exit(STARTUP_FAILURE)


def answer_pings(conn: Connection, server: Any) -> None:
    """Answer every health-check ping with the server's ``started`` flag until the pipe goes.

    A thread (not the event loop) answers, as uvicorn's does: a worker whose loop is busy
    with a long request is still alive; only a stopped or wedged process misses pings.
    """
    while True:
        try:
            conn.recv()
            conn.send(bool(getattr(server, "started", True)))
        except (EOFError, OSError):
            return
