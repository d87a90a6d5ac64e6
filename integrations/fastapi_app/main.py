"""A FastAPI app served by Sandman.

Start it the way you would with uvicorn, with the name swapped::

    sandman main:app                      # instead of: uvicorn main:app
    python main.py                        # sandman_asgi.run(), below
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
    # Lifespan state: every request sees it as request.state.
    yield {"greeting": "hello", "items": {}}


app = FastAPI(title="Sandman FastAPI example", lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float


@app.get("/")
async def root(request: Request) -> dict[str, object]:
    return {"greeting": request.state.greeting, "server": request.scope["server"][1] > 0}


@app.post("/items/{item_id}", status_code=201)
async def create_item(item_id: int, item: Item, request: Request) -> dict[str, object]:
    request.state.items[item_id] = item
    return {"id": item_id, **item.model_dump()}


@app.get("/items/{item_id}")
async def read_item(item_id: int, request: Request, q: str | None = None) -> dict[str, object]:
    item = request.state.items.get(item_id)
    return {"id": item_id, "q": q, "item": item.model_dump() if item else None}


@app.get("/stream")
async def stream(n: int = 3) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"{i}\n".encode()

    return StreamingResponse(numbers(), media_type="text/plain")


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"echo: {text}")
    except WebSocketDisconnect:
        pass


# A chat room: every message is broadcast to every connected client. The room lives in the
# process (one worker); behind several workers use a shared broker (Redis pub/sub, ...).
room: set[WebSocket] = set()


@app.websocket("/ws/room")
async def chat_room(websocket: WebSocket) -> None:
    # Speak the first subprotocol we know among those the client offers.
    offered = websocket.scope.get("subprotocols", [])
    chosen = next((p for p in offered if p in ("chat.v2", "chat.v1")), None)
    await websocket.accept(subprotocol=chosen)
    room.add(websocket)
    try:
        while True:
            text = await websocket.receive_text()
            for member in list(room):
                await member.send_text(f"{chosen or 'plain'}: {text}")
    except WebSocketDisconnect:
        pass
    finally:
        room.discard(websocket)


@app.websocket("/ws/private")
async def private(websocket: WebSocket, token: str | None = None) -> None:
    # Refused before the handshake completes: the client gets HTTP 403.
    if token != "letmein":
        await websocket.close(code=1008)
        return
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close()


if __name__ == "__main__":
    import sandman_asgi

    sandman_asgi.run("main:app", host="127.0.0.1", port=8000)
