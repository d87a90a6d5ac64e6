"""Apps for tests/test_pathsend.py: the pathsend extension driven by hand and through
Starlette's ``FileResponse``. Files live in the folder named by ``PATHSEND_FILES``; every
file Python opens is recorded (an audit hook), so a test can show that none of them was read
by Python."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

FILES = Path(os.environ.get("PATHSEND_FILES", "."))
OPENED: list[str] = []


def _record_opens(event: str, args: tuple) -> None:
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_record_opens)


async def _text(send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def raw(scope, receive, send) -> None:
    """``/file/NAME`` sends FILES/NAME with pathsend; ``/declared/N/NAME`` declares
    content-length N first; ``/after-body/NAME`` sends a body part before the file;
    ``/missing`` sends a file that is not there; ``/opened`` lists what Python opened under
    FILES. Errors from ``send`` are caught and reported in a plain body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    parts = scope["path"].strip("/").split("/")
    if parts == ["opened"]:
        inside = [p for p in OPENED if p.startswith(str(FILES))]
        return await _text(send, 200, json.dumps(inside))
    if parts == ["extensions"]:
        return await _text(send, 200, json.dumps(sorted(scope["extensions"])))
    headers = [(b"content-type", b"application/octet-stream")]
    if parts[0] == "declared":
        headers.append((b"content-length", parts[1].encode()))
        parts = parts[1:]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if parts[0] == "after-body":
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
    path = FILES / parts[-1] if parts[0] != "missing" else FILES / "not-there"
    try:
        await send({"type": "http.response.pathsend", "path": str(path)})
    except (OSError, RuntimeError) as error:
        more = f"{type(error).__name__}: {error}".encode()
        if parts[0] == "after-body":
            await send({"type": "http.response.body", "body": b"|" + more})
        elif parts[0] == "missing":
            # The failed pathsend changed nothing: the held start is still answered.
            await send({"type": "http.response.body", "body": more})
        else:
            raise


async def _file(request):
    return FileResponse(FILES / request.path_params["name"])


async def _opened(request):
    return JSONResponse([p for p in OPENED if p.startswith(str(FILES))])


async def _extensions(request):
    return JSONResponse(sorted(request.scope["extensions"]))


starlette_app = Starlette(
    routes=[
        Route("/files/{name}", _file, methods=["GET", "HEAD"]),
        Route("/opened", _opened),
        Route("/extensions", _extensions),
    ]
)
