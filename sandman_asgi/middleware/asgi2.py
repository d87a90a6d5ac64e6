"""Run a legacy ASGI 2 (double-callable) app as an ASGI 3 one ([ASGI] "Legacy Applications")."""

from __future__ import annotations

from typing import Any


class ASGI2Middleware:
    """``app(scope)`` returns an instance; ``await instance(receive, send)`` runs it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        instance = self.app(scope)
        await instance(receive, send)
