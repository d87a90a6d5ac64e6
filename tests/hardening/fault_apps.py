"""Apps for the faults-under-load tests (``tests/hardening/test_faults_under_load.py``)."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from typing import Any


def _log(line: str) -> None:
    # One write per line: workers share the stderr pipe, and print() writes the line and
    # its newline separately, so two workers' lines could interleave.
    sys.stderr.flush()
    os.write(2, f"APP {line}\n".encode())


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


async def _answer(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def tracked(scope: dict, receive: Any, send: Any) -> None:
    """``GET /?id=ID``: log ``APP in ID PID`` on arrival, work 0-40 ms (so some requests
    are always in flight), answer ``ID:PID`` in two parts."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    request_id = scope["query_string"].decode().partition("=")[2]
    _log(f"in {request_id} {os.getpid()}")
    await asyncio.sleep(random.random() * 0.04)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": request_id.encode(), "more_body": True})
    await asyncio.sleep(0.001)
    await send({"type": "http.response.body", "body": b":%d" % os.getpid()})


async def slow_reader(scope: dict, receive: Any, send: Any) -> None:
    """Read the body one message every ``?pause=`` seconds (0.2), counting it; answer the
    count. ``/stats`` answers how many uploads are in progress and how many ended by a
    disconnect."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["path"] == "/stats":
        return await _answer(send, b"%d %d" % (_UPLOADS["open"], _UPLOADS["gone"]))
    pause = float(scope["query_string"].decode().partition("=")[2] or 0.2)
    _UPLOADS["open"] += 1
    total = 0
    try:
        while True:
            await asyncio.sleep(pause)
            message = await receive()
            if message["type"] == "http.disconnect":
                _UPLOADS["gone"] += 1
                return
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
    finally:
        _UPLOADS["open"] -= 1
    await _answer(send, b"%d" % total)


_UPLOADS = {"open": 0, "gone": 0}


async def blocker(scope: dict, receive: Any, send: Any) -> None:
    """``/block?s=S`` blocks the event loop for S seconds (a synchronous sleep); ``/read``
    reads the whole body and answers its size; anything else answers ``ok``."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["path"] == "/block":
        seconds = float(scope["query_string"].decode().partition("=")[2] or 10)
        _log("blocking")
        time.sleep(seconds)  # the whole loop stops: no other request runs meanwhile
        _log("unblocked")
        return await _answer(send, b"blocked")
    if scope["path"] == "/read":
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                _log("read disconnected")
                return
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return await _answer(send, b"%d" % total)
    await _answer(send, b"ok")
