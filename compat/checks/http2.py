"""HTTP over HTTP/2 ([WWW] "HTTP", "HTTP Connection Scope" and the events; RFC 9113 where
the rule is HTTP/2's own).

Every check talks h2c (prior knowledge, RFC 9113 §3.3) to a plain listener, except the
``http2.tls.*`` ones, which get h2 by ALPN over TLS. A server that answers the preface with
anything but HTTP/2 gets "unsupported" for all of them: HTTP/2 is optional in ASGI.
"""

from __future__ import annotations

import time
from typing import Any

from compat import plans
from compat.checks.base import (
    ASGI,
    H2,
    H2C,
    LIFECYCLE,
    RFC9113,
    WWW,
    Fail,
    Strength,
    Unsupported,
    check,
    expect,
)
from compat.checks.http_body import check_body_events
from compat.context import CheckContext, H2Exchange
from compat.harness.h2wire import H2Client, NotHTTP2

MUST, SHOULD, DE_FACTO = Strength.MUST, Strength.SHOULD, Strength.DE_FACTO

# As in http_scope: escapes and UTF-8 in the path, an encoded query, repeated header names,
# an exact header value; plus an :authority no socket address could have produced, and
# cookie crumbs (RFC 9113 §8.2.3) with another field between them.
TARGET = "/compat/caf%C3%A9/a%20b?x=%20y&z=caf%C3%A9&e="
AUTHORITY = "compat.example:8443"
HEADERS: list[tuple[str, str | bytes]] = [
    ("x-compat-mixed", b'Value; q="1", a,b'),
    ("x-compat-dup", "one"),
    ("cookie", "a=1"),
    ("x-other", "between"),
    ("cookie", "b=2"),
    ("x-compat-dup", "two"),
]


def rich_scope(ctx: CheckContext) -> tuple[dict[str, Any], int]:
    """The scope of the rich request above, and the client's local port."""

    def make() -> tuple[dict[str, Any], int]:
        exchange = ctx.http2(
            [plans.h2_drain(), *plans.respond()],
            target=TARGET,
            headers=HEADERS,
            authority=AUTHORITY,
        )
        local_port = exchange.client.sock.getsockname()[1]
        scope = ctx.trace(exchange.token).scope
        if not isinstance(scope, dict):
            raise Fail(f"no scope recorded (stream: {exchange.response!r})")
        return scope, local_port

    return ctx.cached("h2-rich-scope", make)


def headers_of(scope: dict[str, Any]) -> list[Any]:
    headers = scope.get("headers")
    expect(headers is not None, "scope has no 'headers'")
    return [tuple(h) for h in headers]


def values_of(headers: list[Any], name: bytes) -> list[bytes]:
    return [v for k, v in headers if isinstance(k, bytes) and k.lower() == name]


@check(
    "http2.scope.http_version",
    "http_version is '2' for a request over HTTP/2",
    f"{WWW} HTTP Connection Scope",
    MUST,
    protocol=H2C,
)
def http_version(ctx: CheckContext) -> str:
    scope = rich_scope(ctx)[0]
    expect(scope.get("type") == "http", f"type is {scope.get('type')!r}")
    expect(scope.get("http_version") == "2", f"http_version is {scope.get('http_version')!r}")
    return f"asgi={scope.get('asgi')!r}"


@check(
    "http2.scope.authority_is_host",
    ":authority is the first header, named host (and the only host)",
    f"{WWW} HTTP Connection Scope (pseudo headers must be removed; :authority must be added "
    "to the start as host)",
    MUST,
    protocol=H2C,
)
def authority_is_host(ctx: CheckContext) -> None:
    headers = headers_of(rich_scope(ctx)[0])
    expect(headers, "no headers")
    hosts = [(i, v) for i, (k, v) in enumerate(headers) if k == b"host"]
    expect(
        headers[0] == (b"host", AUTHORITY.encode()),
        f"first header is {headers[0]!r}; host (position, value): {hosts!r}; "
        f":authority was {AUTHORITY!r}",
    )
    expect(len(hosts) == 1, f"host (position, value): {hosts!r}")


