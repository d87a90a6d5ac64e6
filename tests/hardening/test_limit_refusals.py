"""The limits the other suites do not reach on the wire (issue #7 "Limits"):
``--limit-concurrency`` (503 beyond N, uvicorn's rule), ``--backlog`` (the kernel's accept
queue) and where the head-size limit really starts. The 414/431/413/408 refusals, the header
timeout and ``--limit-connections`` are in tests/test_limits.py and tests/test_bad_requests.py.
"""

from __future__ import annotations

import socket
import time

from tests.hardening.test_faults import InFlight
from tests.serverproc import read_response, sandman
from tests.test_request_parsing import exchange


def test_limit_concurrency_answers_503_without_calling_the_app():
    # uvicorn's rule, kept: refused when N connections are open counting the new request's
    # own, or N requests are running. So with N = 3, two busy connections fill it.
    with sandman("tests.parsing_apps:slow_witness", "--limit-concurrency", "3") as server:
        busy = InFlight(server.port, count=2, seconds=1.5)
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /refused?s=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(sock)
            assert status == b"HTTP/1.1 503 Service Unavailable"
            assert body == b"Service Unavailable" and headers[b"connection"] == b"close"
            # The server's default headers go on its own refusals too (D-HTTP-4).
            assert headers[b"server"] == b"sandman" and headers[b"date"].endswith(b" GMT")
            assert sock.recv(10) == b"", "closed after the 503"
        server.wait_for("WARNING:  Exceeded concurrency limit.")
        assert busy.join() == [(200, b"start;end")] * 2, "the requests in flight are unharmed"
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /later?s=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock)[0] == b"HTTP/1.1 200 OK", "served again once below N"
        server.wait_for("APP call GET /later")
        assert "/refused" not in server.stderr, "the app never saw the refused request"


def test_limit_concurrency_of_one_refuses_every_request():
    # The new request's own connection counts, so with N = 1 nothing is ever served.
    with sandman("tests.parsing_apps:slow_witness", "--limit-concurrency", "1") as server:
        for path in (b"/a", b"/b", b"/c"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(b"GET " + path + b"?s=0 HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(sock)[0] == b"HTTP/1.1 503 Service Unavailable"
        server.stop()
    assert server.stderr.count("Exceeded concurrency limit.") >= 3
    assert "APP call" not in server.stderr, "the app was called"


def test_backlog_bounds_the_queue_of_waiting_clients():
    # With one connection allowed and held, new clients can only wait in the kernel's accept
    # queue, which Linux sizes backlog + 1: those connect at once, the next one cannot.
    for backlog in (2, 8):
        with sandman(
            "tests.apps:hello", "--limit-connections", "1", "--backlog", str(backlog)
        ) as server:
            held = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            read_response(held)
            queued = []
            try:
                for _ in range(backlog + 1):
                    queued.append(socket.create_connection(("127.0.0.1", server.port), 2))
                try:
                    extra = socket.create_connection(("127.0.0.1", server.port), timeout=0.5)
                except TimeoutError:
                    extra = None
                assert extra is None, f"backlog {backlog}: a client beyond the queue connected"
                # Freeing the held connection lets the queue drain: the first waiter is served.
                held.close()
                queued[0].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(queued[0])[2] == b"Hello, world!"
            finally:
                for s in queued:
                    s.close()
                held.close()


def head_with_cookie(size: int) -> bytes:
    return b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: " + b"a" * size + b"\r\n\r\n"


def test_default_head_limit_refuses_a_100k_head():
    # hyper bounds its read buffer, which grows past the limit before it checks (heads up to
    # about 114,700 bytes were served with the 64 KiB default); the core counts the head now.
    with sandman("tests.parsing_apps:witness") as server:
        raw, closed = exchange(server.port, head_with_cookie(100_000))
        assert raw.startswith(b"HTTP/1.1 431 ") and closed


def test_small_head_limit_is_honoured():
    # hyper's smallest read buffer is 8192: a lower limit was silently 8192.
    with sandman("tests.parsing_apps:witness", "--h11-max-incomplete-event-size", "4096") as s:
        raw, closed = exchange(s.port, head_with_cookie(5_000))
        assert raw.startswith(b"HTTP/1.1 431 ") and closed
