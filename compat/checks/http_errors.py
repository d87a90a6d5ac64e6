"""Invalid messages and failing apps ([ASGI] "Error Handling"; checklist §2.1, where the
spec is silent the behaviour uvicorn and hypercorn share is the de facto rule)."""

from __future__ import annotations

from typing import Any

from compat import plans
from compat.checks.base import ASGI, WWW, Fail, Strength, check, expect
from compat.checks.http_response import follow_up_is_clean
from compat.context import CheckContext
from compat.harness.wire import ConnectionClosed, WireError

MUST, SHOULD, DE_FACTO = Strength.MUST, Strength.SHOULD, Strength.DE_FACTO


def raised_at(ctx: CheckContext, plan: list[list[Any]], index: int) -> str:
    """Run ``plan``; fail unless the send at step ``index`` raised. Returns the exception.
    What reaches the wire does not matter here (servers differ once a message was bad)."""
    try:
        ctx.http(plan)
    except (WireError, TimeoutError, ConnectionError):
        pass
    trace = ctx.trace(ctx.exchanges[-1].token)
    outcome = trace.send_at(index)
    expect(outcome is not None, f"the app never reached step {index} ({trace.end!r})")
    error = outcome["error"]
    expect(error is not None, "send() accepted it without raising")
    return f"raised {error['type']}: {error['message'][:80]}"


def invalid_then_valid(event: dict[str, Any]) -> list[list[Any]]:
    """Send an invalid ``event`` (step 1), then a valid response so the request ends."""
    return [plans.drain(), plans.send(event), *plans.respond(b"recovered")]


@check(
    "http.errors.double_start",
    "a second http.response.start raises from send()",
    f"{ASGI} Error Handling; checklist §2.1 (uvicorn, hypercorn, daphne raise)",
    SHOULD,
)
def double_start(ctx: CheckContext) -> str:
    return raised_at(ctx, [plans.drain(), plans.start(), plans.start(500), plans.body(b"ok")], 2)


@check(
    "http.errors.body_before_start",
    "http.response.body before http.response.start raises from send()",
    f"{ASGI} Error Handling; checklist §2.1",
    SHOULD,
)
def body_before_start(ctx: CheckContext) -> str:
    return raised_at(
        ctx, [plans.drain(), plans.body(b"early"), plans.start(), plans.body(b"ok")], 1
    )


@check(
    "http.errors.unknown_type",
    "an event with an unknown type raises from send()",
    f"{ASGI} Error Handling",
    SHOULD,
)
def unknown_type(ctx: CheckContext) -> str:
    return raised_at(ctx, invalid_then_valid({"type": "http.response.nonsense"}), 1)


@check(
    "http.errors.missing_status",
    "http.response.start without 'status' raises from send()",
    f"{ASGI} Error Handling; {WWW} Response Start",
    SHOULD,
)
def missing_status(ctx: CheckContext) -> str:
    return raised_at(ctx, invalid_then_valid({"type": "http.response.start", "headers": []}), 1)


@check(
    "http.errors.str_status",
    "a str status ('200') raises from send()",
    f"{ASGI} Error Handling; {WWW} Response Start",
    SHOULD,
)
def str_status(ctx: CheckContext) -> str:
    return raised_at(ctx, invalid_then_valid({"type": "http.response.start", "status": "200"}), 1)


@check(
    "http.errors.str_header",
    "a str header value raises from send()",
    f"{ASGI} Error Handling (its own example: Unicode strings for HTTP headers)",
    SHOULD,
)
def str_header(ctx: CheckContext) -> str:
    event = {"type": "http.response.start", "status": 200, "headers": [(b"x-bad", "text")]}
    return raised_at(ctx, invalid_then_valid(event), 1)


@check(
    "http.errors.str_body",
    "a str body raises from send()",
    f"{ASGI} Error Handling; {WWW} Response Body",
    SHOULD,
)
def str_body(ctx: CheckContext) -> str:
    plan = [plans.drain(), plans.start(), plans.body("text"), plans.body(b"ok")]
    return raised_at(ctx, plan, 2)


@check(
    "http.errors.extra_keys_accepted",
    "unknown extra keys in events are accepted",
    f"{ASGI} Error Handling",
    MUST,
)
def extra_keys(ctx: CheckContext) -> None:
    plan = [
        plans.drain(),
        plans.start(x_future_key=[1, 2]),
        plans.body(b"fine", x_future_key="value"),
    ]
    exchange = ctx.http(plan)
    errors = [s for s in ctx.trace(exchange.token).sends() if s["error"]]
    expect(not errors, f"send() raised {errors[0]['error']['type']}" if errors else "")
    expect(exchange.response.body == b"fine", f"body {exchange.response.body!r}")


