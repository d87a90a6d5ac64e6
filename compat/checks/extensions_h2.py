"""The official extensions over HTTP/2 ([EXT] extensions.rst, [TLS] tls.rst; checklist §3).

As on HTTP/1.1, each behaviour check first looks at what the server advertises, here in the
scope of a request over h2c, and reports "not advertised" when the extension is absent.
"""

from __future__ import annotations

from typing import Any

from compat import plans
from compat.checks.base import ASGI, EXT, H2C, RFC9113, TLS, NotAdvertised, Strength, check, expect
from compat.checks.extensions import (
    EVENTS,
    FILE_DATA,
    TRAILERS,
    data_file,
    has_trailer,
    offered,
    trailers_plan,
)
from compat.context import CheckContext
from compat.harness.h2wire import H2Response
from compat.harness.records import Trace

MUST, SHOULD = Strength.MUST, Strength.SHOULD


def advertised(ctx: CheckContext, name: str) -> None:
    extensions = ctx.extensions(ctx.h2_baseline())
    if name not in extensions:
        raise NotAdvertised(f"{name} not in extensions {sorted(extensions)} over HTTP/2")


def h2_trailers(ctx: CheckContext, te: bool) -> tuple[Trace, H2Response]:
    """A trailers request over h2c, with or without ``te: trailers``."""

    def make() -> tuple[Trace, H2Response]:
        exchange = ctx.http2(
            trailers_plan(plans.h2_drain()), headers=[("te", "trailers")] if te else []
        )
        return ctx.trace(exchange.token), exchange.response

    return ctx.cached(f"h2-trailers:{te}", make)


@check(
    "extensions.h2.values_are_dicts",
    "over HTTP/2, every advertised extension's value is a dict",
    f"{ASGI} Extensions",
    MUST,
    protocol=H2C,
)
def values_are_dicts(ctx: CheckContext) -> str:
    extensions = ctx.extensions(ctx.h2_baseline())
    bad = {k: v for k, v in extensions.items() if not isinstance(v, dict)}
    expect(not bad, f"non-dict values {bad!r}")
    return f"advertised: {sorted(extensions) or 'none'}"


@check(
    "extensions.h2.tls_only_on_tls",
    "tls is not advertised over h2c (plaintext)",
    f"{TLS} When to use this extension",
    MUST,
    protocol=H2C,
)
def tls_only_on_tls(ctx: CheckContext) -> None:
    expect("tls" not in ctx.extensions(ctx.h2_baseline()), "tls advertised on plaintext")


@check(
    "extensions.h2.trailers",
    "with http.response.trailers, trailers reach an HTTP/2 client that sent te: trailers, "
    "in a HEADERS frame ending the stream",
    f"{EXT} HTTP Trailers; {RFC9113} §8.1",
    MUST,
    protocol=H2C,
)
def trailers(ctx: CheckContext) -> None:
    trace, response = h2_trailers(ctx, te=True)
    if not offered(trace):
        raise NotAdvertised(f"{TRAILERS} not offered to an HTTP/2 request with te: trailers")
    expect(has_trailer(response.trailers), f"trailers {response.trailers!r} ({response!r})")
    expect(response.ended and response.body == b"data", f"stream {response!r}")


@check(
    "extensions.h2.trailers_without_te",
    "trailers are not sent to an HTTP/2 client that did not send te: trailers",
    f"{EXT} HTTP Trailers (sent only if the client has sent TE: trailers; no exception for HTTP/2)",
    MUST,
    protocol=H2C,
)
def trailers_without_te(ctx: CheckContext) -> str:
    trace, response = h2_trailers(ctx, te=False)
    if not offered(trace):
        if not offered(h2_trailers(ctx, te=True)[0]):
            raise NotAdvertised(f"{TRAILERS} not advertised over HTTP/2")
        return "the extension is only offered to requests with te: trailers"
    expect(not has_trailer(response.trailers), f"trailers sent: {response.trailers!r}")
    expect(response.ended and response.body == b"data", f"stream {response!r}")
    return "offered; the app's trailers were dropped"


@check(
    "extensions.h2.unadvertised_event_raises",
    "over HTTP/2, an extension event the server did not advertise raises from send()",
    f"{ASGI} Extensions; Error Handling",
    SHOULD,
    protocol=H2C,
)
def unadvertised_raises(ctx: CheckContext) -> str:
    extensions = ctx.extensions(ctx.h2_baseline())
    missing = [name for name in EVENTS if name not in extensions]
    if not missing:
        raise NotAdvertised("every extension with an event is advertised over HTTP/2")
    name = missing[0]
    event = {"type": EVENTS[name], "path": data_file(ctx), "links": [], "headers": []}
    plan = [plans.h2_drain(), plans.start(), plans.send(event), plans.body(b"ok")]
    exchange = ctx.http2(plan)
    outcome = ctx.trace(exchange.token).send_at(2)
    expect(outcome is not None and outcome["error"] is not None, f"{name} event accepted")
    return f"{name}: {outcome['error']['type']}"


