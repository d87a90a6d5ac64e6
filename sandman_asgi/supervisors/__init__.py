"""Process supervisors: ``Multiprocess`` for ``--workers N``, ``ChangeReload`` for ``--reload``.

``ChangeReload`` is ``WatchFilesReload`` when watchfiles is installed (``sandman-asgi[standard]``)
and ``StatReload`` (mtime polling of ``*.py``) otherwise, as in uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandman_asgi.supervisors.basereload import BaseReload
from sandman_asgi.supervisors.multiprocess import Multiprocess

if TYPE_CHECKING:
    ChangeReload: type[BaseReload]
else:
    try:
        from sandman_asgi.supervisors.watchfilesreload import WatchFilesReload as ChangeReload
    except ImportError:
        from sandman_asgi.supervisors.statreload import StatReload as ChangeReload

__all__ = ["BaseReload", "ChangeReload", "Multiprocess"]
