"""Malformed requests get the right 4xx/5xx, the connection is closed, the app never runs
(issue #2 "Bad input"; RFC 9112)."""

from __future__ import annotations

import pytest

from tests.serverproc import raw_exchange, sandman


@pytest.fixture(scope="module")
def server():
    with sandman("tests.apps:echo") as s:
        yield s


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP1.1\r\nHost: x\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: x\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ],
    ids=[
        "garbage",
        "extra-token",
        "space-in-target",
        "bad-version",
        "bad-method",
        "space-in-name",
        "negative-cl",
        "te-not-chunked-last",
        "missing-host",
        "duplicate-host",
    ],
)
def test_malformed_requests_get_400_and_close(server, request_bytes):
    raw = raw_exchange(server.port, request_bytes)
    assert raw.startswith(b"HTTP/1.1 400"), raw
    # the connection is closed (raw_exchange read to EOF) and nothing reached the app
    assert b"x-events" not in raw


def test_content_length_with_transfer_encoding_is_answered_then_closed(server):
    # RFC 9112 §6.1: process by Transfer-Encoding alone, then close. hyper strips the
    # Content-Length before we see the request; the smuggled bytes are never read as a
    # second request.
    raw = raw_exchange(
        server.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert raw.count(b"HTTP/1.1 ") == 1
    assert b"connection: close" in raw


def test_invalid_request_is_logged_as_warning(server):
    raw_exchange(server.port, b"GARBAGE\r\n\r\n")
    server.wait_for("WARNING:  Invalid HTTP request received.")


def test_unknown_transfer_coding_is_501(server):
    raw = raw_exchange(
        server.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    )
    assert _status(raw) == 501
    assert b"connection: close" in raw


def test_header_section_over_limit_is_431():
    with sandman("tests.apps:echo", "--h11-max-incomplete-event-size", "16384") as server:
        raw = raw_exchange(
            server.port, b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 20000 + b"\r\n\r\n"
        )
        assert _status(raw) == 431
        ok = raw_exchange(
            server.port,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: "
            + b"a" * 8000
            + b"\r\n\r\n",
        )
        assert _status(ok) == 200


def test_default_limit_accepts_a_64k_cookie(server):
    ok = raw_exchange(
        server.port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: " + b"a" * 60000 + b"\r\n\r\n",
    )
    assert _status(ok) == 200


def test_request_target_over_limit_is_414(server):
    raw = raw_exchange(server.port, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(raw) == 414


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"ffffffffffffffffff\r\n"],
    ids=["bad-size", "missing-crlf", "size-overflow"],
)
def test_malformed_chunked_body_is_400_and_closed(server, body):
    raw = raw_exchange(
        server.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    assert _status(raw) == 400, raw
    assert b"connection: close" in raw
    assert b"x-events" not in raw


def test_malformed_chunked_after_streaming_started(server):
    # more than the eager limit arrives in good chunks first, then a bad one
    good = b"".join(b"4000\r\n" + b"a" * 0x4000 + b"\r\n" for _ in range(4))
    raw = raw_exchange(
        server.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + good + b"zz\r\n",
    )
    assert _status(raw) == 400, raw[:200]
    assert b"connection: close" in raw
