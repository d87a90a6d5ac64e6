"""A Starlette app served by Sandman.

Start it the way you would with uvicorn, with the name swapped::

    sandman main:app                      # instead of: uvicorn main:app
    python main.py                        # sandman_asgi.run(), below
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
    yield {"visits": [0]}


async def homepage(request: Request) -> JSONResponse:
    request.state.visits[0] += 1
    return JSONResponse({"hello": "world", "visits": request.state.visits[0]})


async def echo_body(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(body, headers={"x-length": str(len(body))})


async def user(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "name": request.path_params["name"],
            "root_path": request.scope["root_path"],
            "url": str(request.url),
        }
    )


async def countdown(request: Request) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        for i in range(3, 0, -1):
            yield f"{i}\n"

    return StreamingResponse(lines(), media_type="text/plain")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        async for message in websocket.iter_text():
            await websocket.send_text(message.upper())
    except WebSocketDisconnect:
        pass


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/echo", echo_body, methods=["POST"]),
        Route("/users/{name}", user),
        Route("/countdown", countdown),
        WebSocketRoute("/ws", ws_echo),
    ],
    lifespan=lifespan,
)


if __name__ == "__main__":
    import sandman_asgi

    sandman_asgi.run("main:app", host="127.0.0.1", port=8000)
