"""The default change detector: watchfiles (OS file events), filtered by uvicorn's rules."""

from __future__ import annotations

import socket
from pathlib import Path

from watchfiles import watch

from sandman_asgi.config import Config
from sandman_asgi.supervisors.basereload import BaseReload
from sandman_asgi.supervisors.reloadpaths import ReloadFilter
from sandman_asgi.supervisors.spawn import Target


class WatchFilesReload(BaseReload):
    """Restart when a file matching the include patterns (and no exclude) changes."""

    reloader_name = "WatchFiles"

    def __init__(self, config: Config, target: Target, sockets: list[socket.socket]) -> None:
        super().__init__(config, target, sockets)
        self.reload_dirs = list(config.reload_dirs)
        self.watch_filter = ReloadFilter(config)
        # watchfiles' own default filter is replaced by ours (uvicorn's patterns), applied
        # after the fact so that the log names exactly the files that caused the restart.
        # yield_on_timeout makes next() return regularly even when nothing changes.
        self.watcher = watch(
            *self.reload_dirs,
            watch_filter=None,
            stop_event=self.should_exit,
            yield_on_timeout=True,
            rust_timeout=1000,
            ignore_permission_denied=True,
        )

    def should_restart(self) -> list[Path] | None:
        changes = next(self.watcher, None)
        if not changes:
            return None
        paths = {Path(path) for _, path in changes}
        return sorted(path for path in paths if self.watch_filter(path)) or None
