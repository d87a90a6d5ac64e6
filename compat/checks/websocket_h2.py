"""WebSockets over HTTP/2 ([WWW] "WebSocket"; RFC 8441 for the extended CONNECT).

The client opens the socket with an extended CONNECT on an h2c connection. A server whose
SETTINGS do not allow it (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441 §3) gets "unsupported"
for every check here: RFC 8441 is optional, as HTTP/2 is.
"""

from __future__ import annotations

from typing import Any

from compat import plans
from compat.checks.base import H2C, RFC8441, WWW, Unsupported, check, expect
from compat.checks.http2 import AUTHORITY, headers_of, values_of
from compat.checks.websocket import MUST, accept, ws_close, ws_send
from compat.context import CheckContext, H2Exchange
from compat.harness.records import Trace
from compat.harness.ws import BINARY, CLOSE, TEXT, Frame
from compat.harness.ws_h2 import H2WebSocket

WS_TARGET = "/ws/caf%C3%A9?q=%20x"


def handshake(ctx: CheckContext) -> str | None:
    """Open and close one WebSocket over HTTP/2, once per server run: ``None`` when the
    server accepts the extended CONNECT, else what went wrong."""

    def make() -> str | None:
        plan = [plans.receive(plans.H2_DRAIN), accept(), plans.until("websocket.disconnect", 2)]
        try:
            exchange, ws = ctx.websocket_h2(plan)
        except TimeoutError as exc:
            return f"no answer to the extended CONNECT: {exc}"
        if ws is not None:
            ws.send_close(1000)
            ws.closed_within(2.0)
            return None
        scope = ctx.trace(exchange.token, timeout=1.0).scope or {}
        return (
            f"the extended CONNECT was answered with :status {exchange.response.status} (the "
            f"app was called with scope type {scope.get('type')!r}): {exchange.response!r}"
        )

    return ctx.cached("ws-h2-handshake", make)


def open_ws(
    ctx: CheckContext,
    plan: list[list[Any]],
    target: str = "/ws",
    headers: list[tuple[str, str | bytes]] | None = None,
    authority: str | None = None,
) -> tuple[H2Exchange, H2WebSocket]:
    """An accepted WebSocket over HTTP/2; ``Unsupported`` when the server accepts none
    (``websocket.h2.extended_connect`` is the check that fails then)."""
    failed = handshake(ctx)
    if failed is not None:
        raise Unsupported(f"no WebSocket over HTTP/2: {failed}")
    exchange, ws = ctx.websocket_h2(plan, target, headers, authority)
    expect(ws is not None, f"the extended CONNECT was answered with {exchange.response!r}")
    assert ws is not None
    return exchange, ws


def session(ctx: CheckContext) -> dict[str, Any]:
    """Client: a text and a binary message, then close 4002; app: accepts with a
    subprotocol, records both messages, sends text and bytes, waits for the disconnect."""

    def make() -> dict[str, Any]:
        plan = [
            plans.receive(plans.H2_DRAIN),
            accept(subprotocol="superchat"),
            plans.receive(plans.H2_DRAIN),
            plans.receive(plans.H2_DRAIN),
            ws_send(text="out-text"),
            ws_send(bytes=b"out-bytes"),
            plans.until("websocket.disconnect", 5.0),
        ]
        headers = [("sec-websocket-protocol", "chat, superchat"), ("x-compat-dup", "a")]
        exchange, ws = open_ws(ctx, plan, WS_TARGET, headers, AUTHORITY)
        ws.send_text("héllo")
        ws.send_binary(b"\x00\x01\xff")
        frames: list[Frame] = []
        for _ in range(2):
            frames.append(ws.recv_message(5.0))
        ws.send_close(4002, "later")
        ended, close = ws.closed_within(3.0)
        trace = ctx.trace(exchange.token)
        events = {r["index"]: r["event"] for r in trace.of("receive")}
        return {
            "exchange": exchange,
            "frames": frames,
            "trace": trace,
            "events": events,
            "close": close,
            "ended": ended,
        }

    return ctx.cached("ws-h2-session", make)


def scope_of(ctx: CheckContext) -> dict[str, Any]:
    trace: Trace = session(ctx)["trace"]
    expect(isinstance(trace.scope, dict), "no scope recorded")
    return trace.scope


@check(
    "websocket.h2.extended_connect",
    "an extended CONNECT (:protocol websocket) that the app accepts gets a 2xx",
    f"{RFC8441} §4, §5; {WWW} Accept - send event",
    MUST,
    protocol=H2C,
)
def extended_connect(ctx: CheckContext) -> None:
    failed = handshake(ctx)
    expect(failed is None, failed or "")


