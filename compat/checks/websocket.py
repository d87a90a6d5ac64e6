"""WebSocket scope, events and handshake ([WWW] "WebSocket"; checklist §1.2, §2.2).

A server that answers the upgrade with anything but 101 fails ``websocket.handshake``; every
other WebSocket check then reports "unsupported" rather than a pile of failures.
"""

from __future__ import annotations

import time
from typing import Any

from compat import plans
from compat.checks.base import (
    EXT,
    WWW,
    NotAdvertised,
    Strength,
    Unsupported,
    check,
    expect,
)
from compat.checks.http_scope import SPEC_VERSIONS
from compat.context import CheckContext, Exchange
from compat.harness.records import Trace
from compat.harness.wire import ConnectionClosed
from compat.harness.ws import BINARY, CLOSE, CONT, PING, PONG, TEXT, Frame, WebSocket

MUST, SHOULD, DE_FACTO = Strength.MUST, Strength.SHOULD, Strength.DE_FACTO
WS_TARGET = "/ws/caf%C3%A9?q=%20x"
WS_HEADERS: list[tuple[str, str | bytes]] = [
    ("X-Compat-Dup", "a"),
    ("X-Compat-Dup", "b"),
    ("Sec-WebSocket-Protocol", "chat, superchat"),
]


def accept(**extra: Any) -> list[Any]:
    return plans.send({"type": "websocket.accept", **extra})


def ws_send(**keys: Any) -> list[Any]:
    return plans.send({"type": "websocket.send", **keys})


def ws_close(**keys: Any) -> list[Any]:
    return plans.send({"type": "websocket.close", **keys})


def open_ws(
    ctx: CheckContext,
    plan: list[list[Any]],
    target: str = "/ws",
    headers: list[tuple[str, str | bytes]] | None = None,
) -> tuple[Exchange, WebSocket, float]:
    """Open a WebSocket whose app accepts per ``plan``; ``Unsupported`` without a 101."""
    exchange, ws, elapsed = ctx.websocket(plan, target, headers)
    if ws is None:
        raise Unsupported(f"no WebSocket handshake ({exchange.response.status_line.decode()})")
    return exchange, ws, elapsed


def first_session(ctx: CheckContext) -> tuple[Exchange, WebSocket, Trace, int]:
    """A WebSocket opened with a rich target and headers, then closed by the client."""

    def make() -> tuple[Exchange, WebSocket, Trace, int]:
        plan = [
            plans.receive(),
            accept(subprotocol="superchat"),
            plans.until("websocket.disconnect"),
        ]
        exchange, ws, _ = open_ws(ctx, plan, WS_TARGET, WS_HEADERS)
        local_port = ws.conn.sock.getsockname()[1]
        ws.send_close(1000)
        ws.closed_within(3.0)
        return exchange, ws, ctx.trace(exchange.token), local_port

    return ctx.cached("ws-first", make)


def ws_scope(ctx: CheckContext) -> dict[str, Any]:
    scope = first_session(ctx)[2].scope
    expect(isinstance(scope, dict), "no scope recorded")
    return scope


@check(
    "websocket.handshake",
    "an app that accepts gets a 101 with a valid Sec-WebSocket-Accept",
    f"{WWW} Accept - send event; RFC 6455 §4.2.2",
    MUST,
)
def handshake(ctx: CheckContext) -> None:
    plan = [plans.receive(), accept(), plans.until("websocket.disconnect", 2.0)]
    exchange, ws, _ = ctx.websocket(plan)
    expect(ws is not None, f"upgrade answered with {exchange.response.status_line!r}")


@check(
    "websocket.scope.type",
    "type is 'websocket', asgi version '3.0', spec_version (if present) 2.0-2.5",
    f"{WWW} Websocket Connection Scope",
    MUST,
)
def scope_type(ctx: CheckContext) -> str:
    scope = ws_scope(ctx)
    expect(scope.get("type") == "websocket", f"type is {scope.get('type')!r}")
    asgi = scope.get("asgi") or {}
    expect(asgi.get("version") == "3.0", f"asgi is {asgi!r}")
    spec = asgi.get("spec_version", "2.0")
    expect(spec in SPEC_VERSIONS, f"spec_version is {spec!r}")
    return f"asgi={asgi!r}"


