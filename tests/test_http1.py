"""HTTP/1.0 and HTTP/1.1 on the wire: keep-alive, pipelining, framing, HEAD, 1xx/204/304,
100-continue, streamed bodies with back-pressure, disconnects (issue #2, D-HTTP-*)."""

from __future__ import annotations

import json
import re
import socket
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest

from tests.serverproc import raw_exchange, read_response, sandman


def test_hello_world_has_date_and_server_headers(hello_server):
    r = httpx.get(hello_server.url)
    assert r.status_code == 200
    assert r.text == "Hello, world!"
    assert r.headers["server"] == "sandman"
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", r.headers["date"])
    assert r.headers["content-length"] == "13"
    # date and server come first, lowercase, as uvicorn sends them
    raw = raw_exchange(hello_server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"HTTP/1.1 200 OK"
    assert head[1].startswith(b"date: ") and head[2] == b"server: sandman"


def test_date_header_follows_the_clock_on_a_kept_alive_connection(hello_server):
    # The core caches the formatted date for a second (common/date.rs): a connection that
    # stays open must still see it move, and it must be the real time (RFC 9110 §6.6.1).
    with httpx.Client() as client:
        first = client.get(hello_server.url)
        time.sleep(1.2)
        second = client.get(hello_server.url)
        now = time.time()
    assert first.http_version == second.http_version == "HTTP/1.1"
    t1 = parsedate_to_datetime(first.headers["date"]).timestamp()
    t2 = parsedate_to_datetime(second.headers["date"]).timestamp()
    assert t2 - t1 >= 1, (first.headers["date"], second.headers["date"])
    assert abs(now - t2) <= 2


def test_single_body_goes_out_in_one_write_with_content_length(hello_server):
    with socket.create_connection(("127.0.0.1", hello_server.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        data = s.recv(65536)  # everything must already be there in one segment
    assert data.endswith(b"\r\n\r\nHello, world!")
    assert b"content-length: 13" in data and b"transfer-encoding" not in data


def test_keep_alive_http11(hello_server):
    with socket.create_connection(("127.0.0.1", hello_server.port), timeout=5) as s:
        for _ in range(3):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(s)
            assert status == b"HTTP/1.1 200 OK" and body == b"Hello, world!"
            assert headers.get(b"connection") != b"close"


def test_http10_closes_by_default_and_keeps_alive_when_asked(hello_server):
    raw = raw_exchange(hello_server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 200 OK") and raw.endswith(b"Hello, world!")
    with socket.create_connection(("127.0.0.1", hello_server.port), timeout=5) as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = read_response(s)
            assert body == b"Hello, world!"
            assert headers[b"connection"].lower() == b"keep-alive"


def test_connection_close_request_is_honoured(hello_server):
    raw = raw_exchange(
        hello_server.port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert raw.count(b"HTTP/1.1 200") == 1, "a request after Connection: close is not served"
    assert raw.lower().count(b"connection: close") == 1


def test_close_among_connection_options_wins_in_any_case(hello_server):
    # D-HTTP-5: "close" anywhere in the list, any letter case, ends the connection.
    started = time.monotonic()
    raw = raw_exchange(
        hello_server.port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        until_close=True,
    )
    assert raw.count(b"HTTP/1.1 200") == 1, "a request after the close was served"
    assert raw.lower().count(b"connection: close") == 1
    assert time.monotonic() - started < 3, "the server did not close the socket"


def test_pipelined_requests_answered_in_order():
    with sandman("tests.apps:scope_echo") as server:
        reqs = b"".join(
            b"GET /p%d HTTP/1.1\r\nHost: x\r\n%s\r\n"
            % (i, b"Connection: close\r\n" if i == 4 else b"")
            for i in range(5)
        )
        raw = raw_exchange(server.port, reqs)
        paths = re.findall(rb'"path": "(/p\d)"', raw)
        assert paths == [b"/p0", b"/p1", b"/p2", b"/p3", b"/p4"]


def test_chunked_request_body_is_dechunked():
    with sandman("tests.apps:echo") as server:
        raw = raw_exchange(
            server.port,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
        )
        assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b"\r\n\r\nhello world")


def test_small_body_arrives_in_one_event():
    with sandman("tests.apps:echo") as server:
        body = b"x" * 65536
        r = httpx.post(server.url, content=body)
        assert r.content == body
        assert r.headers["x-events"] == "1"


def test_large_body_streams_in_several_events_and_is_complete():
    with sandman("tests.apps:echo") as server:
        body = bytes(range(256)) * 4096 * 4  # 4 MiB
        r = httpx.post(server.url, content=body, timeout=30)
        assert r.content == body
        assert int(r.headers["x-events"]) > 1


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_one_gib_upload_is_not_buffered():
    with sandman("tests.apps:count_body") as server:
        base = _rss_kib(server.proc.pid)
        chunk = b"z" * (1 << 20)

        def gen():
            for _ in range(1024):
                yield chunk

        r = httpx.post(server.url, content=gen(), timeout=120)
        assert r.json() == {"total": 1 << 30, "events": r.json()["events"]}
        grown = _rss_kib(server.proc.pid) - base
        assert grown < 64 * 1024, f"peak RSS grew by {grown} KiB for a 1 GiB upload"


def test_streamed_response_is_chunked_http11_and_close_delimited_http10():
    with sandman("tests.apps:stream") as server:
        r = httpx.get(server.url + "/?n=4&size=3")
        assert r.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in r.headers
        assert r.text == "000111222333"
        raw = raw_exchange(server.port, b"GET /?n=2&size=2 HTTP/1.0\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"transfer-encoding" not in head.lower() and b"content-length" not in head.lower()
        assert body == b"0011", "HTTP/1.0 gets the raw body, delimited by close"


def _chunk_sizes(body: bytes) -> tuple[list[int], bytes]:
    """Parse a chunked body: the size of each chunk (terminator excluded) and the payload."""
    sizes, payload = [], b""
    while True:
        line, _, body = body.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            assert body == b"\r\n", f"bytes after the last chunk: {body[:40]!r}"
            return sizes, payload
        sizes.append(size)
        payload += body[:size]
        assert body[size : size + 2] == b"\r\n", "chunk not followed by CRLF"
        body = body[size + 2 :]


def test_chunks_queued_together_are_written_as_one_chunk_in_order():
    """Sends the app makes before the IO thread looks go out as one chunk (one write), in
    order and byte-exact; chunks that suspend `send()` (over the 256 KiB one stream may
    queue, tests/test_response_queue.py) still arrive whole and in order."""
    with sandman("tests.apps:stream") as server:
        for n, size in ((8, 1000), (8, 40_000)):
            request = f"GET /?n={n}&size={size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            raw = raw_exchange(server.port, request.encode())
            head, _, body = raw.partition(b"\r\n\r\n")
            assert b"transfer-encoding: chunked" in head.lower()
            sizes, payload = _chunk_sizes(body)
            assert payload == b"".join(b"%d" % (i % 10) * size for i in range(n))
            assert len(sizes) < n, f"{n} sends written as {len(sizes)} chunks: {sizes}"


def test_head_has_no_body_but_the_get_length():
    with sandman("tests.apps:hello") as server:
        raw = raw_exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert body == b""
        assert b"content-length: 13" in head


@pytest.mark.parametrize("code", [204, 304])
def test_bodyless_statuses(code):
    with sandman("tests.apps:status") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % code)
            time.sleep(0.3)
            data = s.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 %d" % code)
            assert body == b""
            assert (
                b"content-length" not in head.lower() and b"transfer-encoding" not in head.lower()
            )
            # connection stays usable
            s.sendall(b"GET /200 HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = read_response(s)
            assert status.startswith(b"HTTP/1.1 200")


def test_expect_100_continue_only_when_app_reads():
    with sandman("tests.apps:expect_reader") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(
                b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            interim = s.recv(65536)
            assert interim.startswith(b"HTTP/1.1 100 Continue")
            s.sendall(b"hello")
            rest = interim.split(b"\r\n\r\n", 1)[1]
            while not rest.endswith(b"read:hello"):
                rest += s.recv(65536)
            assert b"200 OK" in rest
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(
                b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            status, _, body = read_response(s)
            assert status == b"HTTP/1.1 200 OK" and body == b"ignored"


def test_disconnect_while_waiting_and_send_after_raises_oserror_unlogged():
    with sandman("tests.apps:disconnect_probe") as server:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        s.close()
        server.wait_for("APP got http.disconnect")
        server.wait_for("APP send raised ClientDisconnected isinstance-OSError=True")
        time.sleep(0.3)
        assert "Exception in ASGI application" not in server.stderr
        assert "Traceback" not in server.stderr


def _hammer_then_reset(port: int, request: bytes, conns: int, seconds: float) -> int:
    """Keep ``conns`` keep-alive connections busy with ``request`` (a new one as soon as a
    response ends: the body ends with a zero-size chunk) for ``seconds``, then reset them all
    at once, as a load generator does when its run ends. Returns the responses completed."""
    import selectors
    import struct

    sel = selectors.DefaultSelector()
    tails: dict[socket.socket, bytes] = {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.setblocking(False)
        s.sendall(request)
        tails[s] = b""
        sel.register(s, selectors.EVENT_READ)
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                continue
            tail = (tails[s] + data)[-5:]
            if tail == b"0\r\n\r\n":
                done += 1
                s.sendall(request)
                tail = b""
            tails[s] = tail
    for s in tails:
        sel.unregister(s)
        s.close()  # RST: gone mid-response, or between request and response
    return done


def test_clients_leaving_mid_stream_release_every_app_task():
    """Clients reset while the app streams more than the response queue holds: every app's
    blocked ``send()`` must fail, so a graceful stop has no task left to wait for (a response
    ready but not yet taken by the IO thread once kept its request alive and its app blocked
    for ever)."""
    import signal

    with sandman("tests.apps:stream", "--no-access-log") as server:
        request = b"GET /?n=16&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n"  # 1 MiB: 4x the queue
        for _ in range(3):
            assert _hammer_then_reset(server.port, request, 96, 1.0) > 0
        # Still serving, and nothing left in flight once it settles.
        assert httpx.get(server.url + "/?n=2&size=3", timeout=5).text == "000111"
        time.sleep(0.5)
        assert server.stop(signal.SIGTERM, timeout=5) in (0, -signal.SIGTERM)
        assert "Waiting for background tasks" not in server.stderr


def test_receive_after_response_returns_disconnect():
    with sandman("tests.apps:disconnect_probe") as server:
        assert httpx.get(server.url + "/after").text == "done"
        server.wait_for("APP after-response http.disconnect")


def test_app_set_server_and_date_replace_ours():
    with sandman("tests.apps:errors") as server:
        raw = raw_exchange(
            server.port, b"GET /app-headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        head = raw.split(b"\r\n\r\n")[0].lower()
        assert head.count(b"server:") == 1 and b"server: mine" in head
        assert head.count(b"date:") == 1 and b"date: custom-date" in head


@pytest.mark.parametrize(
    ("flags", "low", "high"),
    [
        (("--timeout-keep-alive", "1"), 0.7, 2.5),
        ((), 4.5, 7.0),  # D-HTTP-5: uvicorn's default, 5 s, on the wire
    ],
    ids=["1s", "default"],
)
def test_keep_alive_timeout_closes_idle_connection(flags, low, high):
    with sandman("tests.apps:hello", *flags) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            read_response(s)
            s.settimeout(10)  # read_response leaves its own 5 s, which would race the 5 s default
            start = time.monotonic()
            assert s.recv(100) == b""  # server closes
            elapsed = time.monotonic() - start
            assert low < elapsed < high, elapsed


def test_many_concurrent_clients():
    with sandman("tests.apps:scope_echo") as server:
        with httpx.Client(limits=httpx.Limits(max_connections=50)) as client:
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(32) as pool:
                results = list(pool.map(lambda i: client.get(f"{server.url}/n{i}"), range(300)))
        assert all(r.status_code == 200 for r in results)
        assert sorted(json.loads(r.text)["scope"]["path"] for r in results) == sorted(
            f"/n{i}" for i in range(300)
        )


def _head_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]


@pytest.mark.parametrize(
    ("flags", "expected", "absent"),
    [
        ((), [b"date", b"server"], []),
        (("--no-server-header", "--no-date-header"), [], [b"date", b"server"]),
        (("--header", "server:mine", "--header", "X-A:1"), [b"date", b"server", b"x-a"], []),
    ],
    ids=["defaults", "no-server-no-date", "header-flags"],
)
def test_default_headers_on_the_wire(flags, expected, absent):
    """D-HTTP-1: `date` and `server` come first, in lowercase; the flags remove them; a
    `--header server:...` replaces ours (one `server` line), other `--header`s are added."""
    with sandman("tests.apps:hello", *flags) as server:
        raw = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    names = [line.split(b":", 1)[0] for line in _head_lines(raw)]
    assert names[: len(expected)] == expected, raw
    for name in absent:
        assert name not in names, raw
    assert names.count(b"server") == (0 if b"server" in absent else 1)
    values = dict(line.split(b": ", 1) for line in _head_lines(raw))
    if "server:mine" in flags:
        assert values[b"server"] == b"mine" and values[b"x-a"] == b"1"
    elif not absent:
        assert values[b"server"] == b"sandman"
        assert re.fullmatch(
            rb"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", values[b"date"]
        )


def test_a_task_factory_set_at_startup_makes_every_request_task() -> None:
    # The core builds tasks with asyncio.Task directly unless the loop has a factory.
    with sandman("tests.apps:task_factory_probe") as server:
        for _ in range(3):
            assert httpx.get(server.url, timeout=5).text == "made-by-the-app-factory"
