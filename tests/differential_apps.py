"""Apps both uvicorn and Sandman serve in ``test_differential.py`` (stdlib only, so uvicorn's
own interpreter imports them too)."""

from __future__ import annotations

import json
from typing import Any


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        kind = message["type"].rsplit(".", 1)[-1]
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


async def scope(scope: dict, receive: Any, send: Any) -> None:
    """Echo the scope fields a client can compare across servers (no ports, no extras)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    body = await receive()
    seen = {
        "type": scope["type"],
        "http_version": scope["http_version"],
        "method": scope["method"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope["root_path"],
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "client_host": scope["client"][0],
        "server_host": scope["server"][0],
        "asgi_version": scope["asgi"]["version"],
        "has_state": "state" in scope,
        "body": body.get("body", b"").decode("latin-1"),
        "more_body": body.get("more_body", False),
    }
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(seen, sort_keys=True).encode()})


async def ws_echo(scope: dict, receive: Any, send: Any) -> None:
    """WebSocket: accept (or deny on /deny), echo text, close with the code in /close/<n>."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    await receive()  # websocket.connect
    if scope["path"] == "/deny":
        await send({"type": "websocket.close"})
        return
    await send({"type": "websocket.accept", "subprotocol": None})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text") or ""
        if text.startswith("close "):
            await send({"type": "websocket.close", "code": int(text.split()[1])})
            return
        await send({"type": "websocket.send", "text": f"echo {text}"})


async def asgi(scope: dict, receive: Any, send: Any) -> None:
    """Echo ``scope["asgi"]``: the spec version is a documented difference."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(scope["asgi"]).encode()})
