"""The lifespan protocol ([LS]; checklist §1.3, §2.3).

Checks on the main server read what its lifespan call recorded at startup; the scenario
checks start servers of their own (a failing startup, a raising app, a graceful stop).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from compat import plans
from compat.checks.base import (
    LIFECYCLE,
    LS,
    Fail,
    NotAdvertised,
    Strength,
    Unsupported,
    check,
    expect,
)
from compat.context import CheckContext
from compat.harness.endpoint import accepts
from compat.harness.launch import RunningServer
from compat.harness.records import Trace
from compat.harness.wire import Connection
from compat.probe.app import LIFESPAN_TOKEN, SHUTDOWN_FAILED_MESSAGE, STARTUP_FAILED_MESSAGE
from compat.probe.plan import pack_plan

MUST, SHOULD, DE_FACTO = Strength.MUST, Strength.SHOULD, Strength.DE_FACTO
SCENARIO_TIMEOUT = 30.0
EVIDENCE = 600


def lifespan_trace(ctx: CheckContext) -> Trace:
    """The main server's lifespan records; ``Unsupported`` if it never ran lifespan."""
    trace = ctx.records.wait(LIFESPAN_TOKEN, lambda t: t.of("replied"), 2.0)
    if trace.scope is None:
        raise Unsupported("the app was never called with a lifespan scope")
    return trace


def lifespan_events(trace: Trace) -> list[str]:
    return [e.get("type") for e in trace.events if isinstance(e, dict)]


@check(
    "lifespan.supported",
    "the server runs the lifespan protocol at startup",
    f"{LS} (uvicorn, hypercorn, granian; daphne does not)",
    DE_FACTO,
)
def supported(ctx: CheckContext) -> None:
    trace = ctx.records.wait(LIFESPAN_TOKEN, lambda t: t.of("replied"), 2.0)
    expect(trace.scope is not None, "the app was never called with a lifespan scope")
    expect("lifespan.startup" in lifespan_events(trace), "no lifespan.startup event")


@check("lifespan.scope", "type is 'lifespan' and asgi version '3.0'", f"{LS} Scope", MUST)
def scope(ctx: CheckContext) -> None:
    value = lifespan_trace(ctx).scope or {}
    expect(value.get("type") == "lifespan", f"type is {value.get('type')!r}")
    asgi = value.get("asgi")
    expect(isinstance(asgi, dict) and asgi.get("version") == "3.0", f"asgi is {asgi!r}")


@check(
    "lifespan.spec_version",
    "asgi['spec_version'], if present, names a lifespan spec version ('1.0' or '2.0')",
    f"{LS} Scope",
    MUST,
)
def spec_version(ctx: CheckContext) -> str:
    asgi = (lifespan_trace(ctx).scope or {}).get("asgi") or {}
    if "spec_version" not in asgi:
        return "absent (means 1.0)"
    expect(asgi["spec_version"] in ("1.0", "2.0"), f"spec_version is {asgi['spec_version']!r}")
    return f"spec_version={asgi['spec_version']}"


@check(
    "lifespan.startup_first",
    "the first event is lifespan.startup",
    f"{LS} Startup - receive event",
    MUST,
)
def startup_first(ctx: CheckContext) -> None:
    kinds = lifespan_events(lifespan_trace(ctx))
    expect(kinds[:1] == ["lifespan.startup"], f"events {kinds}")


@check(
    "lifespan.same_loop",
    "lifespan runs in the process and event loop that serve the requests",
    f"{LS} (run in the same event loop as the requests it serves)",
    MUST,
)
def same_loop(ctx: CheckContext) -> None:
    life = lifespan_trace(ctx).of("scope")[0]
    exchange = ctx.http([plans.drain(), *plans.respond()])
    request = ctx.trace(exchange.token).of("scope")[0]
    expect(life["pid"] == request["pid"], f"pid {life['pid']} vs {request['pid']}")
    expect(life["loop"] == request["loop"], "different event loop objects")


def state_at_startup(ctx: CheckContext) -> dict[str, Any]:
    trace = lifespan_trace(ctx)
    if "state" not in (trace.scope or {}):
        raise NotAdvertised("the lifespan scope has no 'state'")
    return trace.of("state_at_startup")[0]["value"]


@check(
    "lifespan.state_empty",
    "the lifespan scope's state is an empty dict",
    f"{LS} Lifespan State",
    MUST,
)
def state_empty(ctx: CheckContext) -> None:
    value = state_at_startup(ctx)
    expect(value == {}, f"state at startup is {value!r}")


