"""The event loop ``--loop`` asks for (shared by ``Config`` and ``Server``)."""

from __future__ import annotations

import asyncio
from typing import Any


def loop_factory(name: str) -> Any:
    """The event loop factory for ``--loop`` (``auto`` = uvloop when importable)."""
    if name in ("auto", "uvloop", "zuvloop"):
        try:
            import uvloop
        except ImportError:
            if name != "auto":
                raise
            return asyncio.new_event_loop
        return uvloop.new_event_loop
    if name in ("asyncio", "none"):
        return asyncio.new_event_loop if name == "asyncio" else None
    from sandman_asgi.importer import import_from_string

    # uvicorn 0.54: an import string names the loop factory itself (called with no
    # arguments to make the loop), e.g. "uvloop:new_event_loop".
    return import_from_string(name)
