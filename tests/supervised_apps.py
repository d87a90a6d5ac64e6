"""Apps for the supervisor, API and integration tests (``tests.supervised_apps:<name>``)."""

from __future__ import annotations

import os
from typing import Any


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        kind = message["type"].rsplit(".", 1)[-1]
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


async def pid(scope: dict, receive: Any, send: Any) -> None:
    """Answer with the serving process's pid, so a test can tell workers apart."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


async def env(scope: dict, receive: Any, send: Any) -> None:
    """Answer with the environment variable named by the path (``/NAME``)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    value = os.environ.get(scope["path"].strip("/"), "<unset>")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": value.encode()})
