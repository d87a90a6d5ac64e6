"""Clients that misbehave at the TCP level, over raw sockets (issue #28): half-closing after
the request, resetting in the middle of a request body or of a response, no longer reading
(zero window) while a large response is queued, closing while the server waits to send
``100 Continue``. Each time the server stays up, the app sees ``http.disconnect`` (or its
``send()`` raises) where the client really left, and the server's descriptors and running
app calls return to where they were.

The resets, the zero window and a stream reset also run over HTTP/2 (h2c with prior
knowledge, ``tests/h2client.py``).

A FIN after a complete HTTP/1 request is a half-close until shown otherwise: the response goes
out (as ``nc -q``, health checkers and some proxies expect), and an app that asks
(``receive()`` after the body) is told ``http.disconnect``, after which the request counts
as disconnected. A reset is a client that left.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.h2client import H2Client
from tests.hardening.loadgen import fd_count
from tests.serverproc import read_response, read_to_eof, sandman


@pytest.fixture(scope="module")
def server():
    with sandman("tests.client_apps:probe", "--no-access-log") as s:
        get(s.port, "/answer")  # warm: the first request allocates what every later one reuses
        # The server may close the warm connection's socket just after the client has read
        # the response: count once it has.
        time.sleep(0.5)
        s.baseline_fds = fd_count(s.proc.pid)
        yield s


def connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        # Before connect, so the window the server sees is small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def reset(sock: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0), as a client that crashes or gives up abruptly."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def get(port: int, target: str) -> bytes:
    with connect(port) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return read_response(sock)[2]


def running(port: int) -> int:
    return int(get(port, "/stats").split(b"=")[1])


def assert_back_to_baseline(server) -> None:
    """No app call left running, and the server's descriptors back where they were."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # Descriptors first: the /stats request's own connection is open on the server
        # until a moment after its answer, so counting right after it would include it.
        fds = fd_count(server.proc.pid)
        if fds == server.baseline_fds and running(server.port) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(
        f"running={running(server.port)} fds={fd_count(server.proc.pid)}"
        f" (baseline {server.baseline_fds})"
    )


# -- half-close after the request --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "request_bytes"),
    [
        ("get", b"GET /answer?id=hc-get&delay=0.3 HTTP/1.1\r\nHost: x\r\n\r\n"),
        (
            "post",
            b"POST /answer?id=hc-post&delay=0.3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"\r\nhello",
        ),
        (
            "chunked",
            b"POST /answer?id=hc-chunked&delay=0.3 HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        ("http10", b"GET /answer?id=hc-10&delay=0.3 HTTP/1.0\r\n\r\n"),
    ],
)
def test_half_close_after_the_request_gets_the_response(server, name, request_bytes):
    with connect(server.port) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)  # as `nc -q`: nothing more to send, still reading
        raw = read_to_eof(sock)  # the server answers, then closes
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK")), raw
    expected = b"got %d part 0;" % (0 if name in ("get", "http10") else 5)
    assert expected in body, raw
    if b"transfer-encoding: chunked" in head:
        assert body.endswith(b"0\r\n\r\n"), "complete"
    assert_back_to_baseline(server)


