"""The step interpreter behind every scripted probe.

A check describes what the app must do as a *plan*, a list of steps sent in the
``x-compat-plan`` request header (base64 JSON), for example::

    [["drain"], ["send", <http.response.start>], ["send", <http.response.start>], ...]

so the suite needs one app, not one app per scenario. Each step's outcome is recorded;
a ``send`` that raises is recorded and the plan goes on, which is how "the server should
raise out of send()" is observed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from compat.probe.encoding import decode, encode
from compat.probe.recorder import Recorder, describe_exception

# Bounds every wait inside the app, so no probe outlives its check by much.
MAX_WAIT = 10.0


class ProbeFailure(Exception):
    """Raised on purpose by a ``raise`` step; its name shows in the server's log."""


def parse_plan(header_value: bytes) -> list[list[Any]]:
    """Decode the ``x-compat-plan`` header."""
    return json.loads(base64.urlsafe_b64decode(header_value))


def pack_plan(steps: list[list[Any]]) -> bytes:
    """Encode a plan for the ``x-compat-plan`` header (used by the harness)."""
    return base64.urlsafe_b64encode(json.dumps(steps).encode())


async def run_plan(
    steps: list[list[Any]],
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    rec: Recorder,
    first_index: int = 0,
) -> Any:
    """Run ``steps`` and return what the app should return (``None`` unless a ``return``).
    Steps are recorded with their index, counted from ``first_index``."""
    for index, step in enumerate(steps, first_index):
        op, args = step[0], step[1:]
        if op == "send":
            await _send(index, decode(args[0]), send, rec)
        elif op == "send_raw":
            # A send whose exception escapes the app, as in an app that does not catch it.
            await send(decode(args[0]))
            rec.write("send", index=index, type=decode(args[0]).get("type"), error=None)
        elif op == "receive":
            await _receive_until(index, receive, rec, stop=lambda e: True, timeout=args[0])
        elif op == "drain":
            # Read the request body to its end (or to a disconnect).
            await _receive_until(index, receive, rec, stop=_body_done, timeout=args[0])
        elif op == "until":
            # Receive until an event of the given type arrives (e.g. a disconnect).
            kind = args[0]
            await _receive_until(
                index, receive, rec, stop=lambda e, k=kind: e.get("type") == k, timeout=args[1]
            )
        elif op == "sleep":
            await asyncio.sleep(args[0])
        elif op == "mark":
            rec.write("mark", index=index, name=args[0])
        elif op == "wait_file":
            # Wait until the harness creates a file: lets a check order app and client.
            await _wait_file(args[0], args[1])
            rec.write("mark", index=index, name="file:" + args[0])
        elif op == "raise":
            raise ProbeFailure("compat probe: deliberate failure")
        elif op == "return":
            return decode(args[0])
        elif op == "mutate":
            _mutate(scope, args[0])
            rec.write("mark", index=index, name="mutated")
        elif op == "zerocopy":
            await _zerocopy(index, args[0], args[1], send, rec)
        elif op == "if_ext":
            # What a well-behaved app does: use an extension only where the scope offers it.
            # The branch's steps are recorded from index 100 * (index + 1).
            name, then, otherwise = args
            offered = isinstance(scope.get("extensions"), dict) and name in scope["extensions"]
            rec.write("mark", index=index, name=f"{name}:{'offered' if offered else 'absent'}")
            branch = then if offered else otherwise
            result = await run_plan(branch, scope, receive, send, rec, 100 * (index + 1))
            if result is not None:
                return result
        else:
            raise ValueError(f"unknown plan step {op!r}")
    return None


def _mutate(scope: dict[str, Any], marker: str) -> None:
    # What a middleware might do to the scope it was given. A server that shares nested
    # dicts between scopes (or deep-copies lifespan state) shows it in the next request.
    for key in ("extensions", "asgi"):
        if isinstance(scope.get(key), dict):
            scope[key]["compat.leak"] = marker
    state = scope.get("state")
    if isinstance(state, dict):
        state["compat_leak"] = marker
        if isinstance(state.get("compat_shared"), list):
            state["compat_shared"].append(marker)


def _body_done(event: dict[str, Any]) -> bool:
    if event.get("type") == "http.request":
        return not event.get("more_body", False)
    return True


async def _send(index: int, event: Any, send: Any, rec: Recorder) -> None:
    kind = event.get("type") if isinstance(event, dict) else None
    start = time.time()
    try:
        await send(event)
    except asyncio.CancelledError:
        rec.write("send", index=index, type=kind, start=start, error={"type": "CancelledError"})
        raise
    except Exception as exc:
        rec.write("send", index=index, type=kind, start=start, error=describe_exception(exc))
    else:
        rec.write("send", index=index, type=kind, start=start, error=None)


async def _receive_until(
    index: int, receive: Any, rec: Recorder, stop: Any, timeout: float
) -> None:
    deadline = time.monotonic() + min(timeout, MAX_WAIT)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            rec.write("receive_timeout", index=index)
            return
        try:
            event = await asyncio.wait_for(receive(), remaining)
        except asyncio.TimeoutError:
            rec.write("receive_timeout", index=index)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            rec.write("receive_error", index=index, error=describe_exception(exc))
            return
        rec.write("receive", index=index, event=encode(event))
        if not isinstance(event, dict) or stop(event):
            return


async def _wait_file(path: str, timeout: float) -> None:
    import os

    deadline = time.monotonic() + min(timeout, MAX_WAIT)
    while not os.path.exists(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def _zerocopy(index: int, path: str, more_body: bool, send: Any, rec: Recorder) -> None:
    # The extension hands the server an open file; the app (not the server) closes it.
    with open(path, "rb") as file:
        event = {"type": "http.response.zerocopysend", "file": file, "more_body": more_body}
        await _send(index, event, send, rec)
