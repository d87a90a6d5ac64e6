"""Responses on the wire, read from raw sockets ([WWW] "Response Start", "Response Body";
RFC 9110/9112 where the ASGI spec leaves framing to HTTP)."""

from __future__ import annotations

import time

from compat import plans
from compat.checks.base import WWW, Strength, check, expect
from compat.context import CheckContext, Exchange
from compat.harness.wire import Connection, ConnectionClosed, Response

MUST, SHOULD, DE_FACTO = Strength.MUST, Strength.SHOULD, Strength.DE_FACTO
RFC9112 = "RFC 9112"
RFC9110 = "RFC 9110"


def follow_up_is_clean(ctx: CheckContext, first_plan: list, method: str = "GET") -> Response:
    """Pipeline a request running ``first_plan`` and a plain GET on one connection; the
    second response must parse right where the first ends (no stray body bytes). A server
    may instead close the connection after the first response, if nothing else came."""
    conn = ctx.connection()
    first_token, second_token = ctx.token(), ctx.token()
    conn.send(
        ctx.request_bytes(first_plan, first_token, method)
        + ctx.request_bytes([plans.drain(), *plans.respond(b"second")], second_token)
    )
    first = conn.read_final(method)[-1]
    try:
        second = conn.read_final()[-1]
    except ConnectionClosed:
        expect(not conn.buffer, f"stray bytes after the response: {conn.buffer[:80]!r}")
        return first
    expect(
        second.status == 200 and second.body == b"second",
        f"follow-up response is {second.status_line!r} {second.body[:60]!r}",
    )
    return first


@check(
    "http.response.status",
    "the status the app sends is the status on the wire, with an HTTP/1.1 status line",
    f"{WWW} Response Start; {RFC9112} §4",
    MUST,
)
def status(ctx: CheckContext) -> None:
    conn = ctx.connection()
    for code in (201, 418, 599):
        token = ctx.token()
        conn.send(ctx.request_bytes([plans.drain(), *plans.respond(status=code)], token))
        response = conn.read_final()[-1]
        expect(
            response.status == code and response.status_line.startswith(b"HTTP/1.1 "),
            f"app sent {code}, status line is {response.status_line!r}",
        )


