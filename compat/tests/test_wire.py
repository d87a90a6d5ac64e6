"""The raw HTTP client parses what servers send, and rejects broken framing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from compat.harness.endpoint import Endpoint
from compat.harness.wire import Connection, ConnectionClosed, WireError, build_request


@contextmanager
def canned(reply: bytes, close: bool = True) -> Iterator[Endpoint]:
    """A one-connection server that reads a request head and answers ``reply``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        conn.settimeout(2.0)
        try:
            conn.recv(65536)
            conn.sendall(reply)
            if not close:
                threading.Event().wait(1.0)
        finally:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield Endpoint(port=listener.getsockname()[1])
    finally:
        thread.join(3.0)
        listener.close()


def read(reply: bytes, method: str = "GET", close: bool = True):
    with canned(reply, close) as endpoint, Connection(endpoint, 2.0) as conn:
        conn.send(build_request(method, "/"))
        return conn.read_final(method)


def test_content_length_keeps_header_order_and_case() -> None:
    [r] = read(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 3\r\nx-a: 2\r\n\r\nabc")
    assert (r.status, r.body, r.framing) == (200, b"abc", "content-length")
    assert r.header_values("x-a") == [b"1", b"2"]
    assert r.headers[0] == (b"X-A", b"1")


def test_chunked_with_extension_and_trailers() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n"
    )
    [r] = read(raw)
    assert r.framing == "chunked" and r.chunks == [b"abc", b"de"] and r.body == b"abcde"
    assert r.trailers == [(b"X-Sum", b"9")]


def test_chunk_without_crlf_is_a_wire_error() -> None:
    with pytest.raises(WireError) as info:
        read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n")
    assert b"abcX" in info.value.raw


def test_close_delimited_body() -> None:
    [r] = read(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
    assert (r.version, r.framing, r.body) == ("1.0", "close", b"until the end")


def test_head_and_204_have_no_body_whatever_the_headers() -> None:
    [r] = read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", method="HEAD")
    assert r.body == b"" and r.framing == "none"
    [r] = read(b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n")
    assert r.body == b""


def test_interim_responses_come_first() -> None:
    responses = read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert [r.status for r in responses] == [100, 200]


def test_short_body_is_connection_closed() -> None:
    with pytest.raises(ConnectionClosed):
        read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")


def test_bad_status_line() -> None:
    with pytest.raises(WireError):
        read(b"HTTP/1.1 OK\r\n\r\n")


def test_silence_is_a_timeout() -> None:
    with canned(b"", close=False) as endpoint, Connection(endpoint, 0.3) as conn:
        conn.send(build_request("GET", "/"))
        with pytest.raises(TimeoutError):
            conn.read_response(timeout=0.3)


def test_closed_within() -> None:
    with canned(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as endpoint:
        with Connection(endpoint, 2.0) as conn:
            conn.send(build_request("GET", "/"))
            conn.read_final()
            assert conn.closed_within(2.0) == (True, b"")


def test_build_request() -> None:
    raw = build_request("POST", "/p", [("X-A", b"\xe9")], b"hi", host="h")
    assert raw == b"POST /p HTTP/1.1\r\nHost: h\r\nX-A: \xe9\r\nContent-Length: 2\r\n\r\nhi"
