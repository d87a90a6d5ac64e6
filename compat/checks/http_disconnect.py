"""``http.disconnect`` and sending after the client went away ([WWW] "Disconnect - receive
event", "Disconnected Client - send exception"; [ASGI] "Error Handling")."""

from __future__ import annotations

import time
from typing import Any

from compat import plans
from compat.checks.base import (
    ASGI,
    WWW,
    Fail,
    NotAdvertised,
    NotApplicable,
    Strength,
    check,
    expect,
)
from compat.context import CheckContext
from compat.harness.records import Trace

MUST, SHOULD = Strength.MUST, Strength.SHOULD


def events_of_step(trace: Trace, index: int) -> list[Any]:
    return [r["event"] for r in trace.of("receive") if r.get("index") == index]


def hang_up_after(ctx: CheckContext, plan: list[list[Any]], mark: str) -> Trace:
    """Send a request whose app runs ``plan``; close the connection once the app recorded
    ``mark``; return the finished trace."""
    token = ctx.token()
    conn = ctx.connection()
    conn.send(ctx.request_bytes(plan, token, "POST", body=b"payload"))
    ctx.records.wait(token, lambda t: t.mark(mark) is not None, 5.0)
    conn.close()
    return ctx.trace(token, timeout=8.0)


@check(
    "http.disconnect.after_response",
    "receive() after the response was sent returns http.disconnect",
    f"{WWW} Disconnect - receive event",
    MUST,
)
def after_response(ctx: CheckContext) -> None:
    # The client keeps the connection open: the response, not the close, is the trigger.
    exchange = ctx.http([plans.drain(), *plans.respond(), plans.receive(3.0)], keep_open=True)
    trace = ctx.trace(exchange.token, timeout=6.0)
    events = events_of_step(trace, 3)
    expect(events, "receive() after the response did not return within 3 s")
    kind = events[0].get("type")
    expect(kind == "http.disconnect", f"receive() after the response returned {kind!r}")


@check(
    "http.disconnect.client_gone",
    "an app waiting in receive() gets http.disconnect when the client closes",
    f"{WWW} Disconnect - receive event",
    MUST,
)
def client_gone(ctx: CheckContext) -> None:
    plan = [plans.drain(), plans.mark("drained"), plans.until("http.disconnect", 5.0)]
    trace = hang_up_after(ctx, plan, "drained")
    events = events_of_step(trace, 2)
    expect(events, "no event within 5 s of the client closing")
    kinds = [e.get("type") for e in events]
    expect(kinds[-1] == "http.disconnect", f"events after the close: {kinds}")


@check(
    "http.disconnect.mid_body",
    "a client closing mid-body ends the app's receive() loop with http.disconnect",
    f"{WWW} Disconnect - receive event",
    MUST,
)
def mid_body(ctx: CheckContext) -> str:
    token = ctx.token()
    conn = ctx.connection()
    head = ctx.request_bytes(
        [plans.until("http.disconnect", 5.0)],
        token,
        "POST",
        headers=[("Content-Length", "100000")],
    )
    conn.send(head + b"x" * 1000)
    time.sleep(0.3)
    conn.close()
    trace = ctx.records.wait(token, lambda t: t.scope is not None, 1.0)
    if trace.scope is not None:
        trace = ctx.trace(token, timeout=7.0)
    if trace.scope is None:
        # A server may wait for the body before calling the app; then nothing is owed.
        return "the app was not called for the incomplete request"
    kinds = [e.get("type") for e in trace.events]
    expect(kinds and kinds[-1] == "http.disconnect", f"events: {kinds}")
    return ""


def send_after_close(ctx: CheckContext) -> Trace:
    """The app waits for the disconnect, then sends a whole response (steps 3 and 4)."""

    def make() -> Trace:
        plan = [
            plans.drain(),
            plans.mark("drained"),
            plans.until("http.disconnect", 5.0),
            *plans.respond(b"too late"),
        ]
        trace = hang_up_after(ctx, plan, "drained")
        kinds = [e.get("type") for e in events_of_step(trace, 2)]
        if "http.disconnect" not in kinds:
            raise Fail(f"no http.disconnect after the client closed (events {kinds})")
        return trace

    return ctx.cached("send-after-close", make)


@check(
    "http.disconnect.send_raises_oserror",
    "send() after the client disconnected raises an OSError subclass (spec 2.4+)",
    f"{WWW} Disconnected Client - send exception",
    SHOULD,
)
def send_raises(ctx: CheckContext) -> str:
    if ctx.spec_version() < (2, 4):
        raise NotAdvertised(f"spec_version {ctx.spec_version()} < 2.4")
    trace = send_after_close(ctx)
    errors = [s["error"] for s in trace.sends() if s["error"] is not None]
    expect(errors, "both sends after the disconnect returned normally")
    bad = [e["type"] for e in errors if not e["oserror"]]
    expect(not bad, f"raised {bad}, not OSError subclasses")
    return f"raised {errors[0]['module']}.{errors[0]['type']}"


@check(
    "http.disconnect.send_noop",
    "send() after the client disconnected is a no-op (servers before spec 2.4)",
    f"{ASGI} Error Handling",
    SHOULD,
)
def send_noop(ctx: CheckContext) -> None:
    if ctx.spec_version() >= (2, 4):
        raise NotApplicable("spec_version >= 2.4 promises an OSError instead")
    trace = send_after_close(ctx)
    errors = [s["error"]["type"] for s in trace.sends() if s["error"] is not None]
    expect(not errors, f"send() raised {errors}")


def escaped_oserror(ctx: CheckContext) -> tuple[Trace, str]:
    """The app lets the send exception escape; the trace and the log written meanwhile."""

    def make() -> tuple[Trace, str]:
        if ctx.spec_version() < (2, 4):
            raise NotAdvertised(f"spec_version {ctx.spec_version()} < 2.4")
        assert ctx.server is not None
        offset = ctx.server.process.log_size()
        plan = [
            plans.drain(),
            plans.mark("drained"),
            plans.until("http.disconnect", 5.0),
            plans.send_raw({"type": "http.response.start", "status": 200, "headers": []}),
            plans.send_raw({"type": "http.response.body", "body": b"x"}),
        ]
        trace = hang_up_after(ctx, plan, "drained")
        end = trace.end or {}
        if end.get("outcome") != "error" or not end.get("error", {}).get("oserror"):
            raise Fail(f"send() after the disconnect did not raise an OSError ({end!r})")
        time.sleep(0.5)  # let the server log whatever it logs
        return trace, ctx.server.process.log_text(offset)

    return ctx.cached("escaped-oserror", make)


@check(
    "http.disconnect.oserror_caught",
    "the server catches its own send() OSError escaping the app and keeps serving",
    f"{WWW} Disconnected Client - send exception",
    MUST,
)
def oserror_caught(ctx: CheckContext) -> None:
    escaped_oserror(ctx)
    exchange = ctx.http([plans.drain(), *plans.respond()])
    expect(exchange.response.status == 200, f"next request got {exchange.response.status}")


@check(
    "http.disconnect.oserror_not_logged",
    "the server does not log its own send() OSError as an error (no traceback)",
    f"{WWW} Disconnected Client - send exception",
    SHOULD,
)
def oserror_not_logged(ctx: CheckContext) -> None:
    trace, log = escaped_oserror(ctx)
    name = (trace.end or {}).get("error", {}).get("type", "")
    lines = [line for line in log.splitlines() if "Traceback" in line or (name and name in line)]
    expect(not lines, f"logged: {lines[:3]}")
