"""ASGI apps the tests run under a real server (imported as ``tests.apps:<name>``)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import sys
import time
from typing import Any


def _log(line: str) -> None:
    # Apps report what they saw on stderr; tests read it back from the server's output.
    print(f"APP {line}", file=sys.stderr, flush=True)


async def _lifespan(receive: Any, send: Any, state: dict | None = None) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if state is not None:
                state["counter"] = [0]
                state["name"] = "from-lifespan"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _log("lifespan shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


def _query(scope: dict) -> dict[str, str]:
    """``?a=1&b=2`` as ``{"a": "1", "b": "2"}`` (parts without ``=`` ignored)."""
    return dict(p.split("=") for p in scope["query_string"].decode().split("&") if "=" in p)


async def _text(send: Any, body: bytes, status: int = 200, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")] + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


async def hello(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await _text(send, b"Hello, world!")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, tuple):
        return {"tuple": [_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return {"repr": repr(value)}


async def scope_echo(scope: dict, receive: Any, send: Any) -> None:
    """Returns the scope as JSON with types spelled out, and mutates state/extensions so a
    test can check that the next scope got fresh copies."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send, scope.get("state"))
    seen = {
        "scope": _jsonable({k: v for k, v in scope.items() if k != "state"}),
        "state": _jsonable(dict(scope.get("state", {}))),
        "types": {k: type(v).__name__ for k, v in scope.items()},
    }
    scope["extensions"]["leak"] = True
    scope.get("state", {})["leak"] = True
    if "counter" in scope.get("state", {}):
        scope["state"]["counter"][0] += 1
    body = json.dumps(seen).encode()
    await _text(send, body, headers=[(b"content-type", b"application/json")])


async def echo(scope: dict, receive: Any, send: Any) -> None:
    """Echo the request body, reporting how many http.request events it took."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    chunks = []
    events = 0
    while True:
        message = await receive()
        events += 1
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    await _text(send, body, headers=[(b"x-events", str(events).encode())])


async def count_body(scope: dict, receive: Any, send: Any) -> None:
    """Count a (possibly huge) body without keeping it, report the peak RSS growth."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    total = 0
    events = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        total += len(message.get("body", b""))
        events += 1
        if not message.get("more_body", False):
            break
    await _text(send, json.dumps({"total": total, "events": events}).encode())


