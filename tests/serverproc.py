"""Start a server as a subprocess on a free port, read its logs, stop it by PID.

Every wait is bounded; every process started is stopped (SIGINT, then SIGKILL).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNNING = re.compile(r"running on (?:http|https)://[^ ]*:(\d+) ")


class ServerProcess:
    """A running server: its port, process and captured output."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.port = 0
        self._lines: list[str] = []
        self._out: list[str] = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._pump, args=(proc.stderr, self._lines), daemon=True),
            threading.Thread(target=self._pump, args=(proc.stdout, self._out), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _pump(self, stream, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._lock:
                sink.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def stderr(self) -> str:
        with self._lock:
            return "\n".join(self._lines)

    @property
    def stdout(self) -> str:
        with self._lock:
            return "\n".join(self._out)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(
        self, pattern: str, timeout: float = 10.0, stream: str = "stderr"
    ) -> re.Match[str]:
        """Wait until a line matching ``pattern`` appears in the output."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            text = self.stderr if stream == "stderr" else self.stdout
            m = rx.search(text)
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.1)
                text = self.stderr if stream == "stderr" else self.stdout
                m = rx.search(text)
                if m:
                    return m
                raise AssertionError(
                    f"server exited ({self.proc.returncode}) before {pattern!r}:\n{self.stderr}"
                )
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {pattern!r}:\n{self.stderr}\n{self.stdout}")

    def send_signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for exit and return the status; also waits for the log readers."""
        rc = self.proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=2)
        return rc

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        self.send_signal(sig)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sandman_asgi", *args]


def spawn(
    args: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    pass_fds: tuple[int, ...] = (),
) -> ServerProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env["PYTHONUNBUFFERED"] = "1"
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=str(cwd or ROOT),
        pass_fds=pass_fds,
        start_new_session=True,
    )
    return ServerProcess(proc)


@contextmanager
def sandman(
    app: str = "tests.apps:hello",
    *flags: str,
    env: dict[str, str] | None = None,
    ready: bool = True,
    cwd: Path | None = None,
    pass_fds: tuple[int, ...] = (),
    port: bool = True,
) -> Iterator[ServerProcess]:
    """Run ``sandman APP --port 0 FLAGS`` and yield it once it is accepting."""
    extra = ["--port", "0"] if port else []
    server = spawn(command(app, *extra, *flags), env=env, cwd=cwd, pass_fds=pass_fds)
    try:
        if ready:
            m = server.wait_for(
                r"running on (?:http|https)://[^ ]*:(\d+) |running on (unix )?socket"
            )
            if m.group(1):
                server.port = int(m.group(1))
        yield server
    finally:
        if server.proc.poll() is None:
            try:
                server.stop(signal.SIGINT, timeout=10)
            except subprocess.TimeoutExpired:
                pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_exchange(
    port: int,
    data: bytes,
    timeout: float = 5.0,
    until_close: bool = True,
    host: str = "127.0.0.1",
    half_close: bool = False,
) -> bytes:
    """Send raw bytes, read until the server closes (or ``timeout`` of silence).

    ``half_close``: signal EOF after sending, so a server waiting for more bytes need not
    wait; a server that closed while the bytes were still going out is not an error (what
    it answered is still read)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            if not half_close:
                raise
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not until_close:
                break
        return b"".join(chunks)


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything ``sock`` receives until the server closes it (the socket's own timeout,
    if any, bounds each wait; unlike ``raw_exchange``, a timeout or reset is an error)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_response(
    sock: socket.socket, timeout: float = 5.0
) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Read one HTTP/1.1 response (content-length or chunked) from ``sock``."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before head: {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0]
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if status.split()[1] in (b"100",):
        return status, headers, rest
    if b"content-length" in headers:
        n = int(headers[b"content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-body")
            rest += chunk
        body = rest[:n]
    elif headers.get(b"transfer-encoding") == b"chunked":
        body = b""

        def more() -> bytes:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-body")
            return chunk

        while True:
            while b"\r\n" not in rest:
                rest += more()
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += more()
            body += rest[:size]
            rest = rest[size + 2 :]
            if size == 0:
                break
    else:
        body = rest
    return status, headers, body
