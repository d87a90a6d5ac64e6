"""A raw HTTP/1.x client that shows what a client library would hide.

It sends exactly the bytes it is given and parses responses strictly by RFC 9112: the
status line as sent, header fields in order with their original case, and the framing the
server chose (``content-length``, ``chunked`` with every chunk, or ``close``). Malformed
framing raises ``WireError`` carrying the bytes seen, for use as evidence.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from dataclasses import dataclass, field

from compat.harness.endpoint import SERVER_NAME, Endpoint

STATUS_LINE = re.compile(rb"^HTTP/(\d)\.(\d) (\d{3}) ?(.*)$")
MAX_HEAD = 256 * 1024


class WireError(Exception):
    """The server sent something that is not valid HTTP/1.x framing."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw


class ConnectionClosed(WireError):
    """The server closed the connection before a complete response."""


@dataclass
class Response:
    """One response as it appeared on the wire."""

    status_line: bytes
    version: str
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    framing: str = "none"  # "content-length", "chunked", "close" or "none"
    chunks: list[bytes] = field(default_factory=list)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    raw: bytes = b""

    def header(self, name: str) -> bytes | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[bytes]:
        """Every value of header ``name`` in wire order."""
        key = name.lower().encode()
        return [v for k, v in self.headers if k.lower() == key]


def build_request(
    method: str,
    target: str,
    headers: list[tuple[str, str | bytes]] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
    host: str | None = "localhost",
    content_length: bool = True,
) -> bytes:
    """Bytes of a request; ``host=None`` omits ``Host``; a body gets ``Content-Length``
    unless ``content_length`` is false (for hand-framed bodies)."""
    lines = [f"{method} {target} {version}".encode()]
    if host is not None:
        lines.append(b"Host: " + host.encode())
    for name, value in headers or []:
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(name.encode("latin-1") + b": " + raw)
    if body and content_length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Connection:
    """One client connection with a read buffer; every read is bounded by a timeout. With
    ``tls`` the connection is wrapped (the handshake bounded by the same timeout) and
    ``alpn`` is the protocol the server chose."""

    def __init__(
        self, endpoint: Endpoint, timeout: float = 5.0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.sock = endpoint.connect(timeout)
        self.alpn: str | None = None
        if tls is not None:
            self.sock = wrap_tls(self.sock, tls)
            self.alpn = self.sock.selected_alpn_protocol()
        self.timeout = timeout
        self.buffer = b""
        self.eof = False
        self.received = b""  # everything read, for evidence

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        """Half-close: tell the server no more request bytes will come."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _fill(self, deadline: float) -> bool:
        """Read more bytes into the buffer; ``False`` on EOF. Raises ``TimeoutError``."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for the server")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        self.received += data
        return True

    def _read_line(self, deadline: float) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > MAX_HEAD:
                raise WireError("line too long", self.received)
            if not self._fill(deadline):
                raise ConnectionClosed("connection closed mid-line", self.received)
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            if not self._fill(deadline):
                raise ConnectionClosed(
                    f"connection closed after {len(self.buffer)} of {n} body bytes",
                    self.received,
                )
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_response(self, method: str = "GET", timeout: float | None = None) -> Response:
        """Read the next response, interim (1xx) ones included. ``method`` matters: a
        response to HEAD has no body whatever its headers say."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        start = len(self.received) - len(self.buffer)
        status_line = self._read_line(deadline)
        m = STATUS_LINE.match(status_line)
        if not m:
            raise WireError(f"bad status line {status_line!r}", self.received)
        headers = self._read_fields(deadline)
        status = int(m.group(3))
        response = Response(
            status_line=status_line,
            version=f"{m.group(1).decode()}.{m.group(2).decode()}",
            status=status,
            reason=m.group(4),
            headers=headers,
        )
        self._read_body(response, method, deadline)
        end = len(self.received) - len(self.buffer)
        response.raw = self.received[start:end]
        return response

    def read_final(self, method: str = "GET", timeout: float | None = None) -> list[Response]:
        """Read responses up to and including the first final (non-1xx) one."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        responses = []
        while True:
            response = self.read_response(method, max(0.01, deadline - time.monotonic()))
            responses.append(response)
            if response.status >= 200 or response.status == 101:
                return responses

    def _read_fields(self, deadline: float) -> list[tuple[bytes, bytes]]:
        fields = []
        while True:
            line = self._read_line(deadline)
            if not line:
                return fields
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise WireError(f"bad header line {line!r}", self.received)
            fields.append((name, value.strip(b" \t")))

    def _read_body(self, response: Response, method: str, deadline: float) -> None:
        status = response.status
        # RFC 9112 §6.3: these responses end at the empty line, whatever the headers say.
        if method == "HEAD" or status < 200 or status in (204, 304):
            response.framing = "none"
            return
        encodings = b",".join(response.header_values("transfer-encoding")).lower()
        lengths = response.header_values("content-length")
        if encodings:
            if encodings.replace(b" ", b"").split(b",")[-1] != b"chunked":
                response.framing = "close"
                response.body = self._read_to_close(deadline)
                return
            response.framing = "chunked"
            self._read_chunked(response, deadline)
        elif lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                raise WireError(f"bad content-length {lengths!r}", self.received)
            response.framing = "content-length"
            response.body = self._read_exact(int(lengths[0]), deadline)
        else:
            response.framing = "close"
            response.body = self._read_to_close(deadline)

    def _read_chunked(self, response: Response, deadline: float) -> None:
        while True:
            size_line = self._read_line(deadline)
            size_text = size_line.split(b";", 1)[0].strip()
            if not size_text or not re.fullmatch(rb"[0-9a-fA-F]+", size_text):
                raise WireError(f"bad chunk size line {size_line!r}", self.received)
            size = int(size_text, 16)
            if size == 0:
                response.trailers = self._read_fields(deadline)
                response.body = b"".join(response.chunks)
                return
            data = self._read_exact(size, deadline)
            if self._read_exact(2, deadline) != b"\r\n":
                raise WireError("chunk data not followed by CRLF", self.received)
            response.chunks.append(data)

    def _read_to_close(self, deadline: float) -> bytes:
        while self._fill(deadline):
            pass
        data, self.buffer = self.buffer, b""
        return data

    def read_until(self, marker: bytes, timeout: float) -> bool:
        """Read until ``marker`` has been received; ``False`` on EOF or timeout."""
        deadline = time.monotonic() + timeout
        while marker not in self.received:
            try:
                if not self._fill(deadline):
                    return False
            except TimeoutError:
                return False
        return True

    def closed_within(self, timeout: float) -> tuple[bool, bytes]:
        """Whether the server closes the connection within ``timeout`` seconds, and any
        bytes that arrived meanwhile (a clean close after a response sends none)."""
        deadline = time.monotonic() + timeout
        extra = b""
        before = len(self.buffer)
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            return False, self.buffer[before:]
        except OSError:
            self.eof = True
        extra = self.buffer[before:]
        return True, extra


def wrap_tls(sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
    """The TLS client side of ``sock`` (closed if the handshake fails), for the name the
    run's certificate carries."""
    try:
        return context.wrap_socket(sock, server_hostname=SERVER_NAME)
    except BaseException:
        sock.close()
        raise


def exchange(
    endpoint: Endpoint, request: bytes, method: str = "GET", timeout: float = 5.0
) -> tuple[list[Response], Connection]:
    """Send one request on a new connection, read up to the final response. The caller
    owns (and must close) the returned connection."""
    conn = Connection(endpoint, timeout)
    try:
        conn.send(request)
        return conn.read_final(method, timeout), conn
    except BaseException:
        conn.close()
        raise
