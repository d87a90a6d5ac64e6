"""Differential test: the same request scripts and process scenarios against uvicorn 0.54
(``uvicorn[standard]``) and Sandman, started with the same flags (issue #5 "Done when").

What a client sees is compared: status line, headers other than ``server``/``date`` (as a
multiset), the de-chunked body, whether the server closed the connection; then the log
lines each server wrote meanwhile (pids and ports masked, ``Uvicorn`` read as ``Sandman``)
and, for the process scenarios, the exit status.

Every mismatch is either a failure here or an entry of ``DIFFERENCES`` below, where the test
asserts what each server does, so a documented difference cannot drift silently either.
The reference is the ``uvicorn`` executable of a virtualenv with ``uvicorn[standard]==0.54.0``
(``.ci-uvicorn/bin/uvicorn`` at the repository root, or ``$UVICORN_ANCHOR_BIN``); without it the
module is skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import ROOT, ServerProcess, command, spawn

UVICORN = Path(os.environ.get("UVICORN_ANCHOR_BIN", ROOT / ".ci-uvicorn" / "bin" / "uvicorn"))
pytestmark = pytest.mark.skipif(
    not UVICORN.exists(),
    reason=f"reference uvicorn 0.54 not found at {UVICORN} "
    "(pip install 'uvicorn[standard]==0.54.0' into a virtualenv and set UVICORN_ANCHOR_BIN)",
)

KINDS = ("uvicorn", "sandman")
UNCOMPARED_HEADERS = ("server", "date", "content-length", "transfer-encoding")
RUNNING = re.compile(r"(?:Uvicorn|Sandman) running on http://127\.0\.0\.1:(\d+) ")


# -- starting both servers ------------------------------------------------------------------


def server_command(kind: str, *args: str) -> list[str]:
    if kind == "uvicorn":
        return [str(UVICORN), *args]
    return command(*args)


@contextlib.contextmanager
def served(kind: str, app: str, *flags: str, **kwargs: Any) -> Iterator[ServerProcess]:
    cwd = kwargs.pop("cwd", ROOT)
    server = spawn(server_command(kind, app, "--port", "0", *flags), cwd=cwd, **kwargs)
    try:
        server.port = int(server.wait_for(RUNNING.pattern).group(1))
        # Lifespan finishes before the running line; give the last startup lines a moment.
        time.sleep(0.05)
        yield server
    finally:
        if server.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop(signal.SIGINT, timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.proc.pid, signal.SIGKILL)


class Pool:
    """One uvicorn and one Sandman per (app, flags), started on first use, kept for the module."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._pairs: dict[tuple[str, tuple[str, ...]], dict[str, ServerProcess]] = {}

    def pair(self, app: str, flags: tuple[str, ...]) -> dict[str, ServerProcess]:
        key = (app, flags)
        if key not in self._pairs:
            self._pairs[key] = {
                kind: self._stack.enter_context(served(kind, app, *flags)) for kind in KINDS
            }
        return self._pairs[key]

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    pool = Pool()
    try:
        yield pool
    finally:
        pool.close()


# -- talking raw HTTP and reading it back ---------------------------------------------------


@dataclass
class Response:
    status: str  # the status line, e.g. "HTTP/1.1 200 OK"
    headers: list[tuple[str, str]]  # lower-cased names, in order, server/date included
    body: bytes  # de-chunked

    def comparable(self) -> tuple[str, list[tuple[str, str]], bytes]:
        # Framing headers are left out here: Sandman gives a one-part body a content-length
        # where uvicorn chunks it (a documented difference with its own script below); the
        # de-chunked body and the close behaviour still have to match.
        others = sorted(h for h in self.headers if h[0] not in UNCOMPARED_HEADERS)
        return self.status, others, self.body

    @property
    def framing(self) -> str:
        names = dict(self.headers)
        if names.get("transfer-encoding") == "chunked":
            return "chunked"
        return "length" if "content-length" in names else "none"

    def header_names(self) -> list[str]:
        return [name for name, _ in self.headers]


