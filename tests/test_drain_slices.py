"""A drain (the loop-thread callback that starts apps and resolves futures for everything
the IO thread queued) stops after a 1 ms slice and lets the loop run what it scheduled,
such as the flush that hands finished responses to the IO thread, before it goes on."""

from __future__ import annotations

import socket
import time

from tests.serverproc import read_response, sandman

QUEUED = 10


def test_requests_queued_together_are_not_run_in_one_stretch():
    with sandman("tests.apps:drain_probe", "--no-access-log") as server:
        conns = [
            socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(QUEUED)
        ]
        blocker = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            blocker.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.1)  # the loop is now stuck in /block for 200 ms more
            for s in conns:
                s.sendall(b"GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(blocker)[2] == b"blocked"
            seen = []
            for s in conns:
                status, _, body = read_response(s)
                assert status == b"HTTP/1.1 200 OK"
                seen.append(int(body))
        finally:
            for s in [blocker, *conns]:
                s.close()
    # Each /busy first step takes 3 ms, longer than a slice: the loop turns after each, so
    # every one saw a different number of earlier callbacks. Run in one stretch, the ten
    # queued during /block would all have seen the same number.
    assert len(set(seen)) == QUEUED, sorted(seen)
