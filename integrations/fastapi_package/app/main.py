"""A FastAPI app inside a package, started with the FastAPI-style launchers::

    sandman dev                 # finds app/main.py; imports app.main:app; reload on
    sandman run app/main.py     # 0.0.0.0, proxy headers, --workers N
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

from .routers import items


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
    yield {"started_by": os.getpid()}


# Docs at a custom path: the launcher prints this one, not /docs.
app = FastAPI(title="Sandman package example", docs_url="/documentation", lifespan=lifespan)
app.include_router(items.router)


@app.get("/")
async def root() -> dict[str, str]:
    return {"layout": "package"}


@app.get("/whoami")
async def whoami(request: Request) -> dict[str, object]:
    # What the server made of the connection: client address and scheme (proxy headers),
    # and which worker process answered.
    client = request.client.host if request.client else None
    return {"client": client, "scheme": request.url.scheme, "pid": os.getpid()}


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text("package: " + await websocket.receive_text())
    except WebSocketDisconnect:
        pass