@dataclass
class Exchange:
    responses: list[Response] = field(default_factory=list)
    closed: bool = False  # the server closed the connection (EOF or reset) after them
    rest: bytes = b""  # bytes that did not parse as a response

    def comparable(self) -> tuple[Any, ...]:
        # An unfinished response (cut by the server) is compared as raw bytes without the
        # server/date header lines.
        rest = re.sub(rb"(?im)^(date|server): [^\r\n]*\r\n", b"", self.rest)
        return tuple(r.comparable() for r in self.responses), self.closed, rest


def _parse(buf: bytes, methods: list[str], closed: bool) -> tuple[list[Response], bytes, bool]:
    """Parse as many whole responses as ``buf`` holds; returns (responses, rest, done)."""
    responses: list[Response] = []
    index = 0
    while index < len(methods):
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return responses, buf, False
        lines = buf[:head_end].decode("latin-1").split("\r\n")
        headers = [
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:])
        ]
        rest = buf[head_end + 4 :]
        code = int(lines[0].split()[1])
        names = dict(headers)
        if code < 200:  # interim (100 Continue): no body, the real response follows
            responses.append(Response(lines[0], headers, b""))
            buf = rest
            continue
        if methods[index] == "HEAD" or code in (204, 304):
            body = b""
        elif names.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size_end = rest.find(b"\r\n")
                if size_end < 0:
                    return responses, buf, False
                size = int(rest[:size_end].split(b";")[0], 16)
                if len(rest) < size_end + 2 + size + 2:
                    return responses, buf, False
                body += rest[size_end + 2 : size_end + 2 + size]
                rest = rest[size_end + 2 + size + 2 :]
                if size == 0:
                    break
        elif "content-length" in names:
            length = int(names["content-length"])
            if len(rest) < length:
                return responses, buf, False
            body, rest = rest[:length], rest[length:]
        else:  # delimited by close
            if not closed:
                return responses, buf, False
            body, rest = rest, b""
        responses.append(Response(lines[0], headers, body))
        buf = rest
        index += 1
    return responses, buf, True