@check(
    "websocket.h2.scope",
    "type 'websocket', http_version '2', scheme 'ws' (if present), path and query as sent, "
    ":authority as the first header (host), no pseudo-headers",
    f"{WWW} Websocket Connection Scope",
    MUST,
    protocol=H2C,
)
def scope(ctx: CheckContext) -> None:
    value = scope_of(ctx)
    expect(value.get("type") == "websocket", f"type is {value.get('type')!r}")
    expect(value.get("http_version") == "2", f"http_version {value.get('http_version')!r}")
    expect(value.get("scheme", "ws") == "ws", f"scheme is {value.get('scheme')!r}")
    expect(value.get("path") == "/ws/café", f"path is {value.get('path')!r}")
    expect(value.get("query_string") == b"q=%20x", f"query_string {value.get('query_string')!r}")
    headers = headers_of(value)
    expect(headers and headers[0] == (b"host", AUTHORITY.encode()), f"headers {headers[:2]!r}")
    pseudo = [h for h in headers if bytes(h[0]).startswith(b":")]
    expect(not pseudo, f"pseudo-headers in scope: {pseudo!r}")
    expect(values_of(headers, b"x-compat-dup") == [b"a"], f"headers {headers!r}")


@check(
    "websocket.h2.subprotocol",
    "subprotocols lists what the client offered; the accepted one is in the 2xx response",
    f"{WWW} Websocket Connection Scope; Accept - send event; {RFC8441} §5",
    MUST,
    protocol=H2C,
)
def subprotocol(ctx: CheckContext) -> None:
    offered = list(scope_of(ctx).get("subprotocols") or [])
    expect(offered == ["chat", "superchat"], f"subprotocols {offered!r}")
    response = session(ctx)["exchange"].response
    chosen = response.header_values("sec-websocket-protocol")
    expect(chosen == [b"superchat"], f"sec-websocket-protocol in the response: {chosen!r}")


@check(
    "websocket.h2.messages",
    "text and binary messages cross both ways as websocket.receive / websocket.send",
    f"{WWW} Receive - receive event; Send - send event",
    MUST,
    protocol=H2C,
)
def messages(ctx: CheckContext) -> None:
    events = session(ctx)["events"]
    text, data = events.get(2) or {}, events.get(3) or {}
    expect(text.get("text") == "héllo" and text.get("bytes") is None, f"event {text!r}")
    expect(data.get("bytes") == b"\x00\x01\xff" and data.get("text") is None, f"event {data!r}")
    frames = [(f.opcode, f.payload) for f in session(ctx)["frames"]]
    expect(frames == [(TEXT, b"out-text"), (BINARY, b"out-bytes")], f"frames {frames!r}")


@check(
    "websocket.h2.client_close",
    "the client's close frame gives the app websocket.disconnect with its code",
    f"{WWW} Disconnect - receive event",
    MUST,
    protocol=H2C,
)
def client_close(ctx: CheckContext) -> str:
    trace: Trace = session(ctx)["trace"]
    disconnects = [e for e in trace.events if e.get("type") == "websocket.disconnect"]
    expect(disconnects, f"no websocket.disconnect (events {trace.events!r})")
    expect(disconnects[0].get("code") == 4002, f"event {disconnects[0]!r}")
    close = session(ctx)["close"]
    return f"server answered close {close.close_code if close else None}"


@check(
    "websocket.h2.app_close",
    "websocket.close after accept sends a close frame with the app's code",
    f"{WWW} Close - send event",
    MUST,
    protocol=H2C,
)
def app_close(ctx: CheckContext) -> str:
    _, ws = open_ws(ctx, [plans.receive(plans.H2_DRAIN), accept(), ws_close(code=4001)])
    ended, frame = ws.closed_within(3.0)
    expect(frame is not None, "no close frame" if ended else "still open after 3 s")
    assert frame is not None
    expect(frame.opcode == CLOSE and frame.close_code == 4001, f"close code {frame.close_code}")
    ws.send_close(4001)
    stream_ended, _ = ws.closed_within(3.0)
    return "stream ended" if stream_ended else "stream still open 3 s after the close"


@check(
    "websocket.h2.close_before_accept_403",
    "websocket.close before accept answers the extended CONNECT with 403",
    f"{WWW} Close - send event; {RFC8441} §5",
    MUST,
    protocol=H2C,
)
def close_before_accept(ctx: CheckContext) -> None:
    exchange, ws = ctx.websocket_h2([plans.receive(plans.H2_DRAIN), ws_close()])
    if ws is None and exchange.response.status == 403:
        return
    failed = handshake(ctx)
    if failed is not None:
        raise Unsupported(f"no WebSocket over HTTP/2: {failed}")
    expect(False, f"got {exchange.response!r}")
