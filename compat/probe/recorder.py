"""Where the probe app reports what it saw: one JSON-lines file per request token.

The harness passes the directory in ``COMPAT_RECORD_DIR``. A file (not the HTTP response)
is the channel because many facts arrive after the response is gone: what ``send()`` did
once the client left, whether ``http.disconnect`` came, how the app instance ended.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from typing import Any

from compat.probe.encoding import encode

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def record_dir() -> str | None:
    """The directory the harness asked for, or ``None`` when run by hand."""
    return os.environ.get("COMPAT_RECORD_DIR") or None


def token_file(directory: str, token: str) -> str:
    """The file that holds the records of ``token`` (shared with the harness)."""
    return os.path.join(directory, _UNSAFE.sub("_", token)[:100] + ".jsonl")


class Recorder:
    """Appends records for one token; each record is one ``write`` to an O_APPEND file, so
    records from several tasks, threads or worker processes never interleave."""

    def __init__(self, token: str) -> None:
        directory = record_dir()
        self.path = token_file(directory, token) if directory else None

    def write(self, kind: str, **fields: Any) -> None:
        """Record an event of ``kind``; values under ``value``/``scope``/``event`` keys must
        already be encoded with ``encode``."""
        if self.path is None:
            return
        record = {
            "kind": kind,
            "time": time.time(),
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            **fields,
        }
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """What the harness needs to know about an exception raised by the server."""
    return {
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "mro": [cls.__name__ for cls in type(exc).__mro__],
        "oserror": isinstance(exc, OSError),
        "message": str(exc)[:300],
    }


__all__ = ["Recorder", "describe_exception", "encode", "record_dir", "token_file"]
