"""Running out of file descriptors (issue #7 "Overload does not collapse"): with
``RLIMIT_NOFILE`` at 256 the accept loop logs once, backs off (no busy loop), keeps serving
the connections it has, and resumes accepting when descriptors free up."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator

from tests.hardening.loadgen import fd_count, read_one
from tests.serverproc import ServerProcess, command, read_response, spawn

LIMIT = 256
LOG = "ERROR:    Cannot accept connections: Too many open files (os error 24). Backing off."


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def limited_server() -> Iterator[tuple[ServerProcess, list[socket.socket]]]:
    """A server with ``RLIMIT_NOFILE`` = LIMIT, and a list for the connections that exhaust
    it (see ``exhaust``); on the way out they are closed and the server stopped."""
    # prlimit execs the server in place, so the pid is the server's. A long keep-alive
    # timeout keeps the hogs open for the whole test.
    args = ["prlimit", f"--nofile={LIMIT}:{LIMIT}", "--"]
    server = spawn(args + command("tests.apps:hello", "--port", "0", "--timeout-keep-alive", "60"))
    hogs: list[socket.socket] = []
    try:
        server.port = int(server.wait_for(r"running on http://[^ ]*:(\d+) ").group(1))
        yield server, hogs
    finally:
        for hog in hogs:
            hog.close()
        if server.proc.poll() is None:
            server.stop()


def exhaust(server: ServerProcess, hogs: list[socket.socket]) -> None:
    """More connections than the server has descriptors (the rest wait in the backlog),
    until it logs running out."""
    for _ in range(LIMIT + 50):
        hogs.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
    server.wait_for("Cannot accept connections", timeout=10)


def test_fd_exhaustion_logs_once_backs_off_and_recovers():
    with limited_server() as (server, hogs):
        regular = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        regular.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_one(regular, bytearray())
        exhaust(server, hogs)
        assert fd_count(server.proc.pid) == LIMIT, fd_count(server.proc.pid)

        # Backing off, not spinning: 1.5 s of exhaustion costs little CPU, and one log line.
        before = cpu_seconds(server.proc.pid)
        time.sleep(1.5)
        spent = cpu_seconds(server.proc.pid) - before
        print(f"FIGURE fd exhaustion: {spent:.2f} s CPU in 1.5 s of backing off")
        assert spent < 0.3
        assert server.stderr.count("Cannot accept connections") == 1, server.stderr
        assert LOG in server.stderr

        # Connections already open are still served.
        for _ in range(3):
            regular.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            read_one(regular, bytearray())

        # A new client waits in the backlog ...
        waiting = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        waiting.settimeout(0.5)
        try:
            early = waiting.recv(100)
        except TimeoutError:
            early = b""
        assert early == b"", "no descriptor, no accept"

        # ... and is served once descriptors free up, well within a few backoff periods.
        freed_at = time.monotonic()
        for hog in hogs:
            hog.close()
        hogs.clear()
        status, _, body = read_response(waiting, timeout=5)
        assert status == b"HTTP/1.1 200 OK" and body == b"Hello, world!"
        recovered = time.monotonic() - freed_at
        print(f"FIGURE fd exhaustion: a waiting client served {recovered:.3f} s after release")
        assert recovered < 2
        fresh = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        fresh.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_response(fresh)[2] == b"Hello, world!"
        for s in (regular, waiting, fresh):
            s.close()
        # (Whether the release itself logs again is test_flapping_at_the_limit_logs_once.)
        assert server.proc.poll() is None


def test_flapping_at_the_limit_logs_once():
    with limited_server() as (server, hogs):
        exhaust(server, hogs)
        for hog in hogs[:100]:  # descriptors come back one by one while clients queue
            hog.close()
            time.sleep(0.02)
        time.sleep(0.5)
        assert server.stderr.count("Cannot accept connections") == 1
