"""Apps for the raw-request, property and hardening tests (``tests.parsing_apps:<name>``).

``witness`` logs every call on stderr before doing anything else, so a test can prove that a
request the server should have refused never reached the app.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        kind = message["type"].rsplit(".", 1)[-1]
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


async def witness(scope: dict, receive: Any, send: Any) -> None:
    """Log ``APP call METHOD PATH`` first, then read the whole body and answer with what the
    request looked like to the app (method, path, version, headers, body) as JSON."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] == "websocket":
        # Refuse the handshake (403): an app error here would be a 500 the server is not to
        # blame for, and hostile-input tests treat any 500 as a server fault.
        print(f"APP call WEBSOCKET {scope['path']}", file=sys.stderr, flush=True)
        await receive()
        await send({"type": "websocket.close"})
        return None
    print(f"APP call {scope['method']} {scope['path']}", file=sys.stderr, flush=True)
    body = b""
    events = 0
    while True:
        message = await receive()
        events += 1
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "http_version": scope["http_version"],
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "body": body.decode("latin-1"),
        "events": events,
    }
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})
    return None


async def ignore_body(scope: dict, receive: Any, send: Any) -> None:
    """Answer at once without ever calling ``receive()`` (for Expect: 100-continue)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    print(f"APP call {scope['method']} {scope['path']}", file=sys.stderr, flush=True)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ignored"})
    return None


def _decode(value: Any) -> Any:
    """JSON -> the Python values a message may hold: {"b64": ...} is bytes, {"tuple": [...]}
    a tuple, {"float": "nan"} a float that JSON cannot carry; the rest as is."""
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        if set(value) == {"tuple"}:
            return tuple(_decode(v) for v in value["tuple"])
        if set(value) == {"float"}:
            return float(value["float"])
        if set(value) == {"dict"}:
            return {k: _decode(v) for k, v in value["dict"]}
        return {k: _decode(v) for k, v in value.items()}
    return value


async def replay(scope: dict, receive: Any, send: Any) -> None:
    """Send the message sequence described by the JSON request body, one by one, and log
    ``APP replay PATH [outcome, ...]`` (``ok`` or the exception's class name).

    A path starting with ``/let-escape`` re-raises the first exception (an app that does not
    handle its errors); any other path swallows them (one that does)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    messages = _decode(json.loads(body))
    outcomes: list[str] = []
    try:
        for message in messages:
            try:
                await send(message)
                outcomes.append("ok")
            except Exception as exc:  # noqa: BLE001 - every kind is recorded, then judged
                outcomes.append(type(exc).__name__)
                if scope["path"].startswith("/let-escape"):
                    raise
    finally:
        print(f"APP replay {scope['path']} {json.dumps(outcomes)}", file=sys.stderr, flush=True)
    return None


async def slow_witness(scope: dict, receive: Any, send: Any) -> None:
    """Log ``APP call METHOD PATH?QUERY``, then answer like ``tests.apps:slow`` (``start;``
    at once, ``end`` after ``?s=`` seconds)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    query = scope["query_string"].decode()
    print(f"APP call {scope['method']} {scope['path']}?{query}", file=sys.stderr, flush=True)
    seconds = float(query.split("=")[1]) if "=" in query else 1.0
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"start;", "more_body": True})
    await asyncio.sleep(seconds)
    await send({"type": "http.response.body", "body": b"end"})
    return None


async def ws_bad_messages(scope: dict, receive: Any, send: Any) -> None:
    """A WebSocket app that first tries invalid messages (non-ASCII subprotocol, header with
    CR/LF, bad close code types, text that is not a str), records what each ``send()`` raised,
    then accepts and sends the record as JSON text."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] != "websocket":
        return None
    await receive()  # websocket.connect
    probes = {
        "non-ascii-subprotocol": {"type": "websocket.accept", "subprotocol": "é"},
        "subprotocol-bytes": {"type": "websocket.accept", "subprotocol": b"chat"},
        "header-crlf": {"type": "websocket.accept", "headers": [(b"x-a", b"a\r\nb")]},
        "header-non-ascii-str": {"type": "websocket.accept", "headers": [("x-a", "é")]},
        "send-before-accept": {"type": "websocket.send", "text": "early"},
    }
    outcomes = {}
    for name, message in probes.items():
        try:
            await send(message)
            outcomes[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - recorded, then judged by the test
            outcomes[name] = type(exc).__name__
    await send({"type": "websocket.accept"})
    after = {
        "text-bytes": {"type": "websocket.send", "text": b"x"},
        "both": {"type": "websocket.send", "text": "x", "bytes": b"x"},
        "close-code-bool": {"type": "websocket.close", "code": True},
        "close-code-1005": {"type": "websocket.close", "code": 1005},
        "close-reason-int": {"type": "websocket.close", "reason": 5},
    }
    for name, message in after.items():
        try:
            await send(message)
            outcomes[name] = "ok"
        except Exception as exc:  # noqa: BLE001
            outcomes[name] = type(exc).__name__
    await send({"type": "websocket.send", "text": json.dumps(outcomes)})
    await send({"type": "websocket.close", "code": 1000})
    return None
