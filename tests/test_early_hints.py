"""The early hints extension (ASGI HTTP spec, "Early Hints"; RFC 8297) end to end: a
``103 Early Hints`` with the app's ``link`` fields reaches an HTTP/1.1 client while the app
is still working, ahead of the response, in order with pipelined requests and under TLS.
hyper sends no 1xx of a server's own, so the core writes it between hyper's responses
(``server/client_io.rs``); HTTP/1.0 (RFC 9110 §15.2) and HTTP/2 requests are not offered it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import httpx
import pytest

from tests.early_hint_apps import LINKS
from tests.serverproc import read_response, sandman

APP = "tests.early_hint_apps:app"
HINT = (
    b"HTTP/1.1 103 Early Hints\r\n"
    b"link: </style.css>; rel=preload; as=style\r\n"
    b"link: </app.js>; rel=preload; as=script\r\n\r\n"
)


@pytest.fixture(scope="module")
def server():
    with sandman(APP) as s:
        yield s


def _read_exactly(sock: socket.socket, n: int, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def _hint_then_response(sock: socket.socket) -> None:
    started = time.monotonic()
    # The app answers a second after its hint: the hint must come well before that.
    assert _read_exactly(sock, len(HINT), timeout=0.8) == HINT
    assert time.monotonic() - started < 0.8
    status, headers, body = read_response(sock, timeout=5)
    assert status == b"HTTP/1.1 200 OK"
    assert body == b"done"


def test_advertised_to_http11_requests_only(server):
    assert "http.response.early_hint" in httpx.get(f"{server.url}/extensions").json()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /extensions HTTP/1.0\r\nHost: x\r\n\r\n")
        _, _, body = read_response(sock)
    assert "http.response.early_hint" not in json.loads(body)
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        r = client.get(f"{server.url}/extensions")
    assert r.http_version == "HTTP/2"
    assert "http.response.early_hint" not in r.json()


def test_the_hint_comes_first_while_the_app_works(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for _ in range(2):  # and again on the same keep-alive connection
            sock.sendall(b"GET /hint HTTP/1.1\r\nHost: x\r\n\r\n")
            _hint_then_response(sock)


def test_pipelined_requests_keep_their_order(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /hint HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        _hint_then_response(sock)
        _hint_then_response(sock)


def test_over_tls(server_certificate):
    context = server_certificate.client_context()
    with sandman(APP, "--ssl-certfile", str(server_certificate.pem)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(b"GET /hint HTTP/1.1\r\nHost: localhost\r\n\r\n")
                _hint_then_response(sock)


def test_httpx_skips_it_and_gets_the_response(server):
    r = httpx.get(f"{server.url}/hint", timeout=10)
    assert r.status_code == 200 and r.text == "done"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sees_the_103(server):
    out = subprocess.run(
        ["curl", "-sS", "-i", f"{server.url}/hint"], capture_output=True, timeout=30, check=True
    ).stdout
    assert out.startswith(b"HTTP/1.1 103 Early Hints\r\n")
    assert LINKS[0] in out and out.rstrip().endswith(b"done")


def test_after_the_start_it_is_refused(server):
    r = httpx.get(f"{server.url}/late", timeout=10)
    assert r.text == (
        "Unexpected ASGI message 'http.response.early_hint' sent, after response already started."
    )


def test_links_must_be_bytes(server):
    r = httpx.get(f"{server.url}/bad", timeout=10)
    assert r.text == "TypeError: 'links' items must be bytes, got str"
