"""Mixed client traffic for the soak (``tests/hardening/soak.py --mixed``): one thread per
kind of client, each looping until told to stop, counting what went right and what went
wrong. Every connection is a raw socket, so every failure is seen as the client sees it.

Kinds: keep-alive requests, pipelined batches, uploads (content-length and chunked),
chunked streams, WebSocket echo sessions, slow clients (a trickled head, a body at a few
KiB/s) and abrupt disconnects (the injected faults: a reset mid-head, mid-upload and
mid-stream, a FIN before the response, a reset after a WebSocket handshake). Only the
abrupt kind's own resets are expected; anything else that fails is an error.

Clients open at most a few dozen connections a second, so a 30-minute run stays well
inside the loopback's ephemeral ports (closed connections sit in TIME_WAIT for 60 s).
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests import wsframes
from tests.hardening.loadgen import read_one

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@dataclass
class Tally:
    """What one kind of client did."""

    ok: int = 0
    injected: int = 0
    errors: int = 0
    examples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.examples) < 5:
            self.examples.append(what)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _read_chunked(sock: socket.socket, buf: bytearray) -> int:
    """Read one chunked response from ``sock`` (leftovers stay in ``buf``); its body size."""

    def fill(predicate: Callable[[], bool]) -> None:
        while not predicate():
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-response")
            buf.extend(chunk)

    fill(lambda: b"\r\n\r\n" in buf)
    head_end = buf.index(b"\r\n\r\n")
    if not buf.startswith(b"HTTP/1.1 200"):
        raise AssertionError(bytes(buf[:40]))
    del buf[: head_end + 4]
    total = 0
    while True:
        fill(lambda: b"\r\n" in buf)
        line_end = buf.index(b"\r\n")
        size = int(bytes(buf[:line_end]), 16)
        end = line_end + 2 + size + 2
        fill(lambda end=end: len(buf) >= end)
        del buf[:end]
        total += size
        if size == 0:
            return total


# -- the kinds ---------------------------------------------------------------------------


def keepalive(port: int) -> int:
    with _connect(port) as sock:
        buf = bytearray()
        for _ in range(100):
            sock.sendall(GET)
            read_one(sock, buf)
    return 100


def pipelined(port: int) -> int:
    with _connect(port) as sock:
        buf = bytearray()
        for _ in range(10):
            sock.sendall(GET * 16)
            for _ in range(16):
                read_one(sock, buf)
    return 160


def _response_body(sock: socket.socket, buf: bytearray) -> bytes:
    """One content-length response's body."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the head")
        buf.extend(chunk)
    head_end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:head_end]).lower()
    if not head.startswith(b"http/1.1 200"):
        raise AssertionError(head[:40])
    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
    while len(buf) < head_end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buf.extend(chunk)
    body = bytes(buf[head_end + 4 : head_end + 4 + length])
    del buf[: head_end + 4 + length]
    return body


def upload(port: int) -> int:
    payload = b"u" * (256 * 1024)
    with _connect(port) as sock:
        buf = bytearray()
        for i in range(20):
            if i % 2:
                sock.sendall(
                    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload)
                    + payload
                )
                expected = len(payload)
            else:
                chunks = b"".join(b"%x\r\n%s\r\n" % (16384, b"c" * 16384) for _ in range(4))
                sock.sendall(
                    b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + chunks
                    + b"0\r\n\r\n"
                )
                expected = 4 * 16384
            body = _response_body(sock, buf)
            if body != b"%d" % expected:
                raise AssertionError(f"upload of {expected} answered {body!r}")
    return 20


def stream(port: int) -> int:
    with _connect(port) as sock:
        buf = bytearray()
        for _ in range(20):
            sock.sendall(b"GET /stream?n=32&size=8192 HTTP/1.1\r\nHost: x\r\n\r\n")
            if _read_chunked(sock, buf) != 32 * 8192:
                raise AssertionError("short stream")
    return 20


def websocket(port: int) -> int:
    sock, head = wsframes.handshake(port, "/ws")
    with sock:
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(head[:40])
        for i in range(20):
            text = b"message %d" % i
            sock.sendall(wsframes.frame(0x1, text))
            if wsframes.read_frame(sock) != (0x1, True, text):
                raise AssertionError("bad echo")
        sock.sendall(wsframes.frame(0x8, wsframes.close_payload(1000)))
        if wsframes.read_close_code(sock) != 1000:
            raise AssertionError("no close echo")
    return 20


