"""Request bodies as ``http.request`` events ([WWW] "Request - receive event")."""

from __future__ import annotations

import time
from typing import Any

from compat import plans
from compat.checks.base import WWW, Strength, check, expect
from compat.context import CheckContext

MUST = Strength.MUST


def check_body_events(events: list[Any], sent: bytes) -> str:
    """Fail unless ``events`` deliver ``sent`` as the spec says; a summary otherwise."""
    expect(events, "no http.request event")
    for i, event in enumerate(events):
        expect(isinstance(event, dict), f"event {i} is {event!r}")
        expect(event.get("type") == "http.request", f"event {i} is {event.get('type')!r}")
        body = event.get("body", b"")
        expect(isinstance(body, bytes), f"event {i} body is {type(body).__name__}")
        more = event.get("more_body", False)
        expect(isinstance(more, bool), f"event {i} more_body is {more!r}")
        last = i == len(events) - 1
        expect(more is not last, f"event {i} of {len(events)} has more_body={more}")
    got = b"".join(e.get("body", b"") for e in events)
    expect(got == sent, f"app got {len(got)} bytes, {len(sent)} sent (equal: {got == sent})")
    return f"{len(events)} event(s)"


@check(
    "http.body.empty",
    "a bodyless request still gets one http.request with body b'' and more_body False",
    f"{WWW} Request - receive event",
    MUST,
)
def empty(ctx: CheckContext) -> str:
    exchange = ctx.http([plans.drain(), *plans.respond()])
    events = ctx.trace(exchange.token).events
    expect(len(events) == 1, f"events: {events!r}")
    return check_body_events(events, b"")


@check(
    "http.body.small",
    "a small body arrives whole; only the last event has more_body False",
    f"{WWW} Request - receive event",
    MUST,
)
def small(ctx: CheckContext) -> str:
    data = b"name=value&x=1"
    exchange = ctx.http([plans.drain(), *plans.respond()], method="POST", body=data)
    return check_body_events(ctx.trace(exchange.token).events, data)


@check(
    "http.body.large",
    "a 1 MiB body arrives complete and in order over several events",
    f"{WWW} Request - receive event",
    MUST,
    timeout=20.0,
)
def large(ctx: CheckContext) -> str:
    data = bytes(range(256)) * 4096
    exchange = ctx.http(
        [plans.drain(10.0), *plans.respond()], method="POST", body=data, timeout=15.0
    )
    return check_body_events(ctx.trace(exchange.token, timeout=10.0).events, data)


@check(
    "http.body.chunked",
    "a chunked request body is de-chunked: the app sees only the data",
    f"{WWW} HTTP Connection Scope; Request - receive event",
    MUST,
)
def chunked(ctx: CheckContext) -> str:
    token = ctx.token()
    head = ctx.request_bytes(
        [plans.drain(), *plans.respond()],
        token,
        "POST",
        headers=[("Transfer-Encoding", "chunked")],
    )
    conn = ctx.connection()
    # Sent in pieces with pauses, as a streaming client would.
    conn.send(head)
    for piece in (b"5\r\nhello\r\n", b"1;ext=1\r\n \r\n", b"6\r\nworld!\r\n", b"0\r\n\r\n"):
        time.sleep(0.05)
        conn.send(piece)
    response = conn.read_final()[-1]
    expect(response.status == 200, f"status {response.status}")
    return check_body_events(ctx.trace(token).events, b"hello world!")