@check(
    "websocket.scope.http_version_scheme",
    "http_version (if present) is '1.1' and scheme (if present) 'ws'",
    f"{WWW} Websocket Connection Scope",
    MUST,
)
def http_version_scheme(ctx: CheckContext) -> None:
    scope = ws_scope(ctx)
    version = scope.get("http_version", "1.1")
    expect(version == "1.1", f"http_version is {version!r}")
    expect(scope.get("scheme", "ws") == "ws", f"scheme is {scope.get('scheme')!r}")


@check(
    "websocket.scope.path",
    "path is decoded, raw_path (if present) is the raw bytes, query_string stays encoded",
    f"{WWW} Websocket Connection Scope",
    MUST,
)
def ws_path(ctx: CheckContext) -> None:
    scope = ws_scope(ctx)
    expect(scope.get("path") == "/ws/café", f"path is {scope.get('path')!r}")
    raw = scope.get("raw_path")
    expect(raw in (None, b"/ws/caf%C3%A9"), f"raw_path is {raw!r}")
    query = scope.get("query_string", b"")
    expect(query == b"q=%20x", f"query_string is {query!r}")


@check(
    "websocket.scope.headers",
    "headers are (bytes, bytes) pairs with repeated names kept in order",
    f"{WWW} Websocket Connection Scope",
    MUST,
)
def ws_headers(ctx: CheckContext) -> None:
    headers = list(ws_scope(ctx).get("headers") or [])
    for pair in headers:
        expect(
            len(pair) == 2 and isinstance(pair[0], bytes) and isinstance(pair[1], bytes),
            f"header {pair!r}",
        )
    dup = [v for k, v in headers if k.lower() == b"x-compat-dup"]
    expect(dup == [b"a", b"b"], f"x-compat-dup values {dup!r}")


@check(
    "websocket.scope.client_server",
    "client and server are [str, int] pairs naming the two sockets",
    f"{WWW} Websocket Connection Scope",
    MUST,
)
def ws_client_server(ctx: CheckContext) -> None:
    scope, local_port = ws_scope(ctx), first_session(ctx)[3]
    client, server = scope.get("client"), scope.get("server")
    if client is not None:
        expect(list(client) == ["127.0.0.1", local_port], f"client is {client!r}")
    if server is not None:
        expect(list(server) == ["127.0.0.1", ctx.endpoint.port], f"server is {server!r}")


@check(
    "websocket.scope.subprotocols",
    "subprotocols lists the offered Sec-WebSocket-Protocol values as str",
    f"{WWW} Websocket Connection Scope",
    MUST,
)
def subprotocols(ctx: CheckContext) -> None:
    value = ws_scope(ctx).get("subprotocols")
    expect(list(value or []) == ["chat", "superchat"], f"subprotocols is {value!r}")


@check(
    "websocket.scope.state",
    "the WebSocket scope carries a copy of the lifespan state",
    "lifespan.rst Lifespan State",
    MUST,
)
def ws_state(ctx: CheckContext) -> None:
    scope = ws_scope(ctx)
    if "state" not in ctx.baseline():
        raise NotAdvertised("no lifespan state in HTTP scopes either")
    state = scope.get("state")
    expect(isinstance(state, dict), f"state is {state!r}")
    expect(state.get("compat_value") == "from-lifespan", f"state is {state!r}")


@check(
    "websocket.connect_first",
    "the first event is websocket.connect",
    f"{WWW} Connect - receive event",
    MUST,
)
def connect_first(ctx: CheckContext) -> None:
    events = first_session(ctx)[2].events
    expect(events and events[0].get("type") == "websocket.connect", f"events {events[:2]!r}")


@check(
    "websocket.handshake_waits_for_accept",
    "the handshake is not completed before the app accepts",
    f"{WWW} Connect - receive event",
    MUST,
)
def waits_for_accept(ctx: CheckContext) -> str:
    plan = [plans.receive(), plans.sleep(0.8), accept(), plans.until("websocket.disconnect", 2)]
    _, _, elapsed = open_ws(ctx, plan)
    expect(elapsed >= 0.7, f"101 after {elapsed:.2f} s while the app waited 0.8 s to accept")
    return f"101 after {elapsed:.2f} s"


@check(
    "websocket.accept_subprotocol",
    "the subprotocol given in websocket.accept is sent as Sec-WebSocket-Protocol",
    f"{WWW} Accept - send event",
    MUST,
)
def accept_subprotocol(ctx: CheckContext) -> None:
    response = first_session(ctx)[0].response
    value = response.header("sec-websocket-protocol")
    expect(value == b"superchat", f"Sec-WebSocket-Protocol is {value!r}")