@check(
    "http2.scope.no_pseudo_headers",
    "no pseudo-header (:method, :path, ...) is in headers",
    f"{WWW} HTTP Connection Scope (pseudo headers must be removed)",
    MUST,
    protocol=H2C,
)
def no_pseudo_headers(ctx: CheckContext) -> None:
    pseudo = [h for h in headers_of(rich_scope(ctx)[0]) if bytes(h[0]).startswith(b":")]
    expect(not pseudo, f"pseudo-headers in scope: {pseudo!r}")


@check(
    "http2.scope.headers",
    "headers are [bytes, bytes] pairs with the values sent; repeated names stay separate, in order",
    f"{WWW} HTTP Connection Scope",
    MUST,
    protocol=H2C,
)
def headers(ctx: CheckContext) -> None:
    found = headers_of(rich_scope(ctx)[0])
    for pair in found:
        expect(
            len(pair) == 2 and isinstance(pair[0], bytes) and isinstance(pair[1], bytes),
            f"header {pair!r} is not (bytes, bytes)",
        )
    mixed = values_of(found, b"x-compat-mixed")
    expect(mixed == [HEADERS[0][1]], f"x-compat-mixed is {mixed!r}, sent {HEADERS[0][1]!r}")
    dups = values_of(found, b"x-compat-dup")
    expect(dups == [b"one", b"two"], f"x-compat-dup values are {dups!r}")


@check(
    "http2.scope.header_obs_text",
    "a header value with bytes 0x80-0xFF reaches the app unchanged",
    f"RFC 9110 §5.5 (obs-text: treat as opaque data); {RFC9113} §8.2.1; "
    f"{WWW} HTTP Connection Scope",
    SHOULD,
    protocol=H2C,
)
def header_obs_text(ctx: CheckContext) -> None:
    value = b"caf\xe9 \xff"
    plan = [plans.h2_drain(), *plans.respond()]
    exchange = ctx.http2(plan, headers=[("x-compat-8bit", value)], wait=False)
    try:
        exchange.client.wait(exchange.stream_id)
    except ConnectionError:
        goaway = exchange.client.goaway
        code = goaway.error_code if goaway is not None else None
        raise Fail(f"the server closed the connection (GOAWAY {code!r})") from None
    expect(exchange.response.status == 200, f"stream {exchange.response!r}")
    found = values_of(headers_of(ctx.trace(exchange.token).scope or {}), b"x-compat-8bit")
    expect(found == [value], f"x-compat-8bit is {found!r}, sent {value!r}")


@check(
    "http2.scope.cookie_crumbs",
    "cookie crumbs sent as separate fields all reach the app, in order: joined with '; ' "
    "or as separate cookie entries",
    f"{WWW} HTTP (Cookie in HTTP/2); {RFC9113} §8.2.3",
    MUST,
    protocol=H2C,
)
def cookie_crumbs(ctx: CheckContext) -> str:
    cookies = values_of(headers_of(rich_scope(ctx)[0]), b"cookie")
    expect(
        cookies in ([b"a=1; b=2"], [b"a=1", b"b=2"]),
        f"cookie values {cookies!r} for crumbs 'a=1' and 'b=2'",
    )
    return f"cookie values {cookies!r}"


@check(
    "http2.scope.cookie_joined",
    "cookie crumbs are joined into one cookie header with '; '",
    f"{RFC9113} §8.2.3 (must be joined before reaching a generic HTTP server application; "
    f"{WWW} HTTP lets apps see either form)",
    SHOULD,
    protocol=H2C,
)
def cookie_joined(ctx: CheckContext) -> None:
    cookies = values_of(headers_of(rich_scope(ctx)[0]), b"cookie")
    expect(cookies == [b"a=1; b=2"], f"cookie values {cookies!r}")


@check(
    "http2.scope.path_and_query",
    "path is decoded, raw_path (if present) is as sent, query_string still encoded",
    f"{WWW} HTTP Connection Scope",
    MUST,
    protocol=H2C,
)
def path_and_query(ctx: CheckContext) -> None:
    scope = rich_scope(ctx)[0]
    expect(scope.get("path") == "/compat/café/a b", f"path is {scope.get('path')!r}")
    raw = scope.get("raw_path")
    expect(raw in (None, b"/compat/caf%C3%A9/a%20b"), f"raw_path is {raw!r}")
    query = scope.get("query_string")
    expect(query == b"x=%20y&z=caf%C3%A9&e=", f"query_string is {query!r}")