@check(
    "http.response.header_order",
    "response headers keep their order; repeated names are not merged",
    f"{WWW} Response Start",
    MUST,
)
def header_order(ctx: CheckContext) -> None:
    headers = [
        (b"x-order", b"1"),
        (b"content-type", b"text/plain"),
        (b"x-order", b"2"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    response = ctx.http([plans.drain(), *plans.respond(headers=headers)]).response
    expect(response.header_values("x-order") == [b"1", b"2"], f"{response.headers!r}")
    cookies = response.header_values("set-cookie")
    expect(cookies == [b"a=1", b"b=2"], f"set-cookie values {cookies!r}")


@check(
    "http.response.body_concatenated",
    "several body messages are concatenated; an app Content-Length is kept",
    f"{WWW} Response Body",
    MUST,
)
def body_concatenated(ctx: CheckContext) -> str:
    plan = [
        plans.drain(),
        plans.start(headers=[(b"content-length", b"11")]),
        plans.body(b"hello", more=True),
        plans.body(b" ", more=True),
        plans.body(b"world"),
    ]
    response = ctx.http(plan).response
    expect(response.body == b"hello world", f"body {response.body!r}")
    expect(response.framing == "content-length", f"framing is {response.framing}")
    return ""


@check(
    "http.response.chunked_framing",
    "a streamed HTTP/1.1 response without Content-Length has valid chunked (or close) framing",
    f"{WWW} Response Body; {RFC9112} §7.1",
    MUST,
)
def chunked_framing(ctx: CheckContext) -> str:
    plan = [plans.drain(), plans.start(), plans.body(b"abc", more=True), plans.body(b"def")]
    response = ctx.http(plan).response
    expect(response.body == b"abcdef", f"body {response.body!r} ({response.framing})")
    return f"framing: {response.framing}, chunks {response.chunks!r}"


@check(
    "http.response.no_chunked_for_http10",
    "a streamed response to an HTTP/1.0 request is not chunked",
    f"{RFC9112} §6.1 (Transfer-Encoding needs an HTTP/1.1 request)",
    MUST,
)
def no_chunked_http10(ctx: CheckContext) -> str:
    plan = [plans.drain(), plans.start(), plans.body(b"abc", more=True), plans.body(b"def")]
    response = ctx.http(plan, version="HTTP/1.0").response
    encodings = response.header_values("transfer-encoding")
    expect(not encodings, f"{response.status_line!r} with transfer-encoding {encodings!r}")
    expect(response.body == b"abcdef", f"body {response.body!r}")
    return f"{response.status_line.decode()!r}, framing: {response.framing}"


@check(
    "http.response.app_transfer_encoding_ignored",
    "a Transfer-Encoding header from the app is ignored (message framing stays valid)",
    f"{WWW} Response Start",
    MUST,
)
def app_te_ignored(ctx: CheckContext) -> str:
    headers = [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")]
    conn = ctx.connection()
    token, follow = ctx.token(), ctx.token()
    conn.send(
        ctx.request_bytes([plans.drain(), *plans.respond(b"hello", headers=headers)], token)
        + ctx.request_bytes([plans.drain(), *plans.respond(b"second")], follow)
    )
    ctx.exchanges.append(_pseudo_exchange(token, conn))
    response = conn.read_final()[-1]
    both = response.header("content-length") is not None and response.header("transfer-encoding")
    expect(not both, f"sent both Content-Length and Transfer-Encoding: {response.headers!r}")
    expect(response.body == b"hello", f"body {response.body!r}")
    second = conn.read_final()[-1]
    expect(second.body == b"second", f"next response {second.status_line!r} {second.body!r}")
    return f"framing: {response.framing}"


def _pseudo_exchange(token: str, conn: Connection) -> Exchange:
    # Pipelined requests are sent by hand; this makes them show up as evidence.
    return Exchange(token, b"(pipelined requests)", conn=conn)


@check(
    "http.response.flushed_before_send_returns",
    "a body part reaches the client once send() returns, before the app sends more",
    f"{WWW} Response Body",
    MUST,
)
def flushed(ctx: CheckContext) -> str:
    # The app holds the second part until the client, having seen the first, creates a
    # file: a server that buffers the first part deadlocks until the app gives up (5 s).
    release = ctx.workdir / f"release-{ctx.token()}"
    plan = [
        plans.drain(),
        plans.start(),
        plans.body(b"first-part", more=True),
        plans.wait_file(str(release), 5.0),
        plans.body(b"second-part"),
    ]
    conn = ctx.connection()
    conn.send(ctx.request_bytes(plan, ctx.token()))
    began = time.monotonic()
    got = conn.read_until(b"first-part", 4.0)
    waited = time.monotonic() - began
    release.touch()
    expect(got, f"first part not received while the app waited (got {conn.received[-200:]!r})")
    expect(conn.read_until(b"second-part", 5.0), "second part never arrived")
    return f"first part after {waited:.2f} s"


@check(
    "http.response.pipelining",
    "pipelined requests are all answered, in order",
    f"{RFC9112} §9.3.2",
    MUST,
)
def pipelining(ctx: CheckContext) -> None:
    conn = ctx.connection()
    names = [b"one", b"two", b"three"]
    payload = b"".join(
        ctx.request_bytes([plans.drain(), *plans.respond(name)], ctx.token()) for name in names
    )
    conn.send(payload)
    bodies = [conn.read_final()[-1].body for _ in names]
    expect(bodies == names, f"bodies in order {bodies!r}")


@check(
    "http.response.keep_alive",
    "an HTTP/1.1 connection stays open for the next request",
    f"{RFC9112} §9.3",
    SHOULD,
)
def keep_alive(ctx: CheckContext) -> None:
    conn = ctx.connection()
    for name in (b"one", b"two"):
        conn.send(ctx.request_bytes([plans.drain(), *plans.respond(name)], ctx.token()))
        response = conn.read_final()[-1]
        expect(response.body == name, f"got {response.status_line!r} {response.body!r}")
        time.sleep(0.2)


@check(
    "http.response.head_no_body",
    "a HEAD response carries no body even when the app sends one",
    f"{RFC9110} §9.3.2; checklist §2.1 (de facto: uvicorn, hypercorn)",
    MUST,
)
def head_no_body(ctx: CheckContext) -> None:
    follow_up_is_clean(ctx, [plans.drain(), *plans.respond(b"body of a GET")], "HEAD")


@check(
    "http.response.head_content_length",
    "a HEAD response keeps the Content-Length the app set",
    f"{RFC9110} §9.3.2 (SHOULD send the GET headers); uvicorn",
    DE_FACTO,
)
def head_length(ctx: CheckContext) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
    plan = [plans.drain(), *plans.respond(b"body of a GET", headers=headers)]
    response = ctx.http(plan, method="HEAD").response
    expect(response.header("content-length") == b"13", f"headers {response.headers!r}")


@check(
    "http.response.no_body_204",
    "a 204 response carries no body even when the app sends one",
    f"{RFC9110} §15.3.5; checklist §2.1 (de facto)",
    MUST,
)
def no_body_204(ctx: CheckContext) -> None:
    follow_up_is_clean(ctx, [plans.drain(), *plans.respond(b"not allowed", status=204)])


@check(
    "http.response.no_body_304",
    "a 304 response carries no body even when the app sends one",
    f"{RFC9110} §15.4.5; checklist §2.1 (de facto)",
    MUST,
)
def no_body_304(ctx: CheckContext) -> None:
    follow_up_is_clean(ctx, [plans.drain(), *plans.respond(b"not allowed", status=304)])


@check(
    "http.response.expect_100_on_receive",
    "Expect: 100-continue is answered with 100 once the app calls receive()",
    "uvicorn test_100_continue_sent_when_body_consumed (checklist §2.1)",
    DE_FACTO,
)
def expect_100_sent(ctx: CheckContext) -> None:
    token = ctx.token()
    conn = ctx.connection()
    conn.send(
        ctx.request_bytes(
            [plans.drain(), *plans.respond()],
            token,
            "POST",
            headers=[("Expect", "100-continue"), ("Content-Length", "5")],
        )
    )
    interim = conn.read_response(timeout=3.0)
    expect(interim.status == 100, f"first response is {interim.status_line!r}, not 100")
    conn.send(b"hello")
    final = conn.read_final()[-1]
    expect(final.status == 200, f"final {final.status_line!r}")


@check(
    "http.response.expect_100_not_without_receive",
    "no 100 Continue when the app answers without reading the body",
    "uvicorn test_100_continue_not_sent_when_body_not_consumed (checklist §2.1)",
    DE_FACTO,
)
def expect_100_not_sent(ctx: CheckContext) -> None:
    token = ctx.token()
    conn = ctx.connection()
    conn.send(
        ctx.request_bytes(
            [*plans.respond(b"no thanks", status=417)],
            token,
            "POST",
            headers=[("Expect", "100-continue"), ("Content-Length", "5")],
        )
    )
    first = conn.read_response(timeout=3.0)
    expect(first.status == 417, f"first response is {first.status_line!r}")