@check(
    "websocket.accept_headers",
    "headers given in websocket.accept are sent in the 101 response (spec 2.1+)",
    f"{WWW} Accept - send event; Spec Versions",
    MUST,
)
def accept_headers(ctx: CheckContext) -> None:
    scope = ws_scope(ctx)
    if ctx.spec_version(scope) < (2, 1):
        raise NotAdvertised(f"spec_version {ctx.spec_version(scope)} < 2.1")
    plan = [
        plans.receive(),
        accept(headers=[(b"x-compat-accept", b"yes")]),
        plans.until("websocket.disconnect", 2.0),
    ]
    exchange, _, _ = open_ws(ctx, plan)
    value = exchange.response.header("x-compat-accept")
    expect(value == b"yes", f"101 headers {exchange.response.headers!r}")


@check(
    "websocket.close_before_accept_403",
    "websocket.close before accept rejects the handshake with HTTP 403",
    f"{WWW} Close - send event",
    MUST,
)
def close_before_accept(ctx: CheckContext) -> None:
    exchange, ws, _ = ctx.websocket([plans.receive(), ws_close()])
    if ws is None and exchange.response.status == 403:
        return
    first_session(ctx)  # Unsupported when the server has no WebSocket at all
    expect(False, f"got {exchange.response.status_line!r}")


def conversation(ctx: CheckContext) -> dict[str, Any]:
    """Client: text, binary, a fragmented text and a ping; app: records three messages,
    sends text and bytes, closes with 4001 "bye"."""

    def make() -> dict[str, Any]:
        plan = [
            plans.receive(),
            accept(),
            plans.receive(),
            plans.receive(),
            plans.receive(),
            ws_send(text="out-text"),
            ws_send(bytes=b"out-bytes"),
            plans.sleep(0.3),
            ws_close(code=4001, reason="bye"),
            plans.until("websocket.disconnect", 3.0),
        ]
        exchange, ws, _ = open_ws(ctx, plan)
        ws.send_text("héllo")
        ws.send_binary(b"\x00\x01\xff")
        ws.send_frame(TEXT, b"frag", fin=False)
        ws.send_frame(CONT, b"men", fin=False)
        ws.send_frame(CONT, b"ted", fin=True)
        ws.send_frame(PING, b"are-you-there")
        frames: list[Frame] = []
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                frame = ws.recv_frame(deadline - time.monotonic())
            except (TimeoutError, ConnectionClosed):
                break
            frames.append(frame)
            if frame.opcode == CLOSE:
                ws.send_close(frame.close_code or 1000)
                break
        trace = ctx.trace(exchange.token)
        by_step = {r["index"]: r["event"] for r in trace.of("receive")}
        return {"frames": frames, "trace": trace, "events": by_step}

    return ctx.cached("ws-conversation", make)


@check(
    "websocket.receive_text",
    "a text frame arrives as websocket.receive with 'text' (str) and no bytes",
    f"{WWW} Receive - receive event",
    MUST,
)
def receive_text(ctx: CheckContext) -> None:
    event = conversation(ctx)["events"].get(2) or {}
    expect(event.get("type") == "websocket.receive", f"event {event!r}")
    expect(event.get("text") == "héllo" and event.get("bytes") is None, f"event {event!r}")


@check(
    "websocket.receive_bytes",
    "a binary frame arrives as websocket.receive with 'bytes' and no text",
    f"{WWW} Receive - receive event",
    MUST,
)
def receive_bytes(ctx: CheckContext) -> None:
    event = conversation(ctx)["events"].get(3) or {}
    expect(event.get("bytes") == b"\x00\x01\xff" and event.get("text") is None, f"{event!r}")


@check(
    "websocket.fragments_reassembled",
    "a fragmented message is delivered whole, as one event",
    f"{WWW} WebSocket",
    SHOULD,
)
def fragments(ctx: CheckContext) -> None:
    event = conversation(ctx)["events"].get(4) or {}
    expect(event.get("text") == "fragmented", f"event {event!r}")


@check(
    "websocket.ping_answered",
    "the server answers a ping with a pong carrying the same data",
    f"{WWW} WebSocket",
    SHOULD,
)
def ping_answered(ctx: CheckContext) -> None:
    pongs = [f for f in conversation(ctx)["frames"] if f.opcode == PONG]
    expect(pongs and pongs[0].payload == b"are-you-there", f"pongs {pongs!r}")