@check(
    "http2.scope.scheme",
    "scheme, if present, is 'http' over h2c",
    f"{WWW} HTTP Connection Scope",
    MUST,
    protocol=H2C,
)
def scheme(ctx: CheckContext) -> str:
    scope = rich_scope(ctx)[0]
    if "scheme" not in scope:
        return "absent (means 'http')"
    expect(scope["scheme"] == "http", f"scheme is {scope['scheme']!r}")
    return ""


@check(
    "http2.scope.client_server",
    "client and server (if present) are [host, int port] of the connection",
    f"{WWW} HTTP Connection Scope",
    MUST,
    protocol=H2C,
)
def client_server(ctx: CheckContext) -> None:
    scope, local_port = rich_scope(ctx)
    client, server = scope.get("client"), scope.get("server")
    if client is not None:
        expect(list(client) == ["127.0.0.1", local_port], f"client {client!r}, was {local_port}")
    if server is not None:
        port = ctx.endpoint.port
        expect(list(server) == ["127.0.0.1", port], f"server {server!r}, listening on {port}")


@check(
    "http2.streams.concurrent",
    "streams on one connection are served at once, each with its own scope and app call, "
    "each response on its own stream",
    f"{WWW} HTTP (different scopes for requests on one HTTP/2 connection, responses "
    "multiplexed back to their streams)",
    SHOULD,
    protocol=H2C,
    timeout=15.0,
)
def concurrent(ctx: CheckContext) -> str:
    # Every app holds its response until the client has seen all of them start: a server
    # that serves the streams one at a time stalls until the apps give up (5 s).
    client = ctx.h2()
    release = ctx.workdir / f"release-{ctx.token()}"
    exchanges: list[H2Exchange] = []
    for i in range(3):
        plan = [plans.h2_drain(), plans.wait_file(str(release), 5.0), *plans.respond(b"n%d" % i)]
        exchanges.append(ctx.http2(plan, target=f"/s{i}", client=client, wait=False))
    began = time.monotonic()
    started = [
        ctx.records.wait(e.token, lambda t: t.scope is not None, 4.0).scope is not None
        for e in exchanges
    ]
    waited = time.monotonic() - began
    release.touch()
    for e in exchanges:
        client.wait(e.stream_id, 8.0)
    expect(all(started), f"apps started {started} before any response (streams serialised?)")
    for i, e in enumerate(exchanges):
        expect(e.response.body == b"n%d" % i, f"stream {e.stream_id} got {e.response.body!r}")
        scope = ctx.trace(e.token).scope or {}
        expect(scope.get("path") == f"/s{i}", f"stream {e.stream_id} scope path {scope!r}")
    return f"all three apps running after {waited:.2f} s"


@check(
    "http2.body.empty",
    "a request without DATA gets one http.request with body b'' and more_body False",
    f"{WWW} Request - receive event",
    MUST,
    protocol=H2C,
)
def body_empty(ctx: CheckContext) -> str:
    exchange = ctx.http2([plans.h2_drain(), *plans.respond()])
    events = ctx.trace(exchange.token).events
    expect(len(events) == 1, f"events: {events!r}")
    return check_body_events(events, b"")


@check(
    "http2.body.streamed",
    "a body sent in DATA frames (no content-length) arrives whole; only the last event has "
    "more_body False",
    f"{WWW} Request - receive event",
    MUST,
    protocol=H2C,
)
def body_streamed(ctx: CheckContext) -> str:
    client = ctx.h2()
    token = ctx.token()
    fields = ctx.h2_request_headers(token, [plans.h2_drain(), *plans.respond()], "POST")
    stream_id = client.request(fields, end_stream=False)
    ctx.exchanges.append(H2Exchange(token, fields, client, stream_id))
    for piece in (b"hello ", b"over ", b"h2"):
        time.sleep(0.05)
        client.send_data(stream_id, piece)
    client.end_stream(stream_id)
    response = client.wait(stream_id)
    expect(response.status == 200, f"status {response.status}")
    return check_body_events(ctx.trace(token).events, b"hello over h2")