def two_states(ctx: CheckContext) -> tuple[Any, Any]:
    """The state of a request that changes it, and of the request after it."""
    state_at_startup(ctx)

    def make() -> tuple[Any, Any]:
        first = ctx.http([plans.drain(), plans.mutate("first"), *plans.respond()])
        first_scope = ctx.trace(first.token).scope or {}
        second = ctx.http([plans.drain(), *plans.respond()])
        return first_scope.get("state"), (ctx.trace(second.token).scope or {}).get("state")

    return ctx.cached("two-states", make)


@check(
    "lifespan.state_in_requests",
    "every request scope carries the state the app set during startup",
    f"{LS} Lifespan State",
    MUST,
)
def state_in_requests(ctx: CheckContext) -> None:
    first, second = two_states(ctx)
    for state in (first, second):
        expect(isinstance(state, dict), f"request state is {state!r}")
        expect(state.get("compat_value") == "from-lifespan", f"request state is {state!r}")


@check(
    "lifespan.state_copied",
    "request state is a copy: a key a request adds is not seen by the next request",
    f"{LS} Lifespan State (shallow copy)",
    MUST,
)
def state_copied(ctx: CheckContext) -> None:
    _, second = two_states(ctx)
    expect(isinstance(second, dict), f"request state is {second!r}")
    expect("compat_leak" not in second, "a key added by one request shows in the next")


@check(
    "lifespan.state_shallow",
    "the copy is shallow: objects inside the state are shared between requests",
    f"{LS} Lifespan State (shallow copy)",
    MUST,
)
def state_shallow(ctx: CheckContext) -> None:
    _, second = two_states(ctx)
    expect(isinstance(second, dict), f"request state is {second!r}")
    shared = second.get("compat_shared")
    expect(
        isinstance(shared, list) and "first" in shared,
        f"the list set at startup is {shared!r} in the next request: not shared (deep copy?)",
    )


# -- scenarios with servers of their own ---------------------------------------------------


@dataclass
class Scenario:
    """What happened to one server started for a lifespan scenario."""

    trace: Trace
    log: str
    returncode: int | None
    served: int | None = None  # status of a request made while it ran
    extra: dict[str, Any] | None = None


NO_LIFESPAN = "no-lifespan"


def lifespan_called(ctx: CheckContext, server: RunningServer, timeout: float) -> Trace:
    """The lifespan trace once the app was called; ``Unsupported`` (remembered for the other
    scenarios, so a server without lifespan is not waited on again and again) if never."""
    trace = server.records.wait(LIFESPAN_TOKEN, lambda t: t.scope is not None, timeout)
    if trace.scope is None:
        ctx.scenarios[NO_LIFESPAN] = True
        raise Unsupported("the app was never called with a lifespan scope")
    return trace


def known_unsupported(ctx: CheckContext) -> None:
    if ctx.scenarios.get(NO_LIFESPAN):
        raise Unsupported("the app was never called with a lifespan scope")


def simple_get(server: RunningServer, timeout: float = 10.0) -> tuple[int, str]:
    """One plain request; its status and token."""
    token = f"probe-{time.monotonic_ns()}"
    plan = pack_plan([plans.drain(), *plans.respond()])
    with Connection(server.endpoint, timeout) as conn:
        conn.send(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Compat-Token: "
            + token.encode()
            + b"\r\nX-Compat-Plan: "
            + plan
            + b"\r\n\r\n"
        )
        return conn.read_final()[-1].status, token


def failing_startup(ctx: CheckContext) -> Scenario:
    def run() -> Scenario:
        known_unsupported(ctx)
        server = ctx.launcher.start(env={"COMPAT_LIFESPAN": "fail"}, ready=False)
        deadline = time.monotonic() + 15.0
        accepted_at = None
        while server.process.alive() and time.monotonic() < deadline:
            if accepts(server.endpoint):
                accepted_at = accepted_at or time.monotonic()
                if server.records.read(LIFESPAN_TOKEN).scope is None and (
                    time.monotonic() - accepted_at > 2.0
                ):
                    break  # serving, and lifespan never called: nothing will fail
            time.sleep(0.1)
        code = server.process.wait(0.1)
        trace = server.records.read(LIFESPAN_TOKEN)
        server.stop(grace=3.0)
        if trace.scope is None:
            ctx.scenarios[NO_LIFESPAN] = True
            raise Unsupported("the app was never called with a lifespan scope")
        return Scenario(trace, server.process.log_text(), code)

    return ctx.scenario("failing-startup", run)