@check(
    "websocket.send_text_bytes",
    "websocket.send text goes out as a text frame, bytes as a binary frame",
    f"{WWW} Send - send event",
    MUST,
)
def send_text_bytes(ctx: CheckContext) -> None:
    data = [(f.opcode, f.payload) for f in conversation(ctx)["frames"] if f.opcode in (1, 2)]
    expect(data == [(TEXT, b"out-text"), (BINARY, b"out-bytes")], f"data frames {data!r}")


def app_close(ctx: CheckContext) -> Frame:
    closes = [f for f in conversation(ctx)["frames"] if f.opcode == CLOSE]
    expect(closes, "no close frame from the server")
    return closes[0]


@check(
    "websocket.close_code",
    "websocket.close after accept sends a close frame with the app's code",
    f"{WWW} Close - send event",
    MUST,
)
def close_code(ctx: CheckContext) -> None:
    frame = app_close(ctx)
    expect(frame.close_code == 4001, f"close code {frame.close_code}")


@check(
    "websocket.close_reason",
    "the reason given in websocket.close is sent in the close frame (spec 2.3+)",
    f"{WWW} Close - send event; Spec Versions",
    MUST,
)
def close_reason(ctx: CheckContext) -> None:
    if ctx.spec_version(ws_scope(ctx)) < (2, 3):
        raise NotAdvertised("spec_version < 2.3")
    frame = app_close(ctx)
    expect(frame.close_reason == "bye", f"close reason {frame.close_reason!r}")


@check(
    "websocket.close_default_code",
    "websocket.close without a code closes with 1000",
    f"{WWW} Close - send event",
    MUST,
)
def close_default(ctx: CheckContext) -> None:
    _, ws, _ = open_ws(ctx, [plans.receive(), accept(), ws_close()])
    ended, frame = ws.closed_within(3.0)
    expect(frame is not None, "no close frame" if ended else "still open after 3 s")
    expect(frame.close_code == 1000, f"close code {frame.close_code}")


def client_closes(ctx: CheckContext, code: int | None, reason: str = "") -> dict[str, Any]:
    """The disconnect event the app gets when the client closes with ``code``."""
    plan = [plans.receive(), accept(), plans.mark("open"), plans.until("websocket.disconnect")]
    exchange, ws, _ = open_ws(ctx, plan)
    ctx.records.wait(exchange.token, lambda t: t.mark("open") is not None, 3.0)
    if code is None:
        ws.send_frame(CLOSE, b"")
    else:
        ws.send_close(code, reason)
    ws.closed_within(3.0)
    trace = ctx.trace(exchange.token)
    disconnects = [e for e in trace.events if e.get("type") == "websocket.disconnect"]
    expect(disconnects, f"no websocket.disconnect (events {trace.events!r})")
    return disconnects[0]


@check(
    "websocket.disconnect_code",
    "websocket.disconnect carries the client's close code",
    f"{WWW} Disconnect - receive event",
    MUST,
)
def disconnect_code(ctx: CheckContext) -> None:
    event = ctx.cached("ws-client-4002", lambda: client_closes(ctx, 4002, "later"))
    expect(event.get("code") == 4002, f"event {event!r}")


@check(
    "websocket.disconnect_reason",
    "websocket.disconnect carries the client's close reason (spec 2.5+)",
    f"{WWW} Disconnect - receive event; Spec Versions",
    MUST,
)
def disconnect_reason(ctx: CheckContext) -> None:
    if ctx.spec_version(ws_scope(ctx)) < (2, 5):
        raise NotAdvertised("spec_version < 2.5")
    event = ctx.cached("ws-client-4002", lambda: client_closes(ctx, 4002, "later"))
    expect(event.get("reason") == "later", f"event {event!r}")


@check(
    "websocket.disconnect_no_code_1005",
    "a client close frame without a code is reported as code 1005",
    f"{WWW} Disconnect - receive event",
    MUST,
)
def disconnect_1005(ctx: CheckContext) -> None:
    event = client_closes(ctx, None)
    expect(event.get("code") == 1005, f"event {event!r}")