def slow(port: int) -> int:
    with _connect(port) as sock:
        # A head trickled over about a second (well inside the 5 s header timeout) ...
        head = b"GET /slow?s=0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
        for i in range(0, len(head), 4):
            sock.sendall(head[i : i + 4])
            time.sleep(0.1)
        buf = bytearray()
        if _response_body(sock, buf) != b"ok":
            raise AssertionError("slow GET")
        # ... and a 16 KiB body at about 8 KiB/s (over the minimum rate).
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 16384\r\n\r\n")
        for _ in range(16):
            sock.sendall(b"b" * 1024)
            time.sleep(0.125)
        if _response_body(sock, buf) != b"16384":
            raise AssertionError("slow upload")
    return 2


_ABRUPT = itertools.count()


def abrupt(port: int) -> int:
    """One injected fault, a different one each call."""
    kind = next(_ABRUPT) % 5
    if kind == 4:  # a reset right after a WebSocket handshake
        ws, _ = wsframes.handshake(port, "/ws")
        _reset(ws)
        return 1
    sock = _connect(port)
    if kind == 0:  # reset in the middle of a request head
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ")
        time.sleep(0.01)
        _reset(sock)
    elif kind == 1:  # reset in the middle of an upload
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        sock.sendall(b"a" * 100_000)
        _reset(sock)
    elif kind == 2:  # reset in the middle of a stream
        sock.sendall(b"GET /stream?n=1000&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(65536)
        _reset(sock)
    else:  # a full close before the response
        sock.sendall(b"GET /slow?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.close()
    return 1


KINDS: dict[str, Callable[[int], int]] = {
    "keepalive": keepalive,
    "pipelined": pipelined,
    "upload": upload,
    "stream": stream,
    "websocket": websocket,
    "slow": slow,
    "abrupt": abrupt,
}
# The least time between two iterations of a kind (one iteration is one connection): caps
# the connection rate, and keeps the whole load to about half a core of server time, so a
# long soak does not starve a shared machine.
PACE = {
    "keepalive": 0.2,
    "pipelined": 0.5,
    "upload": 1.0,
    "stream": 0.5,
    "websocket": 0.5,
    "slow": 0.0,
    "abrupt": 0.1,
}


class Traffic:
    """Every kind running in its own thread until ``stop``; ``pause`` lets each finish its
    iteration and wait (so the server's descriptors can be counted with no client
    connection open)."""

    def __init__(self, port: int, kinds: dict[str, Callable[[int], int]] = KINDS) -> None:
        self.port = port
        self.tallies = {name: Tally() for name in kinds}
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._idle = {name: threading.Event() for name in kinds}
        self._threads = [
            threading.Thread(target=self._loop, args=(name, fn), daemon=True)
            for name, fn in kinds.items()
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _loop(self, name: str, fn: Callable[[int], int]) -> None:
        tally = self.tallies[name]
        while not self._stop.is_set():
            if not self._running.is_set():
                self._idle[name].set()
                self._running.wait()
                self._idle[name].clear()
                continue
            started = time.monotonic()
            try:
                done = fn(self.port)
                if name == "abrupt":
                    tally.injected += done
                else:
                    tally.ok += done
            except Exception as exc:  # noqa: BLE001 - counted and reported
                tally.error(f"{type(exc).__name__}: {exc}")
            left = PACE.get(name, 0.1) - (time.monotonic() - started)
            if left > 0:
                time.sleep(left)
        self._idle[name].set()

    def pause(self, timeout: float = 30) -> None:
        if not any(t.is_alive() for t in self._threads):
            return
        self._running.clear()
        deadline = time.monotonic() + timeout
        for event in self._idle.values():
            event.wait(max(0.0, deadline - time.monotonic()))

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        for t in self._threads:
            t.join(30)

    def totals(self) -> dict[str, dict[str, int]]:
        return {
            name: {"ok": t.ok, "injected": t.injected, "errors": t.errors}
            for name, t in self.tallies.items()
        }

    def errors(self) -> list[str]:
        return [f"{name}: {e}" for name, t in self.tallies.items() for e in t.examples]
