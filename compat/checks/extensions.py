"""The official extensions ([EXT] extensions.rst, [TLS] tls.rst; checklist §3).

Each behaviour check first looks at what the server advertises in ``scope["extensions"]``
of a plain request and reports "not advertised" when the extension is absent.
"""

from __future__ import annotations

from typing import Any

from compat import plans
from compat.checks.base import ASGI, EXT, TLS, NotAdvertised, Strength, check, expect
from compat.context import CheckContext
from compat.harness.records import Trace
from compat.harness.wire import Response

MUST, SHOULD, DE_FACTO = Strength.MUST, Strength.SHOULD, Strength.DE_FACTO
EVENTS = {
    "http.response.pathsend": "http.response.pathsend",
    "http.response.zerocopysend": "http.response.zerocopysend",
    "http.response.early_hint": "http.response.early_hint",
    "http.response.push": "http.response.push",
}
FILE_DATA = b"served from a file by the compat suite\n" * 50
TRAILERS = "http.response.trailers"


def advertised(ctx: CheckContext, name: str) -> None:
    if name not in ctx.extensions():
        raise NotAdvertised(f"{name} not in extensions {sorted(ctx.extensions())}")


def data_file(ctx: CheckContext) -> str:
    path = ctx.workdir / "compat-file.txt"
    path.write_bytes(FILE_DATA)
    return str(path)


@check(
    "extensions.values_are_dicts",
    "every advertised extension's value is a dict",
    f"{ASGI} Extensions",
    MUST,
)
def values_are_dicts(ctx: CheckContext) -> str:
    bad = {k: v for k, v in ctx.extensions().items() if not isinstance(v, dict)}
    expect(not bad, f"non-dict values {bad!r}")
    return f"advertised: {sorted(ctx.extensions()) or 'none'}"


@check(
    "extensions.tls_only_on_tls",
    "tls is not advertised on a plaintext connection",
    f"{TLS} TLS Extension",
    MUST,
)
def tls_only_on_tls(ctx: CheckContext) -> None:
    expect("tls" not in ctx.extensions(), "tls advertised on plaintext")


@check(
    "extensions.no_debug",
    "http.response.debug (for test clients only) is not advertised",
    f"{EXT} Debug",
    SHOULD,
)
def no_debug(ctx: CheckContext) -> None:
    expect("http.response.debug" not in ctx.extensions(), "http.response.debug advertised")


@check(
    "extensions.no_lifespan_state_key",
    "the withdrawn 'lifespan.state' extension key is not advertised",
    "checklist §2.3 (asgiref 627e29b replaced it by scope['state'])",
    DE_FACTO,
)
def no_lifespan_state(ctx: CheckContext) -> None:
    expect("lifespan.state" not in ctx.extensions(), "lifespan.state advertised")


@check(
    "extensions.unadvertised_event_raises",
    "an extension event the server did not advertise raises from send()",
    f"{ASGI} Extensions; Error Handling",
    SHOULD,
)
def unadvertised_raises(ctx: CheckContext) -> str:
    missing = [name for name in EVENTS if name not in ctx.extensions()]
    if not missing:
        raise NotAdvertised("every extension with an event is advertised")
    name = missing[0]
    event = {"type": EVENTS[name], "path": data_file(ctx), "links": [], "headers": []}
    plan = [plans.drain(), plans.start(), plans.send(event), plans.body(b"ok")]
    exchange = ctx.http(plan)
    outcome = ctx.trace(exchange.token).send_at(2)
    expect(outcome is not None and outcome["error"] is not None, f"{name} event accepted")
    return f"{name}: {outcome['error']['type']}"


@check(
    "extensions.pathsend",
    "http.response.pathsend sends the file as the body",
    f"{EXT} Path Send",
    MUST,
)
def pathsend(ctx: CheckContext) -> None:
    advertised(ctx, "http.response.pathsend")
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(FILE_DATA))]
    plan = [
        plans.drain(),
        plans.start(headers=headers),
        plans.send({"type": "http.response.pathsend", "path": data_file(ctx)}),
    ]
    response = ctx.http(plan).response
    expect(response.body == FILE_DATA, f"body {response.body[:60]!r} ({len(response.body)} B)")


