"""Apps for the TCP-level client tests (``tests/test_client_tcp.py``): each reports what it
saw on stderr as ``APP <id> <event>``, and ``/stats`` tells how many app calls are still
running, so a test can check that a client's fault left nothing behind."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.apps import _lifespan, _log, _query, _text

_running = 0


async def probe(scope: dict, receive: Any, send: Any) -> None:
    global _running
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["path"] == "/stats":
        return await _text(send, b"running=%d" % _running)
    _running += 1
    try:
        await _ENDPOINTS[scope["path"]](_query(scope), receive, send)
    finally:
        _running -= 1


async def _read_body(tag: str, receive: Any) -> tuple[int, str]:
    """Read the whole body; (bytes read, the last message's type)."""
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return total, "http.disconnect"
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            return total, "http.request"


async def answer(q: dict[str, str], receive: Any, send: Any) -> None:
    """Read the body, wait ?delay= seconds, answer with the byte count (streamed in ?parts=
    parts, ?gap= seconds apart)."""
    tag = q.get("id", "-")
    total, last = await _read_body(tag, receive)
    _log(f"{tag} body {total} {last}")
    await asyncio.sleep(float(q.get("delay", 0)))
    parts = int(q.get("parts", 1))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(parts):
        if i:
            await asyncio.sleep(float(q.get("gap", 0)))
        body = b"got %d part %d;" % (total, i)
        await send({"type": "http.response.body", "body": body, "more_body": i < parts - 1})
    _log(f"{tag} answered")


async def read_body(q: dict[str, str], receive: Any, send: Any) -> None:
    """Read the body and report how it ended; answer if the client is still there."""
    tag = q.get("id", "-")
    await asyncio.sleep(float(q.get("delay", 0)))
    total, last = await _read_body(tag, receive)
    _log(f"{tag} body {total} {last}")
    try:
        await _text(send, b"read %d" % total)
    except OSError as exc:
        _log(f"{tag} send raised {type(exc).__name__}")


async def wait_disconnect(q: dict[str, str], receive: Any, send: Any) -> None:
    """Read the body, then wait for the client to leave; then try to answer."""
    tag = q.get("id", "-")
    await _read_body(tag, receive)
    message = await receive()
    _log(f"{tag} got {message['type']}")
    try:
        await _text(send, b"too late")
        _log(f"{tag} send went through")
    except OSError as exc:
        _log(f"{tag} send raised {type(exc).__name__}")


async def big(q: dict[str, str], receive: Any, send: Any) -> None:
    """Stream ?size= bytes in 64 KiB parts, reporting every MiB sent and how it ended."""
    tag = q.get("id", "-")
    size = int(q.get("size", 1 << 20))
    chunk = b"x" * 65536
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(size).encode())],
        }
    )
    sent = 0
    try:
        while sent < size:
            part = chunk[: size - sent]
            await send({"type": "http.response.body", "body": part, "more_body": True})
            sent += len(part)
            if sent % (1 << 20) == 0:
                _log(f"{tag} sent {sent}")
        await send({"type": "http.response.body", "body": b""})
    except OSError as exc:
        _log(f"{tag} send raised {type(exc).__name__} after {sent}")
        return
    _log(f"{tag} complete {sent}")


_ENDPOINTS = {
    "/answer": answer,
    "/read-body": read_body,
    "/wait-disconnect": wait_disconnect,
    "/big": big,
}
