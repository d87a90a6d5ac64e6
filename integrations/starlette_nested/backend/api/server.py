"""A Starlette app two packages deep, named ``api`` (the launchers' second choice of name)::

    sandman run backend/api/server.py     # imports backend.api.server:api
    cd backend/api && sandman dev server.py   # the same: the packages are found upwards
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from ..core.settings import GREETING


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"greeting": GREETING, "module": __name__})


async def shout(websocket: WebSocket) -> None:
    await websocket.accept()
    async for message in websocket.iter_text():
        await websocket.send_text(message.upper())


api = Starlette(routes=[Route("/", hello), WebSocketRoute("/ws", shout)])
