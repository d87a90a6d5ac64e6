"""Client-side tools for the overload, fault and soak checks: raw keep-alive requests with
latency timing, a crowd of idle and slow connections, RSS and descriptor sampling."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (children inherit it);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def read_one(sock: socket.socket, buf: bytearray) -> None:
    """Read one response with a content-length from ``sock`` (leftovers stay in ``buf``)."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).lower()
            start = head.find(b"content-length:")
            length = int(head[start + 15 :].split(b"\r\n", 1)[0]) if start >= 0 else 0
            total = end + 4 + length
            if len(buf) >= total:
                del buf[:total]
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed mid-response")
        buf += chunk


def keepalive_latencies(port: int, count: int, timeout: float = 10.0) -> list[float]:
    """``count`` sequential requests on one keep-alive connection; seconds per request."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(REQUEST)
            read_one(sock, buf)
            out.append(time.perf_counter() - start)
    return out


def new_connection_latencies(port: int, count: int, timeout: float = 10.0) -> list[float]:
    """``count`` requests, each on a fresh connection (connect + request + response)."""
    out = []
    for _ in range(count):
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(REQUEST)
            read_one(sock, bytearray())
        out.append(time.perf_counter() - start)
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@contextmanager
def crowd(port: int, idle: int, slow: int, interval: float = 1.0) -> Iterator[subprocess.Popen]:
    """Hold ``idle`` connections that never send a byte and ``slow`` ones that trickle a
    request head one byte per ``interval`` seconds (slowloris), from a separate process so
    their work never stalls the measuring client. Yields that process once every connection
    is open; it reports how many the server has dropped when told to stop."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.hardening.loadgen", str(port), str(idle), str(slow)]
        + [str(interval)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("ready"):
            raise RuntimeError(f"crowd failed to connect: {line!r}")
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def crowd_alive(proc: subprocess.Popen) -> int:
    """Ask the crowd process how many of its connections the server still keeps open."""
    assert proc.stdin and proc.stdout
    proc.stdin.write("count\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


def _crowd_main(port: int, idle: int, slow: int, interval: float) -> None:
    socks = []
    for _ in range(idle + slow):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setblocking(False)
        socks.append(s)
    slow_socks = socks[idle:]
    trickle = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100_000
    stop = threading.Event()

    def drip() -> None:
        # Spread the bytes over the interval instead of one burst per interval.
        position = 0
        pause = interval / max(1, len(slow_socks))
        while not stop.is_set():
            for s in slow_socks:
                try:
                    s.send(trickle[position : position + 1])
                except OSError:
                    pass  # dropped by the server; still_open() counts those
                time.sleep(pause)
            position += 1

    threading.Thread(target=drip, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            print(still_open(socks), flush=True)
    stop.set()


def still_open(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has not closed (a closed one reads EOF or errors)."""
    alive = 0
    for s in socks:
        try:
            data = s.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            alive += 1
            continue
        except OSError:
            continue
        if data:
            alive += 1
    return alive


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


if __name__ == "__main__":
    # python -m tests.hardening.loadgen PORT IDLE SLOW INTERVAL: the crowd process.
    raise_fd_limit(int(sys.argv[2]) + int(sys.argv[3]) + 100)
    _crowd_main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