@check(
    "websocket.disconnect_on_drop",
    "a dropped TCP connection gives the app websocket.disconnect",
    f"{WWW} Disconnect - receive event",
    MUST,
)
def disconnect_on_drop(ctx: CheckContext) -> str:
    plan = [plans.receive(), accept(), plans.mark("open"), plans.until("websocket.disconnect")]
    exchange, ws, _ = open_ws(ctx, plan)
    ctx.records.wait(exchange.token, lambda t: t.mark("open") is not None, 3.0)
    ws.conn.close()
    trace = ctx.trace(exchange.token, timeout=6.0)
    kinds = [e.get("type") for e in trace.events]
    expect("websocket.disconnect" in kinds, f"events {kinds}")
    return f"code {trace.events[-1].get('code')}"


@check(
    "websocket.send_after_close_oserror",
    "send() after the client disconnected raises an OSError subclass (spec 2.4+)",
    f"{WWW} Disconnected Client - send exception",
    SHOULD,
)
def send_after_close(ctx: CheckContext) -> str:
    if ctx.spec_version(ws_scope(ctx)) < (2, 4):
        raise NotAdvertised("spec_version < 2.4")
    plan = [
        plans.receive(),
        accept(),
        plans.mark("open"),
        plans.until("websocket.disconnect"),
        ws_send(text="late"),
    ]
    exchange, ws, _ = open_ws(ctx, plan)
    ctx.records.wait(exchange.token, lambda t: t.mark("open") is not None, 3.0)
    ws.conn.close()
    outcome = ctx.trace(exchange.token, timeout=6.0).send_at(4)
    expect(outcome is not None, "the app never got to send")
    error = outcome["error"]
    expect(error is not None and error["oserror"], f"send() outcome {error!r}")
    return f"raised {error['type']}"


@check(
    "websocket.send_both_raises",
    "websocket.send with both bytes and text raises from send()",
    f"{WWW} Send - send event; checklist §2.2",
    SHOULD,
)
def send_both(ctx: CheckContext) -> None:
    plan = [plans.receive(), accept(), ws_send(bytes=b"b", text="t"), ws_close()]
    exchange, ws, _ = open_ws(ctx, plan)
    ws.closed_within(3.0)
    outcome = ctx.trace(exchange.token).send_at(2)
    expect(outcome is not None and outcome["error"] is not None, "send() accepted it")


@check(
    "websocket.send_before_accept_raises",
    "websocket.send before accept raises from send()",
    "checklist §2.2 (uvicorn RuntimeError, hypercorn UnexpectedMessageError)",
    DE_FACTO,
)
def send_before_accept(ctx: CheckContext) -> None:
    first_session(ctx)
    plan = [plans.receive(), ws_send(text="early"), ws_close()]
    exchange, _, _ = ctx.websocket(plan)
    outcome = ctx.trace(exchange.token).send_at(1)
    expect(outcome is not None and outcome["error"] is not None, "send() accepted it")


@check(
    "websocket.return_without_accept_500",
    "an app returning without accept or close gets an HTTP 500",
    "checklist §2.2 (uvicorn, hypercorn)",
    DE_FACTO,
)
def return_without_accept(ctx: CheckContext) -> None:
    first_session(ctx)
    exchange, ws, _ = ctx.websocket([plans.receive()])
    expect(ws is None and exchange.response.status == 500, f"{exchange.response.status_line!r}")


@check(
    "websocket.exception_closes",
    "an app raising after accept has its connection closed",
    "asgi.rst Error Handling (terminate the instance and its connection)",
    MUST,
)
def exception_closes(ctx: CheckContext) -> str:
    _, ws, _ = open_ws(ctx, [plans.receive(), accept(), plans.fail()])
    ended, frame = ws.closed_within(3.0)
    expect(ended, "still open 3 s after the app raised")
    return f"close frame {frame.close_code}" if frame else "TCP close"


@check(
    "websocket.denial_response",
    "with websocket.http.response advertised, the app can answer the handshake with any "
    "HTTP response",
    f"{EXT} Websocket Denial Response",
    MUST,
)
def denial_response(ctx: CheckContext) -> None:
    if "websocket.http.response" not in ctx.extensions(ws_scope(ctx)):
        raise NotAdvertised("websocket.http.response not in extensions")
    plan = [
        plans.receive(),
        plans.send(
            {
                "type": "websocket.http.response.start",
                "status": 418,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"6")],
            }
        ),
        plans.send({"type": "websocket.http.response.body", "body": b"denied"}),
    ]
    exchange, ws, _ = ctx.websocket(plan)
    response = exchange.response
    expect(ws is None and response.status == 418, f"got {response.status_line!r}")
    expect(response.body == b"denied", f"body {response.body!r}")