@check(
    "http.errors.after_complete_ignored",
    "a message after the response completed puts nothing on the wire",
    f"{WWW} Response Body (further messages are ignored)",
    MUST,
)
def after_complete_ignored(ctx: CheckContext) -> None:
    plan = [plans.drain(), *plans.respond(b"done"), plans.sleep(0.1), plans.body(b"EXTRA")]
    first = follow_up_is_clean(ctx, plan)
    expect(first.body == b"done", f"first body {first.body!r}")


@check(
    "http.errors.after_complete_raises",
    "a message after the response completed raises from send()",
    "checklist §2.1 GAP (uvicorn RuntimeError, hypercorn UnexpectedMessageError)",
    DE_FACTO,
)
def after_complete_raises(ctx: CheckContext) -> str:
    return raised_at(ctx, [plans.drain(), *plans.respond(b"done"), plans.body(b"EXTRA")], 3)


def truncated_then_closed(ctx: CheckContext, plan: list[list[Any]]) -> str:
    """The response must not complete normally and the connection must close."""
    conn = ctx.connection()
    token = ctx.token()
    conn.send(ctx.request_bytes(plan, token))
    try:
        response = conn.read_final(timeout=5.0)[-1]
    except (ConnectionClosed, WireError):
        return "response cut short and connection closed"
    except TimeoutError as exc:
        raise Fail("the response neither completed nor was the connection closed in 5 s") from exc
    expect(
        response.framing == "close",
        f"the response completed normally ({response.status} via {response.framing})",
    )
    return "close-delimited response ended by the close"


@check(
    "http.errors.exception_before_start_500",
    "an app raising before http.response.start gets a 500 response",
    "checklist §2.1 (uvicorn, hypercorn, daphne)",
    DE_FACTO,
)
def exception_500(ctx: CheckContext) -> None:
    response = ctx.http([plans.drain(), plans.fail()]).response
    expect(response.status == 500, f"got {response.status_line!r}")


@check(
    "http.errors.exception_closes_connection",
    "an app exception terminates the app's connection",
    f"{ASGI} Error Handling (must terminate the instance and its connection)",
    MUST,
)
def exception_closes(ctx: CheckContext) -> None:
    exchange = ctx.http([plans.drain(), plans.fail()], keep_open=True)
    assert exchange.conn is not None
    closed, extra = exchange.conn.closed_within(3.0)
    expect(closed, f"connection still open 3 s after a {exchange.response.status} response")


@check(
    "http.errors.exception_after_start_closes",
    "an app raising mid-response: the response is cut short and the connection closed",
    f"{ASGI} Error Handling; checklist §2.1",
    MUST,
)
def exception_after_start(ctx: CheckContext) -> str:
    plan = [plans.drain(), plans.start(), plans.body(b"partial", more=True), plans.fail()]
    return truncated_then_closed(ctx, plan)


@check(
    "http.errors.return_without_response_500",
    "an app returning without starting a response gets a 500",
    "checklist §2.1 GAP (uvicorn, hypercorn)",
    DE_FACTO,
)
def return_500(ctx: CheckContext) -> None:
    response = ctx.http([plans.drain()]).response
    expect(response.status == 500, f"got {response.status_line!r}")


@check(
    "http.errors.return_mid_body_closes",
    "an app returning before the final body: the response is cut short, connection closed",
    "checklist §2.1 (uvicorn)",
    DE_FACTO,
)
def return_mid_body(ctx: CheckContext) -> str:
    plan = [plans.drain(), plans.start(), plans.body(b"partial", more=True)]
    return truncated_then_closed(ctx, plan)


@check(
    "http.errors.return_value_closes",
    "an app returning a value other than None has its connection closed",
    "checklist §2.1 (uvicorn)",
    DE_FACTO,
)
def return_value(ctx: CheckContext) -> None:
    exchange = ctx.http([plans.drain(), *plans.respond(), plans.return_value(42)], keep_open=True)
    assert exchange.conn is not None
    closed, _ = exchange.conn.closed_within(3.0)
    expect(closed, "connection still open 3 s after the app returned 42")
