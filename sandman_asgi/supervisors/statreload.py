"""The fallback change detector: poll the mtimes of ``*.py`` files (no watchfiles)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

from sandman_asgi.config import Config
from sandman_asgi.supervisors.basereload import BaseReload
from sandman_asgi.supervisors.spawn import Target

logger = logging.getLogger("uvicorn.error")


class StatReload(BaseReload):
    """Restart when a ``*.py`` file under the watched directories gets a newer mtime.

    Only ``*.py`` is watched: include/exclude patterns need watchfiles (as in uvicorn).
    The mtimes are recorded just before each child starts, so an edit made while the child
    imports is caught by the next scan.
    """

    reloader_name = "StatReload"

    def __init__(self, config: Config, target: Target, sockets: list[socket.socket]) -> None:
        super().__init__(config, target, sockets)
        self.mtimes: dict[Path, float] = {}
        if config.reload_includes or config.reload_excludes:
            logger.warning(
                "--reload-include and --reload-exclude have no effect unless watchfiles is "
                "installed."
            )

    def should_restart(self) -> list[Path] | None:
        for path, mtime in self.scan():
            previous = self.mtimes.setdefault(path, mtime)  # a new file counts from now
            if mtime > previous:
                return [path]
        return None

    def _start_child(self) -> None:
        self.mtimes = dict(self.scan())
        super()._start_child()

    def scan(self) -> Iterator[tuple[Path, float]]:
        """Every watched ``*.py`` file with its mtime."""
        for path in self.iter_py_files():
            try:
                yield path, path.stat().st_mtime
            except OSError:
                continue  # deleted between the listing and the stat

    def iter_py_files(self) -> Iterator[Path]:
        for directory in self.config.reload_dirs:
            for path in directory.rglob("*.py"):
                yield path.resolve()
