"""What the server does when the app misbehaves (issue #2; asgi.rst "Error Handling"; D-HTTP-3)."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.serverproc import raw_exchange, sandman


@pytest.fixture(scope="module")
def server():
    with sandman("tests.apps:errors") as s:
        yield s


def test_raise_before_start_is_500_and_logged(server):
    raw = raw_exchange(server.port, b"GET /raise-before HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert b"content-type: text/plain; charset=utf-8" in head
    assert b"content-length: 21" in head and b"connection: close" in head
    assert body == b"Internal Server Error"
    server.wait_for(r"ERROR:    Exception in ASGI application\nTraceback")
    server.wait_for("RuntimeError: boom before start")
    assert httpx.get(server.url + "/").text == "fine", "server lives on"


def _cut_short(raw: bytes) -> tuple[bytes, bytes]:
    """The head and body of a response the server cut short (it closed the connection)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete head: {raw!r}"
    assert head.startswith(b"HTTP/1.1 200 OK"), raw
    return head.lower(), body


def test_raise_after_start_sends_what_was_sent_then_closes(server):
    # Everything the app sent reaches the client, then the close: the chunked body has no
    # terminating chunk, so no client mistakes it for complete. Never a 500 after the start.
    raw = raw_exchange(server.port, b"GET /raise-after HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = _cut_short(raw)
    assert b"transfer-encoding: chunked" in head
    assert body == b"7\r\npartial\r\n"
    server.wait_for("RuntimeError: boom after start")


def test_raise_between_start_and_body_sends_the_head_then_closes(server):
    raw = raw_exchange(server.port, b"GET /raise-after-start HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = _cut_short(raw)
    assert b"transfer-encoding: chunked" in head and body == b""
    server.wait_for("RuntimeError: boom after the head")


def test_second_start_sends_the_first_head_then_closes(server):
    raw = raw_exchange(server.port, b"GET /double-start HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = _cut_short(raw)
    assert b"x-first: 1" in head and body == b""
    assert b"500" not in raw
    server.wait_for("Unexpected ASGI message 'http.response.start' sent, after response already")


def test_return_without_response_is_500(server):
    raw = raw_exchange(server.port, b"GET /no-response HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 500 Internal Server Error")
    server.wait_for("ERROR:    ASGI callable returned without starting response.")


def test_incomplete_response_sends_what_was_sent_then_closes(server):
    raw = raw_exchange(server.port, b"GET /incomplete HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = _cut_short(raw)
    assert body == b"7\r\npartial\r\n"
    server.wait_for("ERROR:    ASGI callable returned without completing response.")


def test_return_value_is_logged(server):
    assert httpx.get(server.url + "/return-value").text == "ok"
    server.wait_for("ASGI callable should return None, but returned 'unexpected'.")


def test_invalid_messages_raise_from_send(server):
    r = httpx.get(server.url + "/bad-messages")
    results = json.loads(r.text)
    assert results == {
        "body-before-start": "RuntimeError",
        "not-a-dict": "TypeError",
        "no-type": "ValueError",
        "unknown-type": "RuntimeError",
        "status-str": "TypeError",
        "status-range": "ValueError",
        "header-str": "TypeError",
        "double-start": "RuntimeError",
        "body-str": "TypeError",
    }
    m = server.wait_for("APP bad-messages (.*)")
    assert json.loads(m.group(1))["after-complete"] == "RuntimeError"


def test_header_injection_never_reaches_the_wire(server):
    raw = raw_exchange(server.port, b"GET /bad-header HTTP/1.1\r\nHost: x\r\n\r\n")
    # send() raised ValueError before anything was queued; the app let it escape, so the
    # client gets the plain 500 (uvicorn drops the connection here: a documented difference).
    assert raw.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert b"x-bad" not in raw
    server.wait_for("ValueError: invalid HTTP header value")


@pytest.mark.parametrize(
    ("path", "sent", "message"),
    [
        # Too short: the bytes were due and go out, then the close (the client sees 3 of
        # the 10 bytes announced).
        ("/content-length-short", b"abc", "Response content shorter than Content-Length"),
        ("/stream-short", b"abcd", "Response content shorter than Content-Length"),
        # Too long: send() refuses the message, nothing of it goes out; the head does.
        ("/content-length-long", b"", "RuntimeError: Response content longer than Content-Length"),
    ],
)
def test_content_length_mismatch_sends_what_was_due_then_closes(server, path, sent, message):
    raw = raw_exchange(server.port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    head, body = _cut_short(raw)
    assert b"content-length: " in head and b"transfer-encoding" not in head
    assert body == sent
    server.wait_for(message)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        assert s.recv(1000).endswith(b"fine")
