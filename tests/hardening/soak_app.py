"""The app the mixed soak runs (``tests.hardening.soak_app:app``): every kind of traffic
``tests/hardening/mixed_traffic.py`` sends, quietly (nothing logged per request).

- ``GET /``: a small response;
- ``POST /upload``: reads the body, answers its length;
- ``GET /stream?n=&size=``: a chunked response of ``n`` parts;
- ``GET /slow?s=``: answers after ``s`` seconds;
- a WebSocket on any path: echoes every message until the client closes.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def app(scope: dict, receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if kind == "websocket":
        return await _echo(receive, send)
    path = scope["path"]
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    if path == "/upload":
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return await _answer(send, b"%d" % total)
    if path == "/stream":
        n, size = int(query.get("n", 8)), int(query.get("size", 4096))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        part = b"s" * size
        try:
            for _ in range(n):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except OSError:
            return  # the client left mid-stream (an injected disconnect)
        return
    if path == "/slow":
        await asyncio.sleep(float(query.get("s", 0.5)))
    await _answer(send, b"ok")


async def _answer(send: Any, body: bytes) -> None:
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body})
    except OSError:
        return


async def _echo(receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
        except OSError:
            return
