"""The default change detector: watchfiles (OS file events), filtered by uvicorn's rules."""

from __future__ import annotations

import socket
from pathlib import Path

from watchfiles import watch

from sandman_asgi.config import Config
from sandman_asgi.supervisors.basereload import BaseReload
from sandman_asgi.supervisors.reloadpaths import ReloadFilter
from sandman_asgi.supervisors.spawn import Target

# How long one ``next()`` waits for a change before yielding an empty set. The loop also
# sleeps ``--reload-delay`` between calls, so this bounds the extra delay on start.
_POLL_MS = 100


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
            rust_timeout=_POLL_MS,
            ignore_permission_denied=True,
        )

    def before_first_child(self) -> None:
        """Start the OS watch.

        ``watch()`` is a generator: its OS watch only exists once ``next()`` has run. Left
        to the first ``should_restart()``, that is after the child has started and
        ``--reload-delay`` has passed, so an edit made while a slow child imports was
        missed. One short ``next()`` here (about ``_POLL_MS``) closes that gap; changes
        seen in it are dropped, since the child about to start reads the files afresh.
        """
        next(self.watcher, None)

    def should_restart(self) -> list[Path] | None:
        changes = next(self.watcher, None)
        if not changes:
            return None
        paths = {Path(path) for _, path in changes}
        return sorted(path for path in paths if self.watch_filter(path)) or None
