"""Apps for the HTTP/2 and extension tests (``tests.h2_apps:<name>``). They report what they
saw on stderr as ``APP ...`` lines, as tests/apps.py's do."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


def _log(line: str) -> None:
    print(f"APP {line}", file=sys.stderr, flush=True)


async def app(scope: dict, receive: Any, send: Any) -> None:
    """One app, by path: what each test needs."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        return await _ws_echo(scope, receive, send)
    handler = ROUTES.get(scope["path"], _scope)
    await handler(scope, receive, send)


async def _text(send: Any, body: bytes, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _scope(scope: dict, receive: Any, send: Any) -> None:
    """The scope as JSON (bytes as latin-1 text)."""

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    shown = {k: plain(v) for k, v in scope.items() if k != "state"}
    await _text(send, json.dumps(shown).encode())


async def _trailers(scope: dict, receive: Any, send: Any) -> None:
    offered = "http.response.trailers" in scope["extensions"]
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-checksum, x-more")],
            "trailers": offered,
        }
    )
    await send({"type": "http.response.body", "body": b"part one, ", "more_body": True})
    await send({"type": "http.response.body", "body": b"part two"})
    if offered:
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc123")],
                "more_trailers": True,
            }
        )
        await send({"type": "http.response.trailers", "headers": [(b"x-more", b"yes")]})


async def _wait_disconnect(scope: dict, receive: Any, send: Any) -> None:
    """Reads the body, then waits for the disconnect; reports it."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            _log(f"disconnect {scope['query_string'].decode()}")
            return


async def _slow_body(scope: dict, receive: Any, send: Any) -> None:
    """Reads nothing until told to (``GO`` on a second request), then the whole body."""
    _log(f"slow started {scope['query_string'].decode()}")
    await GO.wait()
    total = 0
    while True:
        message = await receive()
        total += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    _log(f"slow read {total}")
    await _text(send, str(total).encode())


GO = asyncio.Event()


async def _go(scope: dict, receive: Any, send: Any) -> None:
    GO.set()
    await _text(send, b"go")


async def _big_stream(scope: dict, receive: Any, send: Any) -> None:
    """4 MiB in 64 KiB chunks, reporting how far each send() got."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    chunk = b"z" * 65536
    for i in range(64):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        _log(f"sent {(i + 1) * len(chunk)}")
    await send({"type": "http.response.body", "body": b""})
    _log("stream done")


async def _slow_response(scope: dict, receive: Any, send: Any) -> None:
    """Answers after a second: a request in flight across a graceful shutdown."""
    _log("slow response started")
    await asyncio.sleep(1.0)
    await _text(send, b"finished")


async def _ws_echo(scope: dict, receive: Any, send: Any) -> None:
    message = await receive()
    assert message["type"] == "websocket.connect"
    _log(f"ws connect http_version={scope['http_version']} path={scope['path']}")
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _log(f"ws disconnect {message['code']}")
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


ROUTES = {
    "/trailers": _trailers,
    "/wait-disconnect": _wait_disconnect,
    "/slow-body": _slow_body,
    "/go": _go,
    "/big-stream": _big_stream,
    "/slow-response": _slow_response,
}
