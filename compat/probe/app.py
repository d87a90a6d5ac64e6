"""The probe apps: ``app`` (ASGI 3) and ``legacy_app`` (ASGI 2, double callable).

HTTP and WebSocket: the request's ``x-compat-token`` header names the record file and
``x-compat-plan`` says what to do (see ``compat.probe.plan``). The scope is recorded
first, then every step. Without a plan the app answers a plain "compat probe" page.

Lifespan: the behaviour is chosen per server process by environment variables, since the
harness starts one process per lifespan scenario:

* ``COMPAT_LIFESPAN``: ``normal`` (default), ``fail`` (``startup.failed``), ``raise-call``
  (raise on the lifespan scope before receiving), ``raise-startup`` (raise after
  ``lifespan.startup``), ``return-startup`` (return without answering
  ``lifespan.startup``), ``fail-shutdown`` (``shutdown.failed``);
* ``COMPAT_STARTUP_DELAY`` / ``COMPAT_SHUTDOWN_DELAY``: seconds to wait before answering.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from compat.probe.encoding import encode
from compat.probe.plan import ProbeFailure, parse_plan, run_plan
from compat.probe.recorder import Recorder, describe_exception

LIFESPAN_TOKEN = "lifespan"
STARTUP_FAILED_MESSAGE = "compat-probe-startup-failed-message"
SHUTDOWN_FAILED_MESSAGE = "compat-probe-shutdown-failed-message"


async def app(scope: Any, receive: Any, send: Any) -> Any:
    """The ASGI 3 probe."""
    kind = scope.get("type") if isinstance(scope, dict) else None
    if kind == "lifespan":
        return await _lifespan(scope, receive, send)
    token, plan = _request_controls(scope)
    rec = Recorder(token)
    rec.write("scope", scope=encode(scope), loop=id(asyncio.get_running_loop()))
    if plan is None:
        return await _plain_page(kind, receive, send)
    try:
        result = await run_plan(plan, scope, receive, send, rec)
    except ProbeFailure:
        rec.write("end", outcome="raised")
        raise
    except asyncio.CancelledError:
        rec.write("end", outcome="cancelled")
        raise
    except BaseException as exc:
        rec.write("end", outcome="error", error=describe_exception(exc))
        raise
    rec.write("end", outcome="returned")
    return result


class LegacyApp:
    """The ASGI 2 probe: ``legacy_app(scope)`` then ``await instance(receive, send)``."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        if self.scope.get("type") == "lifespan":
            await _lifespan(self.scope, receive, send)
            return
        token, plan = _request_controls(self.scope)
        rec = Recorder(token)
        rec.write("scope", scope=encode(self.scope), legacy=True)
        await run_plan(plan or [], self.scope, receive, send, rec)
        rec.write("end", outcome="returned")


def _request_controls(scope: Any) -> tuple[str, list | None]:
    token, plan = "untagged", None
    headers = scope.get("headers", []) if isinstance(scope, dict) else []
    for pair in headers:
        try:
            name, value = bytes(pair[0]).lower(), bytes(pair[1])
        except (TypeError, IndexError, ValueError):
            continue
        if name == b"x-compat-token":
            token = value.decode("latin-1")
        elif name == b"x-compat-plan":
            plan = parse_plan(value)
    return token, plan


async def _plain_page(kind: Any, receive: Any, send: Any) -> None:
    if kind == "websocket":
        await receive()
        await send({"type": "websocket.close"})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"compat probe\n"})


class _Return(Exception):
    """Unwinds ``_lifespan`` so the app returns normally (see ``return-startup``)."""


async def _lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    try:
        await _lifespan_events(scope, receive, send)
    except _Return:
        return


async def _lifespan_events(scope: dict[str, Any], receive: Any, send: Any) -> None:
    mode = os.environ.get("COMPAT_LIFESPAN", "normal")
    rec = Recorder(LIFESPAN_TOKEN)
    rec.write("scope", scope=encode(scope), loop=id(asyncio.get_running_loop()), mode=mode)
    if mode == "raise-call":
        rec.write("raised")
        raise ProbeFailure("compat probe: this app does not speak lifespan")
    while True:
        event = await receive()
        rec.write("receive", event=encode(event))
        kind = event.get("type")
        if kind == "lifespan.startup":
            await _startup(scope, send, rec, mode)
        elif kind == "lifespan.shutdown":
            await asyncio.sleep(float(os.environ.get("COMPAT_SHUTDOWN_DELAY", "0")))
            if mode == "fail-shutdown":
                reply = {"type": "lifespan.shutdown.failed", "message": SHUTDOWN_FAILED_MESSAGE}
            else:
                reply = {"type": "lifespan.shutdown.complete"}
            rec.write("replying", type=reply["type"])
            await send(reply)
            rec.write("replied", type=reply["type"])
            return


async def _startup(scope: dict[str, Any], send: Any, rec: Recorder, mode: str) -> None:
    if mode == "raise-startup":
        rec.write("raised")
        raise ProbeFailure("compat probe: failing inside lifespan.startup")
    if mode == "return-startup":
        rec.write("returned")
        raise _Return()
    state = scope.get("state")
    if isinstance(state, dict):
        # Checks look for these in request scopes: a value, and a shared mutable object.
        rec.write("state_at_startup", value=encode(dict(state)))
        state["compat_value"] = "from-lifespan"
        state["compat_shared"] = []
    await asyncio.sleep(float(os.environ.get("COMPAT_STARTUP_DELAY", "0")))
    if mode == "fail":
        reply = {"type": "lifespan.startup.failed", "message": STARTUP_FAILED_MESSAGE}
    else:
        reply = {"type": "lifespan.startup.complete"}
    rec.write("replying", type=reply["type"])
    await send(reply)
    rec.write("replied", type=reply["type"])


# What servers are pointed at: a class is how ASGI 2 servers and detectors recognise a
# double-callable app.
legacy_app = LegacyApp
