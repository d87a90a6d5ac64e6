"""Memory per idle connection: Sandman and its peers, same app, same machine, one run.

For each server and each kind of connection, a fresh server (one worker, on CPU
``--server-cpu``) is started; after a warm-up of ``--warmup`` connections of that kind,
``--conns`` clients connect one after another, each completes one exchange and then sits
idle:

- ``http``: an HTTP/1.1 keep-alive connection after one GET (``apps:hello``);
- ``ws``: a WebSocket that offered no compression, after one echoed message;
- ``ws-deflate``: a WebSocket that offered permessage-deflate (``client_max_window_bits``,
  as browsers do), after one echoed message (compressed when the server agreed).

The server's RSS (every process of its group) is read before the clients connect, with
all of them connected and idle (after ``--settle`` seconds), and ``--settle`` seconds after
they all closed. Printed: KiB per connection (RSS with the connections minus before, over
N) and the RSS after close against the RSS before.

Usage: python bench/conn_memory.py [--servers sandman,uvicorn,granian]
       [--modes http,ws,ws-deflate] [--conns 10000] [--settle 3] [--baseline-python PATH]
The descriptor limit is raised to the hard limit; N is capped by it (each server and the
client need one descriptor per connection). ``baseline`` (with ``--baseline-python``) is
Sandman as installed for another interpreter, as in bench/run.py. Peers are installed into
bench/run.py's virtualenv on first use. Idle timeouts and WebSocket pings are turned off
(set to an hour) for every server so nothing closes the idle clients.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import ensure_venv, free_port, group_pids, server_command, stop, wait_ready  # noqa: E402

MODES = ("http", "ws", "ws-deflate")
# A message an app might send: repetitive enough that deflate has something to do.
MESSAGE = (
    '{"type": "update", "channel": "prices", "items": ['
    + ", ".join(f'{{"id": {i}, "price": {100 + i}.25, "currency": "EUR"}}' for i in range(4))
    + "]}"
).encode()
HOUR = "3600"
# A server that stops answering fails its row instead of stalling the run.
CLIENT_TIMEOUT = 30.0


def extra_flags(server: str) -> list[str]:
    """Flags that keep idle clients open for the whole measurement."""
    if server in ("sandman", "baseline", "uvicorn"):
        return ["--timeout-keep-alive", HOUR, "--ws-ping-interval", HOUR, "--ws-ping-timeout", HOUR]
    if server == "granian":
        # hyper's header-read timeout also bounds a keep-alive connection's wait; granian
        # takes at most a minute, which the measurement fits in. Its backpressure (1,024
        # by default) holds every connection past it in the listen queue, unanswered.
        return ["--http1-header-read-timeout", "60000", "--backpressure", "65536"]
    return []


def group_rss_kib(pid: int) -> int:
    total = 0
    for p in group_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP response head and whatever followed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def http_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head, rest = read_head(sock)
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"unexpected response: {head[:80]!r}")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    # Without a length the body is chunked (uvicorn): it ends with the empty chunk.
    done = (
        (lambda body: len(body) >= int(m.group(1)))
        if m
        else (lambda body: body.endswith(b"0\r\n\r\n"))
    )
    while not done(rest):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-response")
        rest += chunk
    return sock


def recv_exact(sock: socket.socket, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-frame")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def read_frame(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """One unmasked frame from the server: (first byte, payload)."""
    first, second = recv_exact(sock, 2, buf)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", recv_exact(sock, 2, buf))
    elif length == 127:
        (length,) = struct.unpack("!Q", recv_exact(sock, 8, buf))
    return first, recv_exact(sock, length, buf)


def masked_frame(payload: bytes, compressed: bool) -> bytes:
    first = 0x81 | (0x40 if compressed else 0)  # FIN, text, RSV1 when compressed
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    else:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    key = os.urandom(4)
    mask = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return header + key + body


def ws_client(port: int, deflate: bool) -> tuple[socket.socket, bool]:
    """A WebSocket after one echoed message; whether permessage-deflate was agreed."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    offer = "permessage-deflate; client_max_window_bits"
    offer = f"Sec-WebSocket-Extensions: {offer}\r\n" if deflate else ""
    sock.sendall(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        ).encode()
    )
    head, rest = read_head(sock)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"no upgrade: {head[:80]!r}")
    ext = re.search(rb"(?im)^sec-websocket-extensions:\s*(.+?)\s*$", head)
    agreed = ext is not None and b"permessage-deflate" in ext.group(1)
    if agreed:
        bits = re.search(rb"client_max_window_bits=(\d+)", ext.group(1))
        wbits = int(bits.group(1)) if bits else 15
        # One message only, so a fresh compressor serves whatever takeover was agreed.
        compressor = zlib.compressobj(6, zlib.DEFLATED, -max(wbits, 9))
        payload = compressor.compress(MESSAGE) + compressor.flush(zlib.Z_SYNC_FLUSH)
        sock.sendall(masked_frame(payload[:-4], compressed=True))
    else:
        sock.sendall(masked_frame(MESSAGE, compressed=False))
    first, _ = read_frame(sock, bytearray(rest))
    if first & 0x0F != 1:
        raise ConnectionError(f"expected the echoed text frame, got opcode {first & 0x0F}")
    return sock, agreed


