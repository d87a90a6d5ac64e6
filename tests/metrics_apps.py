"""Apps for the metrics and health tests (``tests.metrics_apps:<name>``)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any


async def _text(send: Any, body: bytes, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict, receive: Any, send: Any) -> None:
    """Lifespan startup takes ``STARTUP_SECONDS`` (the loop keeps turning meanwhile).

    ``/status/N`` answers N; ``/sleep?s`` answers after s seconds without blocking the loop;
    ``/block?s`` blocks the event loop for s seconds (a synchronous call); ``/ws`` is a
    WebSocket echo; anything else answers 200 "ok"."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.sleep(float(os.environ.get("STARTUP_SECONDS", "0")))
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    path = scope["path"]
    seconds = float(scope["query_string"] or b"0")
    if path.startswith("/status/"):
        return await _text(send, b"status", int(path.rsplit("/", 1)[1]))
    if path == "/sleep":
        await asyncio.sleep(seconds)
        return await _text(send, b"slept")
    if path == "/block":
        time.sleep(seconds)
        return await _text(send, b"blocked")
    await _text(send, b"ok")
