"""WebSocket apps for the tests (``tests.ws_apps:<name>``); they report on stderr."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from tests.apps import _lifespan


def _log(line: str) -> None:
    print(f"APP {line}", file=sys.stderr, flush=True)


async def echo(scope: dict, receive: Any, send: Any) -> None:
    """Accepts (echoing the first offered subprotocol), echoes messages; special texts:
    ``close`` -> close 4001 "bye"; ``raise`` -> exception; ``return`` -> return while open."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    message = await receive()
    assert message == {"type": "websocket.connect"}, message
    _log(
        f"scope subprotocols={scope['subprotocols']} scheme={scope['scheme']} "
        f"spec={scope['asgi']['spec_version']} path={scope['path']} "
        f"ext={sorted(scope['extensions'])}"
    )
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send(
        {"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-accept", b"yes")]}
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _log(f"disconnect code={message['code']} reason={message.get('reason')!r}")
            return
        text = message.get("text")
        if text == "close":
            await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
            continue
        if text == "raise":
            raise RuntimeError("boom in websocket")
        if text == "return":
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def handshake(scope: dict, receive: Any, send: Any) -> None:
    """The handshake outcome is chosen by path."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await receive()
    path = scope["path"]
    if path == "/reject":
        await send({"type": "websocket.close"})
        message = await receive()
        _log(f"rejected then {message['type']} code={message.get('code')}")
    elif path == "/deny":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"text/plain"), (b"x-deny", b"1")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"good", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"bye"})
    elif path == "/no-handshake":
        return
    elif path == "/raise-before-accept":
        raise RuntimeError("boom before accept")
    elif path.endswith("/where"):
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": f"{scope['root_path']} {path}"})
    elif path == "/send-first":
        await send({"type": "websocket.send", "text": "too early"})
    elif path == "/after-disconnect":
        await send({"type": "websocket.accept"})
        message = await receive()
        _log(f"got {message['type']} code={message.get('code')}")
        try:
            await send({"type": "websocket.send", "text": "late"})
        except OSError as exc:
            _log(f"send raised {type(exc).__name__}")
            raise
    elif path == "/never-read":
        await send({"type": "websocket.accept"})
        await asyncio.sleep(30)
    elif path == "/flood":
        await send({"type": "websocket.accept"})
        chunk = b"f" * (1 << 20)
        for i in range(1000):
            await send({"type": "websocket.send", "bytes": chunk})
            _log(f"sent {i}")
    elif path == "/wait-shutdown":
        await send({"type": "websocket.accept"})
        message = await receive()
        _log(f"shutdown disconnect code={message.get('code')}")


async def accept_and_wait(scope: dict, receive: Any, send: Any) -> None:
    """Accepts, then waits for the disconnect; logs ``begin`` and, however it ends (the
    accept itself may raise when the client is already gone), ``end``."""
    if scope["type"] != "websocket":
        return
    _log("begin")
    try:
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        _log("end")