@check(
    "extensions.zerocopysend",
    "http.response.zerocopysend sends the file as (part of) the body",
    f"{EXT} Zero Copy Send",
    MUST,
)
def zerocopysend(ctx: CheckContext) -> None:
    advertised(ctx, "http.response.zerocopysend")
    plan = [plans.drain(), plans.start(), plans.zerocopy(data_file(ctx))]
    response = ctx.http(plan).response
    expect(response.body == FILE_DATA, f"body {response.body[:60]!r}")


TRAILER = (b"x-checksum", b"abc")


def trailers_plan(drain: list[Any] | None = None) -> list[list[Any]]:
    """An app that sends trailers where its scope offers them, as a real one would."""
    headers = [(b"content-type", b"text/plain"), (b"trailer", TRAILER[0])]
    with_trailers = [
        plans.start(headers=headers, trailers=True),
        plans.body(b"data"),
        plans.send({"type": "http.response.trailers", "headers": [TRAILER]}),
    ]
    first = drain if drain is not None else plans.drain()
    return [first, plans.if_extension(TRAILERS, with_trailers, plans.respond(b"data"))]


def offered(trace: Trace) -> bool:
    """Whether the app found the trailers extension in its scope (see ``trailers_plan``)."""
    return trace.mark(f"{TRAILERS}:offered") is not None


def has_trailer(fields: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == TRAILER[0] and v == TRAILER[1] for k, v in fields)


def http11_trailers(ctx: CheckContext, te: bool) -> tuple[Trace, Response]:
    """A trailers request over HTTP/1.1, with or without ``TE: trailers``."""

    def make() -> tuple[Trace, Response]:
        exchange = ctx.http(trailers_plan(), headers=[("TE", "trailers")] if te else [])
        return ctx.trace(exchange.token), exchange.response

    return ctx.cached(f"h1-trailers:{te}", make)


@check(
    "extensions.trailers",
    "with http.response.trailers, trailers reach a client that sent TE: trailers",
    f"{EXT} HTTP Trailers",
    MUST,
)
def trailers(ctx: CheckContext) -> str:
    trace, response = http11_trailers(ctx, te=True)
    if not offered(trace):
        raise NotAdvertised(f"{TRAILERS} not offered to a request with TE: trailers")
    expect(has_trailer(response.trailers), f"trailers {response.trailers!r}")
    return f"framing: {response.framing}"


@check(
    "extensions.trailers_without_te",
    "trailers are not sent to a client that did not send TE: trailers",
    f"{EXT} HTTP Trailers (sent only if the client has sent TE: trailers)",
    MUST,
)
def trailers_without_te(ctx: CheckContext) -> str:
    trace, response = http11_trailers(ctx, te=False)
    if not offered(trace):
        if not offered(http11_trailers(ctx, te=True)[0]):
            raise NotAdvertised(f"{TRAILERS} not advertised on HTTP/1.1")
        return "the extension is only offered to requests with TE: trailers"
    expect(not has_trailer(response.trailers), f"trailers sent: {response.trailers!r}")
    expect(response.body == b"data", f"body {response.body!r}")
    return "offered; the app's trailers were dropped"


@check(
    "extensions.early_hint",
    "with http.response.early_hint, a 103 with the Link headers precedes the response",
    f"{EXT} Early Hints",
    MUST,
)
def early_hint(ctx: CheckContext) -> None:
    advertised(ctx, "http.response.early_hint")
    link = b"</style.css>; rel=preload; as=style"
    plan = [
        plans.drain(),
        plans.send({"type": "http.response.early_hint", "links": [link]}),
        *plans.respond(),
    ]
    responses = ctx.http(plan).responses
    hints = [r for r in responses if r.status == 103]
    expect(hints and link in hints[0].header_values("link"), f"responses {responses!r}")


@check(
    "extensions.push",
    "with http.response.push advertised, a push message is accepted and the response completes",
    f"{EXT} HTTP/2 Server Push",
    MUST,
)
def push(ctx: CheckContext) -> None:
    advertised(ctx, "http.response.push")
    plan = [
        plans.drain(),
        plans.start(),
        plans.send({"type": "http.response.push", "path": "/pushed", "headers": []}),
        plans.body(b"pushed-from"),
    ]
    exchange = ctx.http(plan)
    outcome = ctx.trace(exchange.token).send_at(2)
    expect(outcome is not None and outcome["error"] is None, f"push outcome {outcome!r}")
    expect(exchange.response.body == b"pushed-from", f"body {exchange.response.body!r}")
