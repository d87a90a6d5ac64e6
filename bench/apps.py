"""The apps every server is measured on (the same objects for Sandman and its peers)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

FORTUNES = (
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
    "<tr><th>id</th><th>message</th></tr>"
    + "".join(
        f"<tr><td>{i}</td><td>fortune number {i}: "
        "a penny saved is a penny earned &amp; more</td></tr>"
        for i in range(1, 27)
    )
    + "</table></body></html>"
).encode()

STREAM_CHUNK = b"s" * 65536
STREAM_CHUNKS = int(os.environ.get("STREAM_CHUNKS", "16"))  # 16 x 64 KiB = 1 MiB


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope: dict, receive: Any, send: Any) -> None:
    """13-byte plain text."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def fortunes(scope: dict, receive: Any, send: Any) -> None:
    """A 2.4 KB HTML page."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(FORTUNES)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": FORTUNES})


async def echo(scope: dict, receive: Any, send: Any) -> None:
    """Echo a POST body."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _start_octet_stream(send: Any) -> None:
    """A 200 without content-length: the body that follows is sent chunked."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream")],
        }
    )


def _bench_file(size: int) -> str:
    """A file of ``size`` bytes in the temporary directory, written once per size."""
    path = os.path.join(tempfile.gettempdir(), f"sandman-bench-file-{size}")
    if not os.path.exists(path) or os.path.getsize(path) != size:
        with open(path + ".part", "wb") as f:
            f.write(b"f" * size)
        os.replace(path + ".part", path)
    return path


FILES = {"/10k": _bench_file(10 * 1024), "/1m": _bench_file(1024 * 1024)}


async def pathsend(scope: dict, receive: Any, send: Any) -> None:
    """``/10k`` or ``/1m``: a file sent as Starlette's ``FileResponse`` sends it, with the
    pathsend extension where the server offers it, read in 64 KiB chunks otherwise."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    path = FILES[scope["path"]]
    size = os.path.getsize(path)
    headers = [(b"content-type", b"application/octet-stream")]
    headers.append((b"content-length", str(size).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if "http.response.pathsend" in scope.get("extensions", {}):
        await send({"type": "http.response.pathsend", "path": path})
        return
    with open(path, "rb") as f:
        while chunk := f.read(65536):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def stream(scope: dict, receive: Any, send: Any) -> None:
    """A 1 MiB response streamed in 64 KiB chunks without content-length."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await _start_octet_stream(send)
    for _ in range(STREAM_CHUNKS):
        await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def stream_fresh(scope: dict, receive: Any, send: Any) -> None:
    """As ``stream``, but every chunk is a new object, as a file read or an encoder makes
    (not in the table: a check that a change helping ``stream`` does not hurt this)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await _start_octet_stream(send)
    for i in range(STREAM_CHUNKS):
        chunk = STREAM_CHUNK[:-1] + bytes((i,))
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def ws_echo(scope: dict, receive: Any, send: Any) -> None:
    """WebSocket echo; plain HTTP requests get a 200 so the harness can check readiness."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ws"})
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


try:  # FastAPI JSON route: the framework dominates, the server must not lose anything.
    from fastapi import FastAPI, Response

    api = FastAPI()

    @api.get("/json")
    async def _json() -> dict[str, str]:
        return {"message": "Hello, World!"}

    @api.get("/public")
    async def _public(response: Response) -> dict[str, str]:
        # Cacheable by a shared cache for a minute (Sandman's --cache-size keeps it).
        response.headers["Cache-Control"] = "public, max-age=60"
        return {"message": "Hello, World!"}

except ImportError:  # pragma: no cover - only when FastAPI is not installed
    api = None