@check(
    "lifespan.startup_failed_exits",
    "after lifespan.startup.failed the server exits",
    f"{LS} Startup Failed - send event",
    SHOULD,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def startup_failed_exits(ctx: CheckContext) -> str:
    outcome = failing_startup(ctx)
    expect(outcome.returncode is not None, "still running 15 s after startup.failed")
    return f"exit status {outcome.returncode}"


@check(
    "lifespan.startup_failed_message",
    "the message of lifespan.startup.failed is logged or printed",
    f"{LS} Startup Failed - send event",
    SHOULD,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def startup_failed_message(ctx: CheckContext) -> None:
    outcome = failing_startup(ctx)
    expect(STARTUP_FAILED_MESSAGE in outcome.log, "the message is not in the server output")


@check(
    "lifespan.startup_failed_status",
    "after lifespan.startup.failed the exit status is non-zero",
    "checklist §2.3 (uvicorn exits 3, hypercorn raises)",
    DE_FACTO,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def startup_failed_status(ctx: CheckContext) -> None:
    outcome = failing_startup(ctx)
    expect(outcome.returncode not in (None, 0), f"exit status {outcome.returncode}")


def odd_lifespan(ctx: CheckContext, mode: str) -> Scenario:
    def run() -> Scenario:
        known_unsupported(ctx)
        server = ctx.launcher.start(env={"COMPAT_LIFESPAN": mode})
        try:
            lifespan_called(ctx, server, 3.0)
            status, _ = simple_get(server)
        finally:
            code = server.stop()
        return Scenario(
            server.records.read(LIFESPAN_TOKEN), server.process.log_text(), code, served=status
        )

    return ctx.scenario("raising-" + mode, run)


@check(
    "lifespan.raise_on_call_continues",
    "an app raising when called with the lifespan scope: the server serves without lifespan",
    f"{LS} Scope (exception -> continue without lifespan)",
    MUST,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def raise_on_call(ctx: CheckContext) -> None:
    outcome = odd_lifespan(ctx, "raise-call")
    expect(outcome.served == 200, f"request status {outcome.served}")


@check(
    "lifespan.raise_in_startup_continues",
    "an app raising while handling lifespan.startup: the server serves without lifespan",
    f"{LS} Scope (exception -> continue without lifespan)",
    MUST,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def raise_in_startup(ctx: CheckContext) -> None:
    outcome = odd_lifespan(ctx, "raise-startup")
    expect(outcome.served == 200, f"request status {outcome.served}")


@check(
    "lifespan.raise_no_more_events",
    "after the lifespan app raised, no further lifespan call or event (no shutdown)",
    f"{LS} Scope",
    MUST,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def raise_no_more(ctx: CheckContext) -> None:
    trace = odd_lifespan(ctx, "raise-startup").trace
    calls = len(trace.of("scope"))
    expect(calls == 1, f"the app was called {calls} times with a lifespan scope")
    expect(lifespan_events(trace) == ["lifespan.startup"], f"events {lifespan_events(trace)}")


@check(
    "lifespan.return_in_startup_continues",
    "an app returning from lifespan.startup without an answer: the server serves anyway",
    "checklist §2.3 GAP (uvicorn and granian proceed)",
    DE_FACTO,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def return_in_startup(ctx: CheckContext) -> None:
    outcome = odd_lifespan(ctx, "return-startup")
    expect(outcome.served == 200, f"request status {outcome.served}")


def slow_startup(ctx: CheckContext) -> Scenario:
    def run() -> Scenario:
        known_unsupported(ctx)
        server = ctx.launcher.start(env={"COMPAT_STARTUP_DELAY": "1.5"}, ready=False)
        try:
            lifespan_called(ctx, server, 20.0)
            # Hammer the port while startup is in progress: the first request that the
            # app sees must come after startup.complete.
            deadline = time.monotonic() + 15.0
            status, token, last_error = None, None, "none"
            while time.monotonic() < deadline and server.process.alive():
                try:
                    status, token = simple_get(server, timeout=8.0)
                    break
                except OSError as exc:
                    last_error = repr(exc)
                    time.sleep(0.05)
            request = server.records.wait_end(token, 3.0) if token else None
            alive = server.process.alive()
        finally:
            code = server.stop()
        return Scenario(
            server.records.read(LIFESPAN_TOKEN),
            server.process.log_text(),
            code,
            served=status,
            extra={"request": request, "last_error": last_error, "alive": alive},
        )

    return ctx.scenario("slow-startup", run)


@check(
    "lifespan.startup_before_requests",
    "no request reaches the app before it sent lifespan.startup.complete",
    f"{LS} Startup - receive event",
    MUST,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def startup_before_requests(ctx: CheckContext) -> str:
    outcome = slow_startup(ctx)
    request = (outcome.extra or {}).get("request")
    extra = outcome.extra or {}
    if request is None or not request.of("scope"):
        raise Fail(
            f"no request served in 15 s (status {outcome.served}, last error "
            f"{extra.get('last_error')}, server alive: {extra.get('alive')})",
            outcome.log[-EVIDENCE:],
        )
    replying = [r for r in outcome.trace.of("replying")]
    expect(replying, "startup never completed")
    gap = request.of("scope")[0]["time"] - replying[0]["time"]
    expect(gap >= 0, f"a request reached the app {-gap:.2f} s before startup.complete")
    return f"first request {gap:.2f} s after startup.complete"


def graceful_stop(ctx: CheckContext, mode: str = "normal") -> Scenario:
    """Stop a server (its graceful-stop signal, SIGINT for most) while a request is in
    flight; the app takes 1 s to shut down."""

    def run() -> Scenario:
        known_unsupported(ctx)
        server = ctx.launcher.start(env={"COMPAT_LIFESPAN": mode, "COMPAT_SHUTDOWN_DELAY": "1.0"})
        token = "inflight"
        plan = pack_plan([plans.drain(), plans.mark("started"), plans.sleep(1.0), *plans.respond()])
        conn = Connection(server.endpoint, 10.0)
        result: dict[str, Any] = {}
        try:
            lifespan_called(ctx, server, 3.0)
            conn.send(
                b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Compat-Token: inflight\r\n"
                b"X-Compat-Plan: " + plan + b"\r\n\r\n"
            )
            server.records.wait(token, lambda t: t.mark("started") is not None, 5.0)
            reader = threading.Thread(target=_read_into, args=(conn, result), daemon=True)
            reader.start()
            server.process.send_signal(server.stop_signal)
            code = server.process.wait(15.0)
            reader.join(5.0)
        finally:
            conn.close()
            code = server.stop(grace=2.0)
        return Scenario(
            server.records.read(LIFESPAN_TOKEN),
            server.process.log_text(),
            code,
            served=result.get("status"),
            extra={"request": server.records.read(token)},
        )

    return ctx.scenario("graceful-stop-" + mode, run)


def _read_into(conn: Connection, result: dict[str, Any]) -> None:
    try:
        result["status"] = conn.read_final(timeout=8.0)[-1].status
    except Exception as exc:  # any failure just means "no response"
        result["error"] = repr(exc)


def shutdown_record(outcome: Scenario) -> dict[str, Any]:
    for r in outcome.trace.of("receive"):
        if r["event"].get("type") == "lifespan.shutdown":
            return r
    raise Fail(
        f"no lifespan.shutdown event (events {lifespan_events(outcome.trace)}, "
        f"exit status {outcome.returncode})",
        outcome.log[-EVIDENCE:],
    )


@check(
    "lifespan.shutdown_sent",
    "on a graceful stop the app receives lifespan.shutdown",
    f"{LS} Shutdown - receive event",
    MUST,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def shutdown_sent(ctx: CheckContext) -> None:
    shutdown_record(graceful_stop(ctx))


@check(
    "lifespan.shutdown_waits",
    "the server waits for lifespan.shutdown.complete before it exits",
    f"{LS} Shutdown - receive event",
    MUST,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def shutdown_waits(ctx: CheckContext) -> None:
    outcome = graceful_stop(ctx)
    shutdown_record(outcome)
    trace = outcome.trace
    expect(trace.of("replying"), "the process ended during the app's 1 s shutdown work")


@check(
    "lifespan.shutdown_after_requests",
    "lifespan.shutdown comes after in-flight requests have finished",
    f"{LS} Shutdown - receive event",
    MUST,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def shutdown_after_requests(ctx: CheckContext) -> str:
    outcome = graceful_stop(ctx)
    shutdown = shutdown_record(outcome)
    request = (outcome.extra or {})["request"]
    end = request.end
    expect(end is not None, "the in-flight request never ended (abandoned mid-call)")
    expect(
        end["time"] <= shutdown["time"],
        f"lifespan.shutdown came {end['time'] - shutdown['time']:.2f} s before the request "
        f"ended ({end['outcome']})",
    )
    return f"request {end['outcome']}, response status {outcome.served}"


@check(
    "lifespan.shutdown_failed_message",
    "the message of lifespan.shutdown.failed is logged or printed",
    f"{LS} Shutdown Failed - send event",
    SHOULD,
    target=LIFECYCLE,
    timeout=SCENARIO_TIMEOUT,
)
def shutdown_failed_message(ctx: CheckContext) -> None:
    outcome = graceful_stop(ctx, "fail-shutdown")
    shutdown_record(outcome)
    expect(SHUTDOWN_FAILED_MESSAGE in outcome.log, "the message is not in the server output")
