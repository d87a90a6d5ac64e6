"""``--limit-request-body-rate`` with real trickling clients (issue #28): a body slower than
the minimum rate after the grace period gets 408 and a close, and the app sees
``http.disconnect``; a client above the rate, and a client held back by a slow app, are
never cut off. The defaults (500 bytes/s after 20 s) are checked by ``tests/test_api.py``;
here the grace is 1 s so each case takes a few seconds."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.serverproc import read_response, read_to_eof, sandman

RATE = ("--limit-request-body-rate", "1000", "--limit-request-body-rate-grace", "1")


@pytest.fixture(scope="module")
def server():
    with sandman("tests.client_apps:probe", "--no-access-log", *RATE) as s:
        yield s


def trickle(sock: socket.socket, piece: bytes, every: float, until: float) -> None:
    """Send ``piece`` every ``every`` seconds until ``until`` (monotonic) or the server
    closes."""
    while time.monotonic() < until:
        try:
            sock.sendall(piece)
        except OSError:
            return
        time.sleep(every)


def test_a_trickled_body_gets_408_and_the_app_sees_a_disconnect(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        # Over the size read before the app is called: the app runs while the body trickles.
        sock.sendall(
            b"POST /read-body?id=trickle HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
        )
        # 50 bytes every 0.25 s: 200 bytes/s, a fifth of the minimum.
        sender = threading.Thread(
            target=trickle, args=(sock, b"t" * 50, 0.25, started + 10), daemon=True
        )
        sender.start()
        raw = read_to_eof(sock)
        cut_after = time.monotonic() - started
    print(f"FIGURE body at 200 B/s, minimum 1,000 B/s after 1 s: 408 after {cut_after:.2f} s")
    assert raw.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), raw
    assert b"connection: close" in raw
    # The grace (1 s) plus what 200 bytes/s earns at 1,000 bytes/s, plus scheduling.
    assert 1.0 <= cut_after < 3.0, cut_after
    m = server.wait_for(r"APP trickle body (\d+) http.disconnect", timeout=5)
    assert int(m.group(1)) < 2000
    sender.join(15)


def test_a_small_trickled_body_is_refused_before_the_app_runs(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /read-body?id=small HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
        )
        sender = threading.Thread(
            target=trickle, args=(sock, b"s" * 20, 0.2, started + 10), daemon=True
        )
        sender.start()
        status, headers, _ = read_response(sock, timeout=10)
        assert time.monotonic() - started < 3.0
        sender.join(15)
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert headers[b"connection"] == b"close"
    time.sleep(0.2)
    assert "APP small " not in server.stderr, "the app was never called"


def test_a_client_above_the_rate_is_never_cut_off(server):
    size = 3 * 4000
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /read-body?id=steady HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
            "\r\n".encode()
        )
        # 4,000 bytes/s for 3 s, in small pieces: well past the grace, above the minimum.
        for _ in range(size // 400):
            sock.sendall(b"k" * 400)
            time.sleep(0.1)
        status, _, body = read_response(sock, timeout=10)
    assert (status, body) == (b"HTTP/1.1 200 OK", b"read %d" % size)


def test_time_the_app_leaves_the_body_unread_does_not_count(server):
    size = 4 << 20  # far more than the server buffers: the client waits on the app
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /read-body?id=lazy-app&delay=3 HTTP/1.1\r\nHost: x\r\nContent-Length: {size}"
            "\r\n\r\n".encode()
        )
        sock.sendall(b"l" * size)  # blocks until the app, 3 s late, reads
        status, _, body = read_response(sock, timeout=15)
    assert (status, body) == (b"HTTP/1.1 200 OK", b"read %d" % size)
