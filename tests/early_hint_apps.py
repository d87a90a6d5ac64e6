"""Apps for tests/test_early_hints.py: the early hints extension (103 before the response)."""

from __future__ import annotations

import asyncio
import json

LINKS = [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload; as=script"]


async def _respond(send, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    """``/hint`` sends a 103 and answers a second later; ``/late`` tries a hint after the
    start; ``/bad`` sends links that are not bytes; ``/extensions`` lists the scope's."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/extensions":
        return await _respond(send, json.dumps(sorted(scope["extensions"])))
    if path == "/hint":
        await send({"type": "http.response.early_hint", "links": LINKS})
        await asyncio.sleep(1.0)
        return await _respond(send, "done")
    if path == "/bad":
        try:
            await send({"type": "http.response.early_hint", "links": ["not bytes"]})
        except TypeError as error:
            return await _respond(send, f"TypeError: {error}")
    if path == "/late":
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            await send({"type": "http.response.early_hint", "links": LINKS})
        except RuntimeError as error:
            await send({"type": "http.response.body", "body": str(error).encode()})
            return
    await _respond(send, "other")
