"""Configurable limits and timeouts (issue #7): each one answered with its status, the
connection closed, the app never called with a half-read request."""

from __future__ import annotations

import socket
import time

import httpx

from tests.serverproc import raw_exchange, read_response, sandman


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def test_request_target_limit_414():
    with sandman("tests.apps:echo", "--limit-request-line", "100") as server:
        ok = raw_exchange(
            server.port, b"GET /" + b"a" * 99 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert _status(ok) == 200
        raw = raw_exchange(server.port, b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _status(raw) == 414 and b"connection: close" in raw


def test_header_count_limit_431():
    with sandman("tests.apps:echo", "--limit-request-fields", "10") as server:
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(9))
        ok = raw_exchange(
            server.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"Connection: close\r\n\r\n"
        )
        assert _status(ok) == 431, "11 lines with Host and Connection"
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(8))
        ok = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert _status(ok) == 200


def test_default_header_count_limit_is_100():
    with sandman("tests.apps:echo") as server:
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(120))
        raw = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert _status(raw) == 431


def test_body_limit_413_by_content_length_and_while_streaming():
    with sandman("tests.apps:echo", "--limit-request-body", "1000") as server:
        assert httpx.post(server.url, content=b"a" * 1000).content == b"a" * 1000
        r = httpx.post(server.url, content=b"a" * 1001)
        assert r.status_code == 413 and r.headers["connection"] == "close"
        # chunked: the limit is found while reading
        raw = raw_exchange(
            server.port,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3e8\r\n" + b"a" * 1000 + b"\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        assert _status(raw) == 413
        # big chunked body on the streaming path
        chunk = b"2000\r\n" + b"b" * 0x2000 + b"\r\n"
        with sandman("tests.apps:echo", "--limit-request-body", "100000") as big:
            raw = raw_exchange(
                big.port,
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 20,
            )
            assert _status(raw) == 413


def test_stalled_body_is_408():
    with sandman("tests.apps:echo", "--timeout-request-body", "0.5") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            start = time.monotonic()
            status, headers, _ = read_response(s)
            assert status.startswith(b"HTTP/1.1 408")
            assert 0.4 < time.monotonic() - start < 3
            assert s.recv(10) == b""


def test_slowloris_header_is_cut_off():
    # One header byte every 2 s: the head is never complete within the header timeout.
    with sandman("tests.apps:echo", "--timeout-request-header", "1.5") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            start = time.monotonic()
            closed = False
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n\r\n":
                try:
                    s.sendall(bytes([byte]))
                    s.settimeout(2.0)
                    if s.recv(1) == b"":
                        closed = True
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                    break
            assert closed, "the server dropped the slow client"
            assert time.monotonic() - start < 6


def test_connection_limit_holds_new_clients_in_the_backlog():
    with sandman("tests.apps:hello", "--limit-connections", "2") as server:
        a = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        b = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        for s in (a, b):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[2] == b"Hello, world!"
        c = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # queued by the kernel
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        c.settimeout(0.7)
        try:
            early = c.recv(100)
        except TimeoutError:
            early = b""
        assert early == b"", "a third connection is not served while two are open"
        a.close()
        c.settimeout(5)
        assert read_response(c)[2] == b"Hello, world!"
        b.close()
        c.close()
