"""An app for the response cache tests (``tests.cache_apps:app``).

Every response body starts with ``calls=N``: how many times the app has been called for that
path and query, so a test sees whether a response came from the app or from the cache. The
query string sets the response: ``cc=`` its Cache-Control (``_`` for spaces), ``vary=`` its
Vary, ``cookie=1`` a Set-Cookie, ``status=`` its status, ``sleep=`` seconds to wait first,
``stream=1`` a body in two parts, ``size=`` a body that long, ``etag=`` an ETag.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

CALLS: Counter[str] = Counter()


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    query = scope["query_string"].decode()
    target = f"{scope['method']} {scope['path']}?{query}"
    key = f"{scope['path']}?{query}"
    CALLS[key] += 1
    call = CALLS[key]
    print(f"APP call {target}", file=sys.stderr, flush=True)
    while (await receive()).get("more_body"):
        pass
    params = dict(parse_qsl(query))
    if "sleep" in params:
        await asyncio.sleep(float(params["sleep"]))
    headers = [(b"content-type", b"text/plain")]
    if "cc" in params:
        headers.append((b"cache-control", params["cc"].replace("_", " ").encode()))
    if "vary" in params:
        headers.append((b"vary", params["vary"].encode()))
    if params.get("cookie"):
        headers.append((b"set-cookie", b"session=1"))
    if "etag" in params:
        headers.append((b"etag", f'"{params["etag"]}"'.encode()))
    request_headers = dict(scope["headers"])
    language = request_headers.get(b"accept-language", b"-").decode()
    body = f"calls={call} lang={language}".encode()
    if "size" in params:
        body = body.ljust(int(params["size"]), b".")
    status = int(params.get("status", 200))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if params.get("stream"):
        half = len(body) // 2
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        await send({"type": "http.response.body", "body": body[half:]})
    else:
        await send({"type": "http.response.body", "body": body})