def test_half_close_with_pipelined_requests_answers_them_all(server):
    with connect(server.port) as sock:
        sock.sendall(
            b"GET /answer?id=p1&delay=0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /answer?id=p2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        sock.shutdown(socket.SHUT_WR)
        raw = read_to_eof(sock)  # both responses, then the close
    assert raw.count(b"HTTP/1.1 200 OK") == 2, raw
    assert raw.count(b"content-length: 13\r\n\r\ngot 0 part 0;") == 2, raw
    assert_back_to_baseline(server)


def test_half_close_while_streaming_keeps_the_stream_flowing(server):
    # An SSE-like response, slow parts: the FIN does not stop it.
    with connect(server.port) as sock:
        sock.sendall(b"GET /answer?id=hc-stream&parts=4&gap=0.2 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        status, _, body = read_response(sock)
    assert status == b"HTTP/1.1 200 OK"
    assert body == b"got 0 part 0;got 0 part 1;got 0 part 2;got 0 part 3;"
    server.wait_for("APP hc-stream answered")
    assert_back_to_baseline(server)


def test_an_app_that_asks_after_a_half_close_is_told_the_client_left(server):
    # A FIN may be a full close: an app waiting for the client to leave is told so, and
    # from then on the request is disconnected (send raises, nothing more goes out).
    with connect(server.port) as sock:
        sock.sendall(b"GET /wait-disconnect?id=hc-ask HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        sock.shutdown(socket.SHUT_WR)
        server.wait_for("APP hc-ask got http.disconnect", timeout=5)
        server.wait_for("APP hc-ask send raised ClientDisconnected", timeout=5)
        assert read_to_eof(sock) == b""
    assert_back_to_baseline(server)


def test_a_reset_while_the_app_waits_is_a_disconnect(server):
    sock = connect(server.port)
    sock.sendall(b"GET /wait-disconnect?id=rst-wait HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    reset(sock)
    server.wait_for("APP rst-wait got http.disconnect", timeout=5)
    server.wait_for("APP rst-wait send raised ClientDisconnected", timeout=5)
    assert_back_to_baseline(server)


def test_a_body_cut_short_by_a_fin_is_a_disconnect(server):
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /read-body?id=fin-body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
            + b"a" * 300_000
        )
        sock.shutdown(socket.SHUT_WR)
        server.wait_for(r"APP fin-body body \d+ http.disconnect", timeout=5)
        assert read_to_eof(sock) == b"", "no response to a request that never ended"
    assert_back_to_baseline(server)


# -- resets ------------------------------------------------------------------------------


def test_reset_in_the_middle_of_a_request_body(server):
    sock = connect(server.port)
    sock.sendall(
        b"POST /read-body?id=rst-body HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
    )
    for _ in range(20):
        sock.sendall(b"b" * 65536)
    time.sleep(0.2)
    reset(sock)
    m = server.wait_for(r"APP rst-body body (\d+) http.disconnect", timeout=5)
    assert 0 < int(m.group(1)) <= 20 * 65536
    assert get(server.port, "/answer?id=after-rst-body") == b"got 0 part 0;"
    assert_back_to_baseline(server)


def test_reset_in_the_middle_of_a_response(server):
    sock = connect(server.port)
    sock.sendall(b"GET /big?id=rst-resp&size=104857600 HTTP/1.1\r\nHost: x\r\n\r\n")
    got = 0
    while got < 2 << 20:
        got += len(sock.recv(65536))
    reset(sock)
    m = server.wait_for(r"APP rst-resp send raised ClientDisconnected after (\d+)", timeout=5)
    assert int(m.group(1)) < 100 << 20
    assert get(server.port, "/answer") == b"got 0 part 0;"
    assert_back_to_baseline(server)


# -- a client that stops reading ---------------------------------------------------------


def test_zero_window_holds_the_app_without_growing_then_a_reset_frees_it(server):
    sock = connect(server.port, rcvbuf=4096)
    sock.sendall(b"GET /big?id=zw&size=1073741824 HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.recv(1024)  # the head and a little of the body, then never another byte
    time.sleep(1.0)  # the kernel buffers fill, then the response queue, then send() waits

    def sent() -> int:
        lines = [line for line in server.stderr.splitlines() if line.startswith("APP zw sent ")]
        return int(lines[-1].split()[-1]) if lines else 0

    first = sent()
    rss = [_rss_kib(server.proc.pid)]
    time.sleep(1.0)
    rss.append(_rss_kib(server.proc.pid))
    # Blocked: at most a few MiB of kernel buffers and the response queue, no growth.
    assert first == sent(), "the app is paused by back-pressure, not buffering"
    assert first <= 16 << 20, first
    assert rss[1] - rss[0] < 4096, rss
    # Everyone else is served meanwhile.
    assert get(server.port, "/answer") == b"got 0 part 0;"
    reset(sock)
    server.wait_for(r"APP zw send raised ClientDisconnected after \d+", timeout=5)
    assert_back_to_baseline(server)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


# -- 100-continue ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_gone_while_the_server_waits_to_send_100_continue(server, how):
    tag = f"expect-{how}"
    sock = connect(server.port)
    sock.sendall(
        f"POST /read-body?id={tag}&delay=0.3 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        "Expect: 100-continue\r\n\r\n".encode()
    )
    time.sleep(0.1)  # the app is called and waits before reading: no 100 sent yet
    if how == "reset":
        reset(sock)
    else:
        sock.close()
    server.wait_for(f"APP {tag} body 0 http.disconnect", timeout=5)
    assert_back_to_baseline(server)


# -- the same faults over HTTP/2 (h2c with prior knowledge) ----------------------------------


def h2(server, window: int | None = None) -> H2Client:
    return H2Client(server.port, window=window)


def test_h2_reset_in_the_middle_of_a_request_body(server):
    client = h2(server)
    stream = client.request(
        "/read-body?id=h2-rst-body",
        method="POST",
        headers=[("content-length", "10000000")],
        body=b"b" * 16_000,
        end_stream=False,
    )
    for _ in range(2):  # within the stream's first window, in frames of the default size
        client.conn.send_data(stream, b"b" * 16_000)
        client.flush()
    time.sleep(0.2)
    reset(client.sock)
    m = server.wait_for(r"APP h2-rst-body body (\d+) http.disconnect", timeout=5)
    assert 0 < int(m.group(1)) <= 48_000
    assert_back_to_baseline(server)


def test_h2_reset_in_the_middle_of_a_response(server):
    client = h2(server)
    stream = client.request("/big?id=h2-rst-resp&size=104857600")
    client.wait_until(lambda: len(client.streams[stream].body) >= 1 << 20)
    reset(client.sock)
    m = server.wait_for(r"APP h2-rst-resp send raised ClientDisconnected after (\d+)", timeout=5)
    assert int(m.group(1)) < 100 << 20
    assert_back_to_baseline(server)


def test_h2_stream_reset_disconnects_that_stream_only(server):
    client = h2(server)
    kept = client.request("/answer?id=h2-kept&delay=0.5")
    dropped = client.request("/wait-disconnect?id=h2-dropped")
    time.sleep(0.2)
    client.reset(dropped)
    server.wait_for("APP h2-dropped got http.disconnect", timeout=5)
    assert client.wait(kept).body == b"got 0 part 0;"
    client.close()
    assert_back_to_baseline(server)


def test_h2_zero_window_holds_the_app_without_growing_then_a_reset_frees_it(server):
    # The client never opens its flow-control window: the server may send 64 KiB, then the
    # response waits; the app's send() blocks, memory does not grow.
    client = h2(server, window=65_535)
    client.auto_window = False
    client.request("/big?id=h2-zw&size=1073741824")
    time.sleep(1.0)

    def sent() -> int:
        lines = [ln for ln in server.stderr.splitlines() if ln.startswith("APP h2-zw sent ")]
        return int(lines[-1].split()[-1]) if lines else 0

    first = sent()
    rss = [_rss_kib(server.proc.pid)]
    time.sleep(1.0)
    rss.append(_rss_kib(server.proc.pid))
    assert first == sent() and first <= 16 << 20, first
    assert rss[1] - rss[0] < 4096, rss
    assert get(server.port, "/answer") == b"got 0 part 0;"
    reset(client.sock)
    server.wait_for(r"APP h2-zw send raised ClientDisconnected after \d+", timeout=5)
    assert_back_to_baseline(server)
