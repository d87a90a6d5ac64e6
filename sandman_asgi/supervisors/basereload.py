"""``--reload``: run the server in a child process and restart it when source files change.

The parent binds the socket once (so the port never goes away during a restart), starts a
child running ``Server.run(sockets=[sock])``, and polls its change detector every
``--reload-delay`` seconds. On a change: SIGTERM the child, wait for its graceful stop,
start a new one. SIGINT/SIGTERM to the parent stop the child and exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path
from types import FrameType

import click

from sandman_asgi.config import Config
from sandman_asgi.supervisors.spawn import Target, spawn_process
from sandman_asgi.supervisors.stopflag import StopFlag

logger = logging.getLogger("uvicorn.error")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class BaseReload:
    """The reload loop; subclasses say what changed in ``should_restart()``."""

    reloader_name = "BaseReload"

    def __init__(self, config: Config, target: Target, sockets: list[socket.socket]) -> None:
        self.config = config
        self.target = target
        self.sockets = sockets
        self.should_exit = StopFlag()
        self.pid = os.getpid()
        self._previous_handlers: dict[int, object] = {}

    def signal_handler(self, sig: int, frame: FrameType | None) -> None:
        """SIGINT/SIGTERM: leave the loop (safe in a handler, see ``StopFlag``)."""
        self.should_exit.set()

    def pause(self) -> bool:
        """Sleep ``reload_delay`` seconds; True if the supervisor should stop instead."""
        return self.should_exit.wait(self.config.reload_delay)

    def should_restart(self) -> list[Path] | None:
        """The changed files since the last call, or None. Called after ``pause()``."""
        raise NotImplementedError

    def run(self) -> None:
        """Supervise until SIGINT/SIGTERM."""
        self.startup()
        try:
            while not self.pause():
                changes = self.should_restart()
                if changes:
                    logger.warning(
                        "%s detected changes in %s. Reloading...",
                        self.reloader_name,
                        ", ".join(_display_path(path) for path in changes),
                    )
                    self.restart()
        finally:
            self.shutdown()

    def startup(self) -> None:
        """Log the reloader line, take over SIGINT/SIGTERM, start the first child."""
        pid = str(self.pid)
        logger.info(
            "Started reloader process [%s] using %s",
            pid,
            self.reloader_name,
            extra={
                "color_message": "Started reloader process [{}] using {}".format(
                    click.style(pid, fg="cyan", bold=True),
                    click.style(self.reloader_name, fg="cyan", bold=True),
                )
            },
        )
        for sig in HANDLED_SIGNALS:
            self._previous_handlers[sig] = signal.signal(sig, self.signal_handler)
        self.before_first_child()
        self._start_child()

    def before_first_child(self) -> None:
        """Start watching, if the detector needs to, before the first child exists (with
        the signal handlers already in place, so a stop request is never lost)."""

    def _start_child(self) -> None:
        self.process = spawn_process(self.config, self.target, self.sockets)
        self.process.start()

    def restart(self) -> None:
        """Stop the child gracefully and start a fresh one (which re-imports the app)."""
        self.process.terminate()
        self.process.join()
        self._start_child()

    def shutdown(self) -> None:
        """Stop the child, close the sockets, restore the signal handlers."""
        self.process.terminate()
        self.process.join()
        for sock in self.sockets:
            sock.close()
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self.should_exit.close()
        pid = str(self.pid)
        logger.info(
            "Stopping reloader process [%s]",
            pid,
            extra={
                "color_message": "Stopping reloader process [{}]".format(
                    click.style(pid, fg="cyan", bold=True)
                )
            },
        )


def _display_path(path: Path) -> str:
    try:
        return f"'{path.relative_to(Path.cwd())}'"
    except ValueError:
        return f"'{path}'"