async def stream(scope: dict, receive: Any, send: Any) -> None:
    """A response without content-length, in several parts (query ?n=chunks&size=bytes)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    params = _query(scope)
    n = int(params.get("n", 3))
    size = int(params.get("size", 5))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    for i in range(n):
        await send(
            {"type": "http.response.body", "body": (b"%d" % (i % 10)) * size, "more_body": True}
        )
    await send({"type": "http.response.body", "body": b""})


# queue_probe's rounds: key -> [streams started, event set once all have started]
_QUEUE_ROUNDS: dict[str, list[Any]] = {}
_PROBE_CHUNK = b"q" * 65536


def _queue_round(key: str) -> list[Any]:
    if key not in _QUEUE_ROUNDS:
        _QUEUE_ROUNDS[key] = [0, asyncio.Event()]
    return _QUEUE_ROUNDS[key]


async def queue_probe(scope: dict, receive: Any, send: Any) -> None:
    """How deep this stream's response queue is while ?streams=N streams are open (?key=
    names the round). Each request starts a streamed body, waits until N of its round have,
    then sends 64 KiB chunks in one task step until a `send()` suspends, and ends the body
    with ``suspended-at=K`` (K = that send's 1-based number; 9 = none of eight did)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    params = _query(scope)
    state = _queue_round(params["key"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    # An empty chunk starts the stream (it counts from then on) and queues nothing.
    await send({"type": "http.response.body", "body": b"", "more_body": True})
    state[0] += 1
    if state[0] == int(params["streams"]):
        state[1].set()
    await state[1].wait()
    loop = asyncio.get_running_loop()
    suspended_at = 9
    for k in range(1, 9):
        # A callback scheduled now runs only once this task yields to the loop: if it has
        # run when send() returns, send() suspended.
        turned = []
        loop.call_soon(turned.append, True)
        await send({"type": "http.response.body", "body": _PROBE_CHUNK, "more_body": True})
        if turned:
            suspended_at = k
            break
    await send({"type": "http.response.body", "body": b"suspended-at=%d" % suspended_at})


# drain_probe: one entry per /busy first step, appended by a callback it schedules.
_DRAIN_MARKS: list[int] = []


async def drain_probe(scope: dict, receive: Any, send: Any) -> None:
    """/block holds the event loop for 300 ms, so requests arriving meanwhile queue up for
    one drain. /busy spends 3 ms in its first step and answers how many callbacks, each
    scheduled by an earlier /busy, had run when it started: the same figure for requests
    run back to back in one drain, a growing one when the loop gets turns in between."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["path"] == "/block":
        time.sleep(0.3)
        return await _text(send, b"blocked")
    seen = len(_DRAIN_MARKS)
    asyncio.get_running_loop().call_soon(_DRAIN_MARKS.append, 1)
    until = time.perf_counter() + 0.003
    while time.perf_counter() < until:
        pass
    await _text(send, b"%d" % seen)


async def status(scope: dict, receive: Any, send: Any) -> None:
    """Respond with the status in the path (/204) and a body the server must drop if needed."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    code = int(scope["path"].strip("/") or 200)
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"should not appear for 204/304/HEAD"})


async def errors(scope: dict, receive: Any, send: Any) -> None:
    """Misbehaving endpoints, chosen by path."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    path = scope["path"]
    if path == "/raise-before":
        raise RuntimeError("boom before start")
    if path == "/raise-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom after start")
    if path == "/raise-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom after the head")
    if path == "/double-start":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-first", b"1")]})
        await send({"type": "http.response.start", "status": 500, "headers": []})
        return None
    if path == "/stream-short":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
        )
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cd"})
        return None
    if path == "/no-response":
        return None
    if path == "/incomplete":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        return None
    if path == "/return-value":
        await _text(send, b"ok")
        return "unexpected"  # type: ignore[return-value]
    if path == "/bad-messages":
        # Try every invalid message; report what each raised, then answer.
        results = {}
        probes = {
            "body-before-start": {"type": "http.response.body", "body": b"x"},
            "not-a-dict": ["http.response.start"],
            "no-type": {"status": 200},
            "unknown-type": {"type": "http.response.wat"},
            "status-str": {"type": "http.response.start", "status": "200"},
            "status-range": {"type": "http.response.start", "status": 1000},
            "header-str": {"type": "http.response.start", "status": 200, "headers": [("a", "b")]},
            "body-str": None,
        }
        for name, msg in probes.items():
            if msg is None:
                continue
            try:
                await send(msg)
                results[name] = "accepted"
            except Exception as exc:  # noqa: BLE001
                results[name] = type(exc).__name__
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except Exception as exc:  # noqa: BLE001
            results["double-start"] = type(exc).__name__
        try:
            await send({"type": "http.response.body", "body": "text"})
        except Exception as exc:  # noqa: BLE001
            results["body-str"] = type(exc).__name__
        await send({"type": "http.response.body", "body": json.dumps(results).encode()})
        try:
            await send({"type": "http.response.body", "body": b"after"})
        except Exception as exc:  # noqa: BLE001
            results["after-complete"] = type(exc).__name__
        _log("bad-messages " + json.dumps(results))
        return None
    if path == "/bad-header":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"x-bad", b"a\r\nb")]}
        )
        return None
    if path == "/content-length-short":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
        )
        await send({"type": "http.response.body", "body": b"abc"})
        return None
    if path == "/content-length-long":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b"0123456789"})
        return None
    if path == "/app-headers":
        await _text(send, b"ok", headers=[(b"server", b"mine"), (b"date", b"custom-date")])
        return None
    await _text(send, b"fine")


async def disconnect_probe(scope: dict, receive: Any, send: Any) -> None:
    """/wait: wait for http.disconnect before answering, then try to send (must raise OSError).
    /after: answer, then receive() must return http.disconnect at once."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["path"] == "/wait":
        message = await receive()  # the (empty) request body
        message = await receive()  # blocks until the client goes
        _log(f"got {message['type']}")
        try:
            await _text(send, b"too late")
        except OSError as exc:
            _log(f"send raised {type(exc).__name__} isinstance-OSError={isinstance(exc, OSError)}")
            raise
        return None
    if scope["path"] == "/after":
        await _text(send, b"done")
        message = await asyncio.wait_for(receive(), 1)
        message = await asyncio.wait_for(receive(), 1)
        _log(f"after-response {message['type']}")
        return None
    await _text(send, b"?")


async def slow(scope: dict, receive: Any, send: Any) -> None:
    """Answer after ?s=seconds (default 1), streaming a first chunk at once; on /late the
    whole response waits, head included."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    qs = scope["query_string"].decode()
    seconds = float(qs.split("=")[1]) if "=" in qs else 1.0
    if scope["path"] == "/late":
        await asyncio.sleep(seconds)
        return await _text(send, b"late")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"start;", "more_body": True})
    await asyncio.sleep(seconds)
    await send({"type": "http.response.body", "body": b"end"})


async def expect_reader(scope: dict, receive: Any, send: Any) -> None:
    """/read reads the body, /ignore does not."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["path"] == "/read":
        body = b""
        more = True
        while more:
            m = await receive()
            body += m.get("body", b"")
            more = m.get("more_body", False)
        await _text(send, b"read:" + body)
    else:
        await _text(send, b"ignored")


async def lifespan_failed(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _text(send, b"never")


async def no_lifespan(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']}")
    await _text(send, b"no lifespan here")


class Asgi2App:
    """A legacy double-callable app."""

    def __init__(self, scope: dict) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        if self.scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        version = self.scope["asgi"]["version"]
        await _text(send, f"asgi2 version={version}".encode())


def factory() -> Any:
    """An app factory for --factory."""
    return hello


PID_FILE = os.environ.get("SANDMAN_TEST_PIDFILE")


CONTEXT_PROBE: contextvars.ContextVar[str] = contextvars.ContextVar("context_probe")
CONTEXT_PROBE.set("import-time")  # the server's own context, as a value set at startup


async def context_probe(scope: dict, receive: Any, send: Any) -> None:
    """Answer the probe variable as this request sees it, then set it (which must not leak
    into the next request: every task runs in its own copy)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    seen = CONTEXT_PROBE.get("unset")
    CONTEXT_PROBE.set("leaked-from-a-request")
    await _text(send, seen.encode())


SHARED_CHUNK = bytes(range(256)) * 256  # 64 KiB, one object sent by every response


async def large_bodies(scope: dict, receive: Any, send: Any) -> None:
    """Bodies large enough to be lent to the IO thread instead of copied.

    ``/shared?n=N``: the same module-level ``bytes`` N times, by every request at once.
    ``/mutable?kind=bytearray|memoryview``: a 1 MiB mutable buffer, overwritten as soon as
    each ``send()`` returns (the client must still get what was sent).
    ``/fresh?mib=N``: one new N MiB ``bytes``, dropped by the app when it returns.
    """
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    params = _query(scope)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/shared":
        for _ in range(int(params.get("n", 4))):
            await send({"type": "http.response.body", "body": SHARED_CHUNK, "more_body": True})
    elif scope["path"] == "/mutable":
        buffer = bytearray(b"a" * (1 << 20))
        body = buffer if params.get("kind") == "bytearray" else memoryview(buffer)
        await send({"type": "http.response.body", "body": body, "more_body": True})
        buffer[:] = b"!" * len(buffer)
        buffer[:] = b"b" * len(buffer)
        await send({"type": "http.response.body", "body": body, "more_body": True})
        buffer[:] = b"!" * len(buffer)
    elif scope["path"] == "/fresh":
        body = b"z" * (int(params.get("mib", 1)) << 20)
        await send({"type": "http.response.body", "body": body, "more_body": True})
        del body
    await send({"type": "http.response.body", "body": b""})


async def task_factory_probe(scope: dict, receive: Any, send: Any) -> None:
    """Installs a task factory at lifespan startup; answers with the current task's name."""
    if scope["type"] == "lifespan":
        message = await receive()
        assert message["type"] == "lifespan.startup"

        def factory(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            task.set_name("made-by-the-app-factory")
            return task

        asyncio.get_running_loop().set_task_factory(factory)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    task = asyncio.current_task()
    await _text(send, (task.get_name() if task else "no task").encode())


class Routes:
    """For ``tests.apps:Routes.hello``: an app string naming an attribute of an attribute."""

    hello = staticmethod(hello)


async def malloc_probe(scope: dict, receive: Any, send: Any) -> None:
    """``1`` if the core tuned glibc's malloc in this process, else ``0``."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    from sandman_asgi import _core

    await _text(send, b"1" if _core.malloc_tuned() else b"0")