def exchange(port: int, data: bytes | list[bytes], methods: list[str]) -> Exchange:
    """Send ``data`` (parts with a short pause between them), read the responses for
    ``methods``, then 0.3 s more to see whether the server closes the connection."""
    parts = [data] if isinstance(data, bytes) else data
    buf = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for i, part in enumerate(parts):
            if i:
                time.sleep(0.2)
            with contextlib.suppress(OSError):
                sock.sendall(part)
        deadline = time.monotonic() + 5
        done = False
        while time.monotonic() < deadline:
            sock.settimeout(0.3 if done else max(0.05, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if done:
                    break
                continue
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                closed = True
                break
            buf += chunk
            done = _parse(buf, methods, closed=False)[2]
    responses, rest, _ = _parse(buf, methods, closed)
    return Exchange(responses, closed, rest)


# -- log lines ------------------------------------------------------------------------------

LEVEL_LINE = re.compile(r"^(TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL):\s")
# Lines that only make sense for uvicorn's packaging (documented difference): with --ws none
# uvicorn also suggests installing a WebSocket library; Sandman's is built in.
UVICORN_ONLY = ("WARNING:  No supported WebSocket library detected.",)


def normalise_log(lines: list[str]) -> list[str]:
    """Keep record lines (not tracebacks or app prints); mask what differs run to run."""
    out = []
    for line in lines:
        if not LEVEL_LINE.match(line) or line.startswith(UVICORN_ONLY):
            continue
        line = line.replace("Uvicorn running on", "Sandman running on")
        line = re.sub(r"\[\d+\]", "[PID]", line)
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
        line = re.sub(r"\('127\.0\.0\.1', \d+\)", "('127.0.0.1', PORT)", line)
        out.append(line)
    return out


@dataclass
class Marks:
    err: int
    out: int


def mark(server: ServerProcess) -> Marks:
    return Marks(len(server.stderr.splitlines()), len(server.stdout.splitlines()))


def logs_since(server: ServerProcess, since: Marks) -> tuple[list[str], list[str]]:
    return (
        normalise_log(server.stderr.splitlines()[since.err :]),
        normalise_log(server.stdout.splitlines()[since.out :]),
    )


# -- request scripts ------------------------------------------------------------------------

GET = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"


@dataclass
class Script:
    app: str
    data: bytes | list[bytes]
    methods: list[str]
    flags: tuple[str, ...] = ()


SCRIPTS: dict[str, Script] = {
    "get": Script("tests.apps:hello", GET % b"/a%20b?x=1", ["GET"]),
    "head": Script("tests.apps:hello", b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", ["HEAD"]),
    "keep-alive-then-close": Script(
        "tests.apps:hello",
        GET % b"/1" + b"GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ["GET", "GET"],
    ),
    "connection-close-any-case": Script(
        "tests.apps:hello",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
        ["GET"],
    ),
    "pipelined-three": Script(
        "tests.apps:hello", GET % b"/1" + GET % b"/2" + GET % b"/3", ["GET"] * 3
    ),
    "post-content-length": Script(
        "tests.apps:echo",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
        ["POST"],
    ),
    "post-chunked": Script(
        "tests.apps:echo",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        ["POST"],
    ),
    "stream-chunked": Script("tests.apps:stream", GET % b"/?n=3&size=4", ["GET"]),
    "head-of-stream": Script("tests.apps:stream", b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", ["HEAD"]),
    "status-404": Script("tests.apps:status", GET % b"/404", ["GET"]),
    "status-599": Script("tests.apps:status", GET % b"/599", ["GET"]),
    "raise-before-start": Script("tests.apps:errors", GET % b"/raise-before", ["GET"]),
    "return-without-response": Script("tests.apps:errors", GET % b"/no-response", ["GET"]),
    # An app failing mid-response: what it sent reaches the client, then the close.
    "raise-after-body": Script("tests.apps:errors", GET % b"/raise-after", ["GET"]),
    "raise-after-start": Script("tests.apps:errors", GET % b"/raise-after-start", ["GET"]),
    "second-start": Script("tests.apps:errors", GET % b"/double-start", ["GET"]),
    "return-incomplete": Script("tests.apps:errors", GET % b"/incomplete", ["GET"]),
    "content-length-short": Script("tests.apps:errors", GET % b"/content-length-short", ["GET"]),
    "content-length-short-streamed": Script("tests.apps:errors", GET % b"/stream-short", ["GET"]),
    "content-length-long": Script("tests.apps:errors", GET % b"/content-length-long", ["GET"]),
    "expect-100-read": Script(
        "tests.apps:expect_reader",
        [
            b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            b"abc",
        ],
        ["POST"],
    ),
    "h2c-upgrade-ignored": Script(
        "tests.apps:hello",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        ["GET"],
    ),
    "scope": Script(
        "tests.differential_apps:scope",
        b"POST /one%2Ftwo/%C3%A9?a=1&b=%20 HTTP/1.1\r\nHost: example.com\r\n"
        b"X-Custom: Value\r\nContent-Length: 4\r\n\r\nbody",
        ["POST"],
    ),
    "scope-root-path": Script(
        "tests.differential_apps:scope", GET % b"/x/y", ["GET"], ("--root-path", "/app")
    ),
    "scope-proxy-headers": Script(
        "tests.differential_apps:scope",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.1\r\n"
        b"X-Forwarded-Proto: https\r\n\r\n",
        ["GET"],
    ),
    "scope-no-proxy-headers": Script(
        "tests.differential_apps:scope",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
        ["GET"],
        ("--no-proxy-headers",),
    ),
    "custom-default-headers": Script(
        "tests.apps:hello",
        GET % b"/",
        ["GET"],
        ("--header", "X-Extra:1", "--header", "Server:mine"),
    ),
    "no-server-no-date": Script(
        "tests.apps:hello", GET % b"/", ["GET"], ("--no-server-header", "--no-date-header")
    ),
    "ws-none-upgrade-served-as-http": Script(
        "tests.differential_apps:ws_echo",
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ["GET"],
        ("--ws", "none"),
    ),
    "limit-concurrency": Script(
        "tests.apps:hello", GET % b"/", ["GET"], ("--limit-concurrency", "1")
    ),
}


@dataclass
class Difference:
    """A documented, deliberate difference: what each server does, and why."""

    why: str
    uvicorn: Callable[[Exchange], bool]
    sandman: Callable[[Exchange], bool]
    logs_differ: bool = False  # the log lines are allowed to differ too
    must_differ: bool = True  # False where Sandman's outcome depends on timing


def _status(ex: Exchange, index: int = 0) -> str:
    return ex.responses[index].status if len(ex.responses) > index else "<none>"


DIFFERENCES: dict[str, Difference] = {
    # docs/differences.md rows, checked here as scripts.
    "app-sets-server-and-date": Difference(
        "the app's own server/date headers replace ours (one of each, as clients expect)",
        lambda ex: ex.responses[0].header_names().count("server") == 2,
        lambda ex: (
            ex.responses[0].header_names().count("server") == 1
            and ("server", "mine") in ex.responses[0].headers
        ),
        must_differ=False,  # server/date are not part of the general comparison
    ),
    "http11-without-host": Difference(
        "RFC 9112 §3.2: a 1.1 request without Host is a 400",
        lambda ex: _status(ex) == "HTTP/1.1 200 OK",
        lambda ex: _status(ex).startswith("HTTP/1.1 400"),
        logs_differ=True,
    ),
    "http10-stream": Difference(
        "a 1.0 client gets a 1.0 status line and a close-delimited body, never chunked",
        lambda ex: (
            _status(ex) == "HTTP/1.1 200 OK"
            and ("transfer-encoding", "chunked") in ex.responses[0].headers
        ),
        lambda ex: (
            _status(ex) == "HTTP/1.0 200 OK"
            and "transfer-encoding" not in ex.responses[0].header_names()
            and ex.responses[0].body == b"000001111122222"
            and ex.closed
        ),
    ),
    "garbage-request-line": Difference(
        "hyper answers malformed heads itself: an empty-bodied 400",
        lambda ex: ex.responses[0].body == b"Invalid HTTP request received." and ex.closed,
        lambda ex: _status(ex).startswith("HTTP/1.1 400") and ex.closed,
    ),
    "te-gzip-chunked": Difference(
        "RFC 9112 §6.1: a transfer coding we do not implement is a 501 (uvicorn[standard] "
        "serves the request with an empty body)",
        lambda ex: _status(ex) == "HTTP/1.1 200 OK" and ex.responses[0].body == b"",
        lambda ex: _status(ex).startswith("HTTP/1.1 501"),
        logs_differ=True,
    ),
    "content-length-and-chunked": Difference(
        "RFC 9112 §6.1 allows serving by Transfer-Encoding and closing; hyper does that",
        lambda ex: _status(ex).startswith("HTTP/1.1 400"),
        lambda ex: (
            _status(ex) == "HTTP/1.1 200 OK" and ex.responses[0].body == b"hello" and ex.closed
        ),
        logs_differ=True,
    ),
    "bad-response-header": Difference(
        "an invalid header the app lets escape becomes a 500 instead of a dropped connection",
        lambda ex: ex.responses == [] and ex.closed,
        lambda ex: _status(ex).startswith("HTTP/1.1 500"),
        logs_differ=True,  # uvicorn logs the 200 access line before failing; we log none
    ),
    "huge-header": Difference(
        "a huge request head gets 431 (httptools has no limit)",
        lambda ex: _status(ex) == "HTTP/1.1 200 OK",
        lambda ex: _status(ex).startswith("HTTP/1.1 431"),
        logs_differ=True,
    ),
    "one-body-gets-content-length": Difference(
        "a body sent in one message goes out with content-length in one write",
        lambda ex: ex.responses[0].framing == "chunked",
        lambda ex: ex.responses[0].framing == "length",
        must_differ=False,  # framing headers are not part of the general comparison
    ),
    "status-204": Difference(
        "an app body on a 204 is dropped and the connection stays usable (uvicorn "
        "logs an exception and closes)",
        lambda ex: ex.closed,
        lambda ex: not ex.closed and ex.responses[0].body == b"",
        logs_differ=True,
    ),
    "status-304": Difference(
        "an app body on a 304 is dropped and the connection stays usable (uvicorn "
        "logs an exception and closes)",
        lambda ex: ex.closed,
        lambda ex: not ex.closed and ex.responses[0].body == b"",
        logs_differ=True,
    ),
    "expect-100-ignored": Difference(
        "the body was never read (no 100 sent): close rather than guess where the next "
        "request starts",
        lambda ex: _status(ex) == "HTTP/1.1 200 OK" and not ex.closed,
        lambda ex: _status(ex) == "HTTP/1.1 200 OK" and ex.closed,
    ),
    "unknown-method-served": Difference(
        "any token is a valid method (RFC 9110 §9.1); httptools knows a fixed list",
        lambda ex: _status(ex).startswith("HTTP/1.1 400"),
        lambda ex: _status(ex) == "HTTP/1.1 200 OK",
        logs_differ=True,
    ),
    "ws-bad-version": Difference(
        "RFC 6455 §4.4: an unsupported Sec-WebSocket-Version gets 426 and the versions we "
        "speak (uvicorn's websockets library answers 400)",
        lambda ex: _status(ex).startswith("HTTP/1.1 400"),
        lambda ex: (
            _status(ex) == "HTTP/1.1 426 Upgrade Required"
            and ("sec-websocket-version", "13") in ex.responses[0].headers
        ),
        logs_differ=True,  # uvicorn's library logs "connection rejected (400 Bad Request)"
    ),
    "spec-version": Difference(
        "HTTP spec 2.4 advertised (send after disconnect raises ClientDisconnected)",
        lambda ex: b'"spec_version": "2.3"' in ex.responses[0].body,
        lambda ex: b'"spec_version": "2.4"' in ex.responses[0].body,
    ),
}

DIFFERENT_SCRIPTS: dict[str, Script] = {
    "ws-bad-version": Script(
        "tests.differential_apps:ws_echo",
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 11\r\n\r\n",
        ["GET"],
    ),
    "status-204": Script("tests.apps:status", GET % b"/204", ["GET"]),
    "status-304": Script("tests.apps:status", GET % b"/304", ["GET"]),
    "expect-100-ignored": Script(
        "tests.apps:expect_reader",
        b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        ["POST"],
    ),
    "unknown-method-served": Script(
        "tests.apps:hello", b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", ["BREW"]
    ),
    "app-sets-server-and-date": Script("tests.apps:errors", GET % b"/app-headers", ["GET"]),
    "http11-without-host": Script("tests.apps:hello", b"GET / HTTP/1.1\r\n\r\n", ["GET"]),
    "http10-stream": Script("tests.apps:stream", b"GET /?n=3&size=5 HTTP/1.0\r\n\r\n", ["GET"]),
    "garbage-request-line": Script("tests.apps:hello", b"NOT A REQUEST\r\n\r\n", ["GET"]),
    "te-gzip-chunked": Script(
        "tests.apps:echo",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ["POST"],
    ),
    "content-length-and-chunked": Script(
        "tests.apps:echo",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        ["POST"],
    ),
    "bad-response-header": Script("tests.apps:errors", GET % b"/bad-header", ["GET"]),
    "huge-header": Script(
        "tests.apps:hello",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
        ["GET"],
    ),
    "one-body-gets-content-length": Script("tests.apps:hello", GET % b"/", ["GET"]),
    "spec-version": Script("tests.differential_apps:asgi", GET % b"/", ["GET"]),
}


def run_both(pool: Pool, script: Script) -> dict[str, tuple[Exchange, tuple[list[str], list[str]]]]:
    servers = pool.pair(script.app, script.flags)
    results: dict[str, Any] = {}

    def one(kind: str) -> None:
        server = servers[kind]
        since = mark(server)
        ex = exchange(server.port, script.data, script.methods)
        time.sleep(0.3)  # let the log lines of this exchange arrive
        results[kind] = (ex, logs_since(server, since))

    threads = [threading.Thread(target=one, args=(kind,)) for kind in KINDS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert set(results) == set(KINDS), "an exchange did not finish"
    return results


# Mismatches that are bugs to fix (not differences to document): strict, so each one turns
# into a failure the day it is fixed and the entry must go.
KNOWN_BUGS: dict[str, str] = {}


def _scripts() -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name]))
        if name in KNOWN_BUGS
        else name
        for name in SCRIPTS
    ]


@pytest.mark.parametrize("name", _scripts())
def test_same_answer_and_logs(pool, name):
    script = SCRIPTS[name]
    results = run_both(pool, script)
    (theirs, their_logs), (ours, our_logs) = results["uvicorn"], results["sandman"]
    assert theirs.responses or theirs.rest, f"uvicorn gave no response: {theirs}"
    assert ours.comparable() == theirs.comparable()
    assert our_logs == their_logs


@pytest.mark.parametrize("name", ["stream-chunked"])
def test_streamed_bodies_are_chunked_on_both(pool, name):
    results = run_both(pool, SCRIPTS[name])
    framings = {kind: results[kind][0].responses[0].framing for kind in KINDS}
    assert framings == {"uvicorn": "chunked", "sandman": "chunked"}


@pytest.mark.parametrize("name", list(DIFFERENCES))
def test_documented_difference(pool, name):
    difference = DIFFERENCES[name]
    results = run_both(pool, DIFFERENT_SCRIPTS[name])
    (theirs, their_logs), (ours, our_logs) = results["uvicorn"], results["sandman"]
    assert difference.uvicorn(theirs), f"uvicorn no longer does this: {theirs}"
    assert difference.sandman(ours), f"Sandman no longer does this: {ours}"
    if difference.must_differ:
        assert ours.comparable() != theirs.comparable()
    if not difference.logs_differ:
        assert our_logs == their_logs


# -- process scenarios: lifecycle logs and exit statuses ------------------------------------


def run_to_exit(kind: str, *args: str, timeout: float = 20, **kwargs: Any) -> tuple[int, list[str]]:
    server = spawn(server_command(kind, *args), cwd=ROOT, **kwargs)
    try:
        rc = server.wait(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.proc.pid, signal.SIGKILL)
    return rc, normalise_log(server.stderr.splitlines())


@pytest.mark.parametrize(
    "args",
    [
        ["nocolon"],
        ["no_such_module:app"],
        ["tests.apps:nope"],
        ["tests.apps:lifespan_failed"],
        ["tests.apps:no_lifespan", "--lifespan", "on"],
        ["tests.apps:hello", "--loop", "nowhere:loop"],
        ["tests.apps:hello", "--factory"],
    ],
    ids=[
        "bad-format",
        "no-module",
        "no-attribute",
        "lifespan-failed",
        "lifespan-on-raises",
        "bad-loop",
        "not-a-factory",
    ],
)
def test_startup_failures(args):
    theirs = run_to_exit("uvicorn", *args, "--port", "0")
    ours = run_to_exit("sandman", *args, "--port", "0")
    assert theirs[0] == ours[0] == 3
    assert ours[1] == theirs[1]


@pytest.mark.parametrize(
    "args",
    [["tests.apps:hello", "--port", "nan"], ["tests.apps:hello", "--lifespan", "maybe"], []],
    ids=["bad-int", "bad-choice", "missing-app"],
)
def test_usage_errors(args):
    results = {}
    for kind in KINDS:
        result = subprocess.run(
            server_command(kind, *args), capture_output=True, text=True, timeout=30, cwd=ROOT
        )
        name = "uvicorn" if kind == "uvicorn" else "python -m sandman_asgi"
        results[kind] = (result.returncode, result.stderr.replace(name, "<prog>"))
    assert results["sandman"] == results["uvicorn"]
    assert results["uvicorn"][0] == 2


def test_bind_failure():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        theirs = run_to_exit("uvicorn", "tests.apps:hello", "--port", port)
        ours = run_to_exit("sandman", "tests.apps:hello", "--port", port)
    assert theirs[0] == ours[0] == 3
    assert ours[1] == theirs[1]


def _lifecycle(
    kind: str, app: str, *flags: str, sig: int, requests: int = 0, **kwargs: Any
) -> tuple[int, list[str], list[str]]:
    import httpx

    with served(kind, app, *flags, **kwargs) as server:
        for _ in range(requests):
            httpx.get(server.url + "/p?q=1")
        time.sleep(0.2)
        rc = server.stop(sig)
    return rc, normalise_log(server.stderr.splitlines()), normalise_log(server.stdout.splitlines())


@pytest.mark.parametrize(
    ("app", "flags", "sig", "requests"),
    [
        ("tests.apps:hello", (), signal.SIGINT, 2),
        ("tests.apps:hello", (), signal.SIGTERM, 0),
        ("tests.apps:no_lifespan", (), signal.SIGINT, 1),
        ("tests.apps:hello", ("--lifespan", "off"), signal.SIGINT, 0),
        ("tests.apps:hello", ("--no-access-log",), signal.SIGINT, 1),
        ("tests.apps:factory", (), signal.SIGINT, 0),
    ],
    ids=[
        "sigint",
        "sigterm",
        "no-lifespan",
        "lifespan-off",
        "no-access-log",
        "factory-detected",
    ],
)
def test_single_process_lifecycle(app, flags, sig, requests):
    theirs = _lifecycle("uvicorn", app, *flags, sig=sig, requests=requests)
    ours = _lifecycle("sandman", app, *flags, sig=sig, requests=requests)
    assert ours == theirs


def test_trace_asgi_messages():
    # uvicorn's protocol also logs "HTTP connection made/lost" at trace; Sandman's core does
    # not (a documented gap), so only the ASGI message lines are compared.
    asgi_line = re.compile(r"ASGI \[\d+\] (Receive|Send|Completed|Raised exception)")
    theirs = _lifecycle(
        "uvicorn", "tests.apps:hello", "--log-level", "trace", sig=signal.SIGINT, requests=1
    )
    ours = _lifecycle(
        "sandman", "tests.apps:hello", "--log-level", "trace", sig=signal.SIGINT, requests=1
    )
    assert [line for line in ours[1] if asgi_line.search(line)] == [
        line for line in theirs[1] if asgi_line.search(line)
    ]
    assert any("HTTP connection made" in line for line in theirs[1])
    assert not any("HTTP connection made" in line for line in ours[1])


def _websocket_session(port: int) -> list[Any]:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    seen: list[Any] = []
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as ws:
        ws.send("one")
        seen.append(ws.recv(timeout=5))
        ws.send("close 4001")
        with contextlib.suppress(ConnectionClosed):
            ws.recv(timeout=5)
        seen.append((ws.close_code, ws.close_reason))
    try:
        connect(f"ws://127.0.0.1:{port}/deny", open_timeout=5)
    except InvalidStatus as exc:
        seen.append(exc.response.status_code)
    return seen


def test_websocket_session(pool):
    servers = pool.pair("tests.differential_apps:ws_echo", ())
    results = {}
    for kind in KINDS:
        since = mark(servers[kind])
        session = _websocket_session(servers[kind].port)
        time.sleep(0.3)
        results[kind] = (session, logs_since(servers[kind], since))
    assert results["uvicorn"][0] == ["echo one", (4001, ""), 403]
    assert results["sandman"][0] == results["uvicorn"][0]
    # uvicorn's websockets library adds its own "connection open/closed/rejected" lines;
    # the server's own lines must match.
    library = ("connection open", "connection closed", "connection rejected")
    theirs = [
        line
        for line in results["uvicorn"][1][0]
        if not line.endswith(library) and "connection rejected" not in line
    ]
    ours = results["sandman"][1][0]
    assert ours == theirs


def test_second_sigint_forces_exit():
    results = {}
    for kind in KINDS:
        with served(kind, "tests.apps:slow") as server:
            client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            client.sendall(b"GET /?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
            server.wait_for('"GET /\\?s=30 HTTP/1\\.1" 200', stream="stdout")
            server.send_signal(signal.SIGINT)
            server.wait_for("Waiting for connections to close")
            start = time.monotonic()
            server.send_signal(signal.SIGINT)
            rc = server.wait(timeout=10)
            elapsed = time.monotonic() - start
            client.close()
        lines = normalise_log(server.stderr.splitlines())
        # After the forced stop the loop cancels the request and lifespan tasks, on both
        # servers; which of their two lines comes first is a race.
        finished = lines.index("INFO:     Finished server process [PID]") + 1
        results[kind] = (rc, lines[:finished] + sorted(lines[finished:]), elapsed < 2)
    assert results["sandman"] == results["uvicorn"]
    assert results["uvicorn"][0] == 0 and results["uvicorn"][2]


def test_limit_max_requests_exit():
    results = {}
    for kind in KINDS:
        import httpx

        with served(kind, "tests.apps:hello", "--limit-max-requests", "2") as server:
            for _ in range(2):
                httpx.get(server.url)
            rc = server.wait(timeout=10)
        results[kind] = (rc, normalise_log(server.stderr.splitlines()))
    assert results["sandman"] == results["uvicorn"]
    assert results["uvicorn"][0] == 0


def test_env_file_line(tmp_path):
    env_file = tmp_path / "x.env"
    env_file.write_text("A=1\n")
    theirs = _lifecycle(
        "uvicorn", "tests.apps:hello", "--env-file", str(env_file), sig=signal.SIGINT
    )
    ours = _lifecycle("sandman", "tests.apps:hello", "--env-file", str(env_file), sig=signal.SIGINT)
    assert ours == theirs
    assert f"INFO:     Loading environment from '{env_file}'" in ours[1]


def _sorted_tail(lines: list[str]) -> list[str]:
    # Workers log concurrently: compare the multiset, plus the parent's first/last lines.
    return [*lines[:2], *sorted(lines[2:-1]), lines[-1]]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_workers_lifecycle(sig):
    results = {}
    for kind in KINDS:
        with served(kind, "tests.apps:hello", "--workers", "2") as server:
            deadline = time.monotonic() + 20
            while server.stderr.count("Application startup complete.") < 2:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            rc = server.stop(sig, timeout=20)
        results[kind] = (rc, _sorted_tail(normalise_log(server.stderr.splitlines())))
    assert results["sandman"] == results["uvicorn"]
    assert results["uvicorn"][0] == 0


def test_workers_that_cannot_start():
    # Documented difference: uvicorn's parent exits 0 after stopping; Sandman's exits 3,
    # as any other startup failure does (a supervisor must see that the app did not start).
    # How far the other worker got before the parent stops it is a race on both servers,
    # so only the lines that never race are compared.
    fixed = (
        "ERROR:    Application startup failed. Exiting.",
        "ERROR:    Child process [PID] failed to start, stopping the parent process.",
    )
    results = {}
    for kind in KINDS:
        rc, lines = run_to_exit(kind, "tests.apps:lifespan_failed", "--workers", "2", "--port", "0")
        results[kind] = (rc, lines[:2], lines[-1], [line in lines for line in fixed])
    assert results["uvicorn"][0] == 0 and results["sandman"][0] == 3
    assert results["sandman"][1:] == results["uvicorn"][1:]
    assert results["sandman"][3] == [True, True]


def test_reload_lifecycle(tmp_path):
    (tmp_path / "app.py").write_text((ROOT / "tests" / "differential_apps.py").read_text())
    results = {}
    for kind in KINDS:
        with served(
            kind,
            "app:scope",
            "--reload",
            "--reload-dir",
            str(tmp_path),
            "--app-dir",
            str(tmp_path),
            cwd=tmp_path,
        ) as server:
            deadline = time.monotonic() + 20
            while "Application startup complete." not in server.stderr:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            rc = server.stop(signal.SIGINT, timeout=20)
        results[kind] = (rc, normalise_log(server.stderr.splitlines()))
    assert results["sandman"] == results["uvicorn"]
    assert results["uvicorn"][0] == 0