@check(
    "extensions.h2.early_hint",
    "with http.response.early_hint over HTTP/2, a 103 HEADERS block with the Link fields "
    "precedes the response",
    f"{EXT} Early Hints",
    MUST,
    protocol=H2C,
)
def early_hint(ctx: CheckContext) -> None:
    advertised(ctx, "http.response.early_hint")
    link = b"</style.css>; rel=preload; as=style"
    plan = [
        plans.h2_drain(),
        plans.send({"type": "http.response.early_hint", "links": [link]}),
        *plans.respond(),
    ]
    response = ctx.http2(plan).response
    hints = [b for b in response.informational if (b":status", b"103") in b]
    expect(hints and (b"link", link) in hints[0], f"1xx blocks {response.informational!r}")
    expect(response.status == 200, f"final :status {response.status}")


@check(
    "extensions.h2.pathsend",
    "http.response.pathsend over HTTP/2 sends the file as the body",
    f"{EXT} Path Send",
    MUST,
    protocol=H2C,
)
def pathsend(ctx: CheckContext) -> None:
    advertised(ctx, "http.response.pathsend")
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(FILE_DATA))]
    plan = [
        plans.h2_drain(),
        plans.start(headers=headers),
        plans.send({"type": "http.response.pathsend", "path": data_file(ctx)}),
    ]
    response = ctx.http2(plan).response
    expect(response.body == FILE_DATA, f"body {response.body[:60]!r} ({len(response.body)} B)")


@check(
    "extensions.h2.zerocopysend",
    "http.response.zerocopysend over HTTP/2 sends the file as (part of) the body",
    f"{EXT} Zero Copy Send",
    MUST,
    protocol=H2C,
)
def zerocopysend(ctx: CheckContext) -> None:
    advertised(ctx, "http.response.zerocopysend")
    plan = [plans.h2_drain(), plans.start(), plans.zerocopy(data_file(ctx))]
    response = ctx.http2(plan).response
    expect(response.body == FILE_DATA, f"body {response.body[:60]!r}")


def push_plan(pushed_token: str) -> list[list[Any]]:
    # The pushed request carries its own token, so its app call is recorded too.
    push = {
        "type": "http.response.push",
        "path": "/pushed",
        "headers": [(b"x-compat-token", pushed_token.encode())],
    }
    return [plans.h2_drain(), plans.start(), plans.send(push), plans.body(b"pushed-from")]


@check(
    "extensions.h2.push",
    "with http.response.push over HTTP/2, a push is accepted and the response completes "
    "(the client has push turned off)",
    f"{EXT} HTTP/2 Server Push",
    MUST,
    protocol=H2C,
)
def push(ctx: CheckContext) -> None:
    advertised(ctx, "http.response.push")
    exchange = ctx.http2(push_plan(ctx.token()))
    outcome = ctx.trace(exchange.token).send_at(2)
    expect(outcome is not None and outcome["error"] is None, f"push outcome {outcome!r}")
    expect(exchange.response.body == b"pushed-from", f"stream {exchange.response!r}")


@check(
    "extensions.h2.push_promise",
    "a push to a client that allows it: a PUSH_PROMISE for the path with the request's "
    ":authority, answered by a new app call",
    f"{EXT} HTTP/2 Server Push (should push; :authority as the triggering request's)",
    SHOULD,
    protocol=H2C,
)
def push_promise(ctx: CheckContext) -> str:
    advertised(ctx, "http.response.push")
    client = ctx.h2(enable_push=True)
    pushed_token = ctx.token()
    exchange = ctx.http2(push_plan(pushed_token), client=client)
    parent = exchange.response
    expect(parent.promised, f"no PUSH_PROMISE ({parent!r})")
    promise = client.streams[parent.promised[0]]
    fields = dict(promise.promise)
    expect(fields.get(b":path") == b"/pushed", f"promised request {promise.promise!r}")
    authority = ctx.endpoint.authority.encode()
    expect(fields.get(b":authority") == authority, f"promised request {promise.promise!r}")
    pushed = client.wait(promise.stream_id)
    expect(pushed.status == 200 and pushed.ended, f"pushed stream {pushed!r}")
    # The pushed request carries no plan: the probe serves its plain page (no "end" record).
    scope = ctx.records.wait(pushed_token, lambda t: t.scope is not None, 5.0).scope
    expect(isinstance(scope, dict), "the pushed request reached no app call")
    expect(scope.get("path") == "/pushed", f"pushed scope path {scope.get('path')!r}")
    return f"pushed stream {promise.stream_id}"