def open_clients(mode: str, port: int, n: int) -> tuple[list[socket.socket], bool | None]:
    clients: list[socket.socket] = []
    agreed: bool | None = None
    for _ in range(n):
        if mode == "http":
            clients.append(http_client(port))
        else:
            sock, agreed = ws_client(port, deflate=mode == "ws-deflate")
            clients.append(sock)
    return clients, agreed


def close_all(clients: list[socket.socket]) -> None:
    for sock in clients:
        sock.close()
    clients.clear()


@dataclass
class Row:
    server: str
    mode: str
    conns: int
    before_kib: int
    with_kib: int
    after_close_kib: int
    seconds_to_open: float
    note: str = ""

    @property
    def per_conn_kib(self) -> float:
        return (self.with_kib - self.before_kib) / self.conns


def measure(server: str, mode: str, args: argparse.Namespace, peer_bin: Path) -> Row:
    port = free_port()
    python = args.baseline_python if server == "baseline" else sys.executable
    command = server_command(
        server, "apps:ws_echo", port, peer_bin, 1, ws=mode != "http", python=python
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        ["taskset", "-c", args.server_cpu, *command, *extra_flags(server)],
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if wait_ready(port, "/", proc) is None:
            return Row(server, mode, 0, 0, 0, 0, 0.0, "did not start")
        warm, _ = open_clients(mode, port, args.warmup)
        close_all(warm)
        time.sleep(args.settle)
        before = group_rss_kib(proc.pid)
        started = time.monotonic()
        clients, agreed = open_clients(mode, port, args.conns)
        opened = time.monotonic() - started
        time.sleep(args.settle)
        with_conns = group_rss_kib(proc.pid)
        close_all(clients)
        time.sleep(args.settle)
        after = group_rss_kib(proc.pid)
        note = "deflate declined" if mode == "ws-deflate" and agreed is False else ""
        return Row(server, mode, args.conns, before, with_conns, after, opened, note)
    except (OSError, ConnectionError) as exc:
        return Row(server, mode, 0, 0, 0, 0, 0.0, f"failed: {exc}")
    finally:
        stop(proc)


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft descriptor limit as far as the hard limit allows; the connections
    that then fit (servers inherit the limit; the client holds one descriptor each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted + 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target - 256


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="sandman,uvicorn,granian")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--conns", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before each reading")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--venv", default=os.environ.get("BENCH_VENV", str(HERE / ".bench-venv")))
    parser.add_argument("--baseline-python", help="the interpreter of the 'baseline' server")
    args = parser.parse_args()

    servers = args.servers.split(",")
    modes = args.modes.split(",")
    if unknown := set(modes) - set(MODES):
        print(f"unknown modes: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if "baseline" in servers and not args.baseline_python:
        print("the baseline server needs --baseline-python", file=sys.stderr)
        return 2
    fits = raise_fd_limit(args.conns)
    if args.conns > fits:
        print(f"descriptor hard limit: {args.conns} connections capped to {fits}", file=sys.stderr)
        args.conns = fits
    peer_bin = ensure_venv(Path(args.venv)) if set(servers) & {"uvicorn", "granian"} else Path()

    rows = []
    for mode in modes:
        for server in servers:
            row = measure(server, mode, args, peer_bin)
            rows.append(row)
            print(
                f"{server:<9} {mode:<10} {row.conns:>6} conns in {row.seconds_to_open:5.1f} s:"
                f" {row.per_conn_kib if row.conns else 0:7.1f} KiB each;"
                f" RSS {row.before_kib / 1024:.1f} -> {row.with_kib / 1024:.1f}"
                f" -> {row.after_close_kib / 1024:.1f} MiB after close {row.note}",
                flush=True,
            )
    print()
    print(
        f"{args.conns} idle connections, each after one exchange; RSS read {args.settle:g} s"
        " after the last client connected and again after they all closed."
    )
    print()
    print(
        "| connections | server | KiB per connection | RSS before MiB | with them MiB"
        " | after close MiB | note |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        if not r.conns:
            print(f"| {r.mode} | {r.server} | — | — | — | — | {r.note} |")
            continue
        print(
            f"| {r.mode} | {r.server} | {r.per_conn_kib:.1f} | {r.before_kib / 1024:.1f}"
            f" | {r.with_kib / 1024:.1f} | {r.after_close_kib / 1024:.1f} | {r.note} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
