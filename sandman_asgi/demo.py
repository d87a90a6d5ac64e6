"""A small ASGI app shipped with Sandman so ``sandman sandman_asgi.demo:app`` runs out of the box.

Routes: ``/`` an HTML page, ``/json`` the request scope as JSON, ``POST /echo`` the request
body back, ``/stream`` a chunked response, ``/health`` a plain 200.
"""

from __future__ import annotations

import json
from typing import Any

PAGE = (
    b"<!DOCTYPE html><html><head><title>Sandman</title></head><body>"
    b"<h1>Sandman is running</h1><p>An ASGI server with a Rust core.</p>"
    b"<ul><li><a href='/json'>/json</a>: this request's scope</li>"
    b"<li>POST /echo: echoes the body</li><li><a href='/stream'>/stream</a>: a streamed "
    b"response</li></ul></body></html>"
)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Any, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type)],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict, receive: Any, send: Any) -> None:
    """The demo ASGI application."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/":
        await _respond(send, 200, b"text/html; charset=utf-8", PAGE)
    elif path == "/health":
        await _respond(send, 200, b"text/plain; charset=utf-8", b"ok")
    elif path == "/json":
        shown = {
            k: v
            for k, v in scope.items()
            if k not in ("headers", "state", "extensions", "raw_path", "query_string")
        }
        shown["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        shown["query_string"] = scope["query_string"].decode("latin-1")
        await _respond(send, 200, b"application/json", json.dumps(shown).encode())
    elif path == "/echo":
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        await _respond(send, 200, b"application/octet-stream", b"".join(chunks))
    elif path == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for i in range(5):
            await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await _respond(send, 404, b"text/plain; charset=utf-8", b"Not Found")
