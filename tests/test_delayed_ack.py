"""A request that waited in its socket longer than Linux's delayed-ACK timeout (40 ms)
takes the connection out of delayed-ACK mode, and from then on the kernel would send a
pure ACK for every request before the response. Under overload (1,000 keep-alive clients
at 25k req/s is 40 ms a request) that is one more segment per request. The server puts
the socket back in delayed-ACK mode before a read that comes late
(sandman_core/src/server/delayed_ack.rs), so the ACK rides on the response again.

Seen from the client: the pure ACKs it receives (segments without data) while one quick
request is answered."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.serverproc import read_response, sandman

# struct tcp_info (linux/tcp.h, append-only): tcpi_segs_in and tcpi_data_segs_in.
SEGS_IN = 140
DATA_SEGS_IN = 152


def pure_acks_received(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    if len(info) < DATA_SEGS_IN + 4:
        pytest.fail("kernel too old: tcp_info has no tcpi_data_segs_in (Linux 4.6+)")
    (segs_in,) = struct.unpack_from("I", info, SEGS_IN)
    (data_segs_in,) = struct.unpack_from("I", info, DATA_SEGS_IN)
    return segs_in - data_segs_in


def exchange(sock: socket.socket, target: str) -> None:
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status, _, _ = read_response(sock)
    assert status == b"HTTP/1.1 200 OK"


def one_attempt(port: int) -> int:
    """Pure ACKs the server sent for a quick request that followed a late reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Quick exchanges first: the kernel's first ACKs of a connection go out at once
        # (quick-ACK start-up), and replies within the timeout put it in delayed-ACK mode.
        for _ in range(4):
            exchange(sock, "/late?s=0")
        # A reply after 80 ms: the server's delayed-ACK timer fires at 40 ms, which takes
        # the connection out of delayed-ACK mode, and the late reply does not put it back.
        exchange(sock, "/late?s=0.08")
        # The next request comes 60 ms after that reply, as one that waited in a busy
        # server's socket would be read.
        time.sleep(0.06)
        before = pure_acks_received(sock)
        exchange(sock, "/late?s=0")
        time.sleep(0.05)  # anything still in flight arrives
        return pure_acks_received(sock) - before


def test_a_late_read_does_not_cost_a_pure_ack():
    with sandman("tests.apps:slow", "--no-access-log") as server:
        # Timing on a shared machine: a response that itself took over 40 ms would get a
        # timer ACK. Without the fix every attempt sees the read's ACK.
        counts = [one_attempt(server.port) for _ in range(3)]
    assert min(counts) == 0, f"pure ACKs per attempt: {counts}"
