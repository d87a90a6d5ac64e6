"""Idle connections give back their buffers (docs/memory.md), and still work afterwards.

Real sockets against a real server: keep-alive connections and WebSockets (with and
without permessage-deflate) each make one exchange, sit idle past the park delay (1 s), and
must then cost a few KiB of RSS each rather than the 20-550 KiB they held before parking
existed; then each makes another exchange on the same socket. The bounds are loose (the
measured figures are in docs/memory.md): they catch buffers kept for a whole idle life,
not allocator noise.
"""

from __future__ import annotations

import resource
import socket
import time
import zlib

import pytest

from tests.hardening.loadgen import rss_kib
from tests.serverproc import sandman
from tests.wsframes import frame, handshake, read_frame

pytestmark = pytest.mark.timeout(120)

# Past the park delay (1 s), mimalloc's purge delay (1 s) and the IO thread's collect tick.
SETTLE = 3.5
QUIET = ("--timeout-keep-alive", "120", "--ws-ping-interval", "0", "--no-access-log")


@pytest.fixture(autouse=True)
def descriptors() -> None:
    """Room for the connections in this process and in the server it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if min(wanted, hard) < 2400:
        pytest.skip(f"descriptor limit {hard} too low for 2,000 connections")


def get(sock: socket.socket) -> bytes:
    """One keep-alive GET on ``sock``; the response body."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "closed instead of answering"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))[15:]
    )
    while len(body) < length:
        body += sock.recv(4096)
    return body


def rss_per_connection(pid: int, before: int, n: int) -> float:
    return (rss_kib(pid) - before) / n


def test_idle_keep_alive_connections_hold_a_few_kib_and_keep_working():
    n = 2000
    with sandman("tests.apps:hello", *QUIET) as server:
        pid, port = server.proc.pid, server.port
        warm = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
        for sock in warm:
            get(sock)
            sock.close()
        time.sleep(SETTLE)
        before = rss_kib(pid)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
        try:
            for sock in clients:
                assert get(sock) == b"Hello, world!"
            time.sleep(SETTLE)
            per = rss_per_connection(pid, before, n)
            assert per < 8, f"{per:.1f} KiB per idle keep-alive connection"
            # Parked, not closed: each answers again on the same socket.
            for sock in clients:
                assert get(sock) == b"Hello, world!"
        finally:
            for sock in clients:
                sock.close()
        time.sleep(SETTLE)
        after = rss_kib(pid)
        assert after - before < 8 * 1024, f"{(after - before) / 1024:.1f} MiB kept after close"


def ws_echo(sock: socket.socket, text: bytes, deflate: bool) -> None:
    """Send ``text`` (compressed on its own when ``deflate``) and check the echo."""
    if deflate:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -12)
        payload = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
        sock.sendall(frame(1, payload[:-4], rsv=4))
    else:
        sock.sendall(frame(1, text))
    opcode, fin, payload = read_frame(sock)
    assert (opcode, fin) == (1, True)
    if deflate and payload != text:
        # Compressed (RSV1): without context takeover every message inflates on its own.
        payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
    assert payload == text


@pytest.mark.parametrize(
    ("deflate", "bound"),
    [(False, 16), (True, 24)],
    ids=["plain", "permessage-deflate"],
)
def test_idle_websockets_hold_a_few_kib_and_keep_working(deflate, bound):
    n = 1000
    offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    text = b'{"channel": "prices", "items": [{"id": 1, "price": 101.25, "currency": "EUR"}]}'
    with sandman("tests.ws_apps:echo", *QUIET) as server:
        pid, port = server.proc.pid, server.port

        def connect() -> socket.socket:
            sock, head = handshake(port, extra=offer if deflate else b"")
            assert head.startswith(b"HTTP/1.1 101"), head
            assert (b"permessage-deflate" in head.lower()) == deflate, head
            if deflate:
                assert b"server_no_context_takeover" in head.lower(), head
                assert b"client_no_context_takeover" in head.lower(), head
            return sock

        warm = [connect() for _ in range(50)]
        for sock in warm:
            ws_echo(sock, text, deflate)
            sock.close()
        time.sleep(SETTLE)
        before = rss_kib(pid)
        clients = [connect() for _ in range(n)]
        try:
            for sock in clients:
                ws_echo(sock, text, deflate)
            time.sleep(SETTLE)
            per = rss_per_connection(pid, before, n)
            assert per < bound, f"{per:.1f} KiB per idle WebSocket"
            for sock in clients:
                ws_echo(sock, text + b" again", deflate)
        finally:
            for sock in clients:
                sock.close()