@check(
    "http2.body.large",
    "a 1 MiB body arrives complete and in order (as the stream's flow control allows)",
    f"{WWW} Request - receive event; {RFC9113} §5.2",
    MUST,
    protocol=H2C,
    timeout=25.0,
)
def body_large(ctx: CheckContext) -> str:
    data = bytes(range(256)) * 4096
    exchange = ctx.http2(
        [plans.drain(10.0), *plans.respond()],
        method="POST",
        headers=[("content-length", str(len(data)))],
        body=data,
        timeout=15.0,
    )
    return check_body_events(ctx.trace(exchange.token, timeout=10.0).events, data)


@check(
    "http2.response.status_and_headers",
    "the app's status is :status; headers keep their order; repeated names stay separate",
    f"{WWW} Response Start",
    MUST,
    protocol=H2C,
)
def status_and_headers(ctx: CheckContext) -> None:
    headers = [
        (b"x-order", b"1"),
        (b"content-type", b"text/plain"),
        (b"x-order", b"2"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    response = ctx.http2([plans.h2_drain(), *plans.respond(b"teapot", 418, headers)]).response
    expect(response.status == 418, f":status {response.status}")
    expect(response.header_values("x-order") == [b"1", b"2"], f"{response.headers!r}")
    cookies = response.header_values("set-cookie")
    expect(cookies == [b"a=1", b"b=2"], f"set-cookie values {cookies!r}")
    expect(response.body == b"teapot", f"body {response.body!r}")


@check(
    "http2.response.flushed_before_send_returns",
    "a body part reaches the client once send() returns, before the app sends more",
    f"{WWW} Response Body",
    MUST,
    protocol=H2C,
)
def flushed(ctx: CheckContext) -> str:
    release = ctx.workdir / f"release-{ctx.token()}"
    plan = [
        plans.h2_drain(),
        plans.start(),
        plans.body(b"first-part", more=True),
        plans.wait_file(str(release), 5.0),
        plans.body(b"second-part"),
    ]
    exchange = ctx.http2(plan, wait=False)
    client, stream = exchange.client, exchange.response
    began = time.monotonic()
    try:
        client.wait_until(lambda: b"first-part" in stream.body, 4.0, "first part")
    except TimeoutError:
        raise Fail(f"first part not received while the app waited (got {stream!r})") from None
    finally:
        release.touch()
    waited = time.monotonic() - began
    client.wait(exchange.stream_id)
    expect(stream.ended and stream.body == b"first-partsecond-part", f"stream {stream!r}")
    return f"first part after {waited:.2f} s"


@check(
    "http2.response.no_connection_headers",
    "connection-specific fields from the app (transfer-encoding, connection, keep-alive) are "
    "not sent over HTTP/2; the response still arrives",
    f"{WWW} Response Start (Transfer-Encoding: the server must ignore it); {RFC9113} §8.2.2",
    MUST,
    protocol=H2C,
)
def no_connection_headers(ctx: CheckContext) -> None:
    headers = [
        (b"content-type", b"text/plain"),
        (b"transfer-encoding", b"chunked"),
        (b"connection", b"keep-alive"),
        (b"keep-alive", b"timeout=5"),
    ]
    response = ctx.http2([plans.h2_drain(), *plans.respond(b"hello", headers=headers)]).response
    expect(response.status == 200 and response.ended, f"stream {response!r}")
    names = {k.lower() for k, _ in response.headers}
    bad = names & {b"transfer-encoding", b"connection", b"keep-alive"}
    expect(not bad, f"connection-specific fields sent: {sorted(bad)}")
    expect(response.body == b"hello", f"body {response.body!r}")


@check(
    "http2.disconnect.rst_stream",
    "RST_STREAM gives that stream's app http.disconnect; another stream on the connection "
    "is not disturbed and completes",
    f"{WWW} Disconnect - receive event; {RFC9113} §6.4 (RST_STREAM ends one stream)",
    MUST,
    protocol=H2C,
    timeout=20.0,
)
def rst_stream(ctx: CheckContext) -> str:
    client = ctx.h2()
    release = ctx.workdir / f"release-{ctx.token()}"
    doomed_plan = [plans.h2_drain(), plans.mark("waiting"), plans.until("http.disconnect", 8.0)]
    other_plan = [
        plans.h2_drain(),
        plans.mark("waiting"),
        plans.wait_file(str(release), 8.0),
        *plans.respond(b"other stream done"),
    ]
    doomed = ctx.http2(doomed_plan, method="POST", body=b"x", client=client, wait=False)
    other = ctx.http2(other_plan, method="POST", body=b"y", client=client, wait=False)
    for e in (doomed, other):
        trace = ctx.records.wait(e.token, lambda t: t.mark("waiting") is not None, 5.0)
        expect(trace.mark("waiting") is not None, f"app of stream {e.stream_id} never started")
    client.reset(doomed.stream_id)
    trace = ctx.trace(doomed.token, timeout=6.0)
    kinds = [e.get("type") for e in trace.events if isinstance(e, dict)]
    expect("http.disconnect" in kinds, f"events after RST_STREAM: {kinds}")
    release.touch()
    response = client.wait(other.stream_id, 6.0)
    expect(
        response.ended and response.body == b"other stream done",
        f"the other stream: {response!r}",
    )
    others = [e.get("type") for e in ctx.trace(other.token).events if isinstance(e, dict)]
    expect("http.disconnect" not in others, f"the other stream's app got {others}")
    return f"disconnected stream's events: {kinds}"


@check(
    "http2.errors.exception_before_start_500",
    "an app raising before http.response.start gets a 500 on its stream; the connection "
    "serves the next stream",
    "checklist §2.1 (uvicorn, hypercorn, daphne); " + f"{RFC9113} §5.4.2 (stream errors)",
    DE_FACTO,
    protocol=H2C,
)
def exception_500(ctx: CheckContext) -> None:
    client = ctx.h2()
    response = ctx.http2([plans.h2_drain(), plans.fail()], client=client).response
    expect(response.status == 500, f"stream {response!r}")
    after = ctx.http2([plans.h2_drain(), *plans.respond(b"next")], client=client).response
    expect(after.body == b"next", f"next stream on the connection: {after!r}")


def cut_short(ctx: CheckContext, plan: list[list[Any]]) -> str:
    """The stream of an app that stops mid-response must not end as if complete: a reset
    stream (or, more bluntly, a closed connection) tells the client the body is cut."""
    exchange = ctx.http2(plan, wait=False, timeout=8.0)
    try:
        response = exchange.client.wait(exchange.stream_id, 8.0)
    except ConnectionError:
        expect(not exchange.response.ended, f"stream {exchange.response!r}")
        return "the whole connection was closed"
    expect(not response.ended, f"the cut-short response ended cleanly (END_STREAM): {response!r}")
    return f"RST_STREAM code {response.reset}"


@check(
    "http2.errors.exception_after_start_resets",
    "an app raising mid-response: its stream is reset, not ended as complete",
    f"{ASGI} Error Handling (terminate the instance and its connection); {RFC9113} §5.4.2, §8.1",
    MUST,
    protocol=H2C,
)
def exception_after_start(ctx: CheckContext) -> str:
    plan = [plans.h2_drain(), plans.start(), plans.body(b"partial", more=True), plans.fail()]
    return cut_short(ctx, plan)


@check(
    "http2.errors.return_mid_body_resets",
    "an app returning before the final body: its stream is reset, not ended as complete",
    "checklist §2.1 (uvicorn); " + f"{RFC9113} §8.1",
    DE_FACTO,
    protocol=H2C,
)
def return_mid_body(ctx: CheckContext) -> str:
    plan = [plans.h2_drain(), plans.start(), plans.body(b"partial", more=True)]
    return cut_short(ctx, plan)


@check(
    "http2.tls.scope",
    "over TLS with ALPN h2: http_version '2' and scheme 'https'",
    f"{WWW} HTTP Connection Scope; {RFC9113} §3.2",
    MUST,
    protocol=H2,
)
def tls_scope(ctx: CheckContext) -> None:
    scope = ctx.h2_baseline(tls=True)
    expect(scope.get("http_version") == "2", f"http_version is {scope.get('http_version')!r}")
    expect(scope.get("scheme") == "https", f"scheme is {scope.get('scheme')!r}")


def graceful_stop(ctx: CheckContext) -> dict[str, Any]:
    """A server of its own, stopped gracefully while a stream is in flight (the app holds
    its response until the client has seen what the stop did): the GOAWAY seen (code,
    last stream), the stream, how the server exited, and the frames as evidence."""

    def run() -> dict[str, Any]:
        server = ctx.launcher.start(http2=True)
        try:
            client = H2Client(server.endpoint, 5.0)
            ctx.h2_clients.append(client)
            try:
                client.open()
            except NotHTTP2 as exc:
                raise Unsupported(f"no HTTP/2 by prior knowledge (h2c): {exc}") from None
            release = ctx.workdir / f"release-{ctx.token()}"
            token = ctx.token()
            plan = [
                plans.h2_drain(),
                plans.mark("started"),
                plans.wait_file(str(release), 8.0),
                *plans.respond(b"finished"),
            ]
            authority = server.endpoint.authority
            fields = ctx.h2_request_headers(token, plan, authority=authority)
            stream_id = client.request(fields)
            started = server.records.wait(token, lambda t: t.mark("started") is not None, 5.0)
            expect(started.mark("started") is not None, "the app never started")
            server.process.send_signal(server.stop_signal)
            # A second for a GOAWAY at the start of the shutdown, then the app may finish
            # (well within hypercorn's 3 s --graceful-timeout, for instance).
            try:
                client.wait_until(lambda: client.last_goaway is not None, 1.0, "GOAWAY")
            except (TimeoutError, ConnectionError):
                pass
            early = client.last_goaway
            release.touch()
            try:
                client.wait(stream_id, 8.0)
                # Then until the server closes the connection (or a while): a GOAWAY just
                # before the close counts too.
                client.wait_until(lambda: client.closed, 8.0, "the close")
            except (TimeoutError, ConnectionError):
                pass
            code = server.process.wait(5.0)
            return {
                "goaway": client.last_goaway,
                "early": early is not None,
                "stream": client.streams[stream_id],
                "exited": "still running after the stop" if code is None else f"exit {code}",
                "frames": client.text(),
            }
        finally:
            server.stop(grace=3.0)

    return ctx.scenario("h2-graceful-stop", run)


@check(
    "http2.shutdown.goaway",
    "a graceful stop sends GOAWAY with NO_ERROR on an open HTTP/2 connection before closing it",
    f"{RFC9113} §6.8 (a graceful shutdown should start with GOAWAY NO_ERROR; endpoints "
    "should always send GOAWAY before closing a connection)",
    SHOULD,
    target=LIFECYCLE,
    protocol=H2C,
    timeout=40.0,
)
def shutdown_goaway(ctx: CheckContext) -> str:
    outcome = graceful_stop(ctx)
    goaway = outcome["goaway"]
    if goaway is None or goaway[0] != 0:
        seen = "no GOAWAY" if goaway is None else f"GOAWAY error code {goaway[0]}"
        raise Fail(f"{seen} ({outcome['exited']})", outcome["frames"][-700:])
    when = "while the stream was in flight" if outcome["early"] else "after the stream ended"
    return f"GOAWAY {when}, last stream {goaway[1]}"


@check(
    "http2.shutdown.streams_finish",
    "a stream in flight at a graceful stop still gets its whole response",
    f"{RFC9113} §6.8 (streams up to the last stream id may complete); uvicorn lets "
    "requests in flight finish",
    DE_FACTO,
    target=LIFECYCLE,
    protocol=H2C,
    timeout=40.0,
)
def shutdown_streams_finish(ctx: CheckContext) -> str:
    outcome = graceful_stop(ctx)
    stream = outcome["stream"]
    if not (stream.ended and stream.body == b"finished"):
        detail = f"the stream in flight: {stream!r} ({outcome['exited']})"
        raise Fail(detail, outcome["frames"][-700:])
    return outcome["exited"]
