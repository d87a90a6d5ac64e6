"""A minimal RFC 6455 client on top of ``wire.Connection``: the opening handshake and frame
I/O, with nothing negotiated (no extensions) so every frame is seen as sent."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import time
from dataclasses import dataclass

from compat.harness.wire import Connection, ConnectionClosed, Response, WireError, build_request

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def handshake_request(
    target: str, host: str, headers: list[tuple[str, str | bytes]] | None = None
) -> tuple[bytes, bytes]:
    """The upgrade request and the key it carries."""
    key = base64.b64encode(os.urandom(16))
    fields: list[tuple[str, str | bytes]] = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
        *(headers or []),
    ]
    return build_request("GET", target, fields, host=host), key


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The status code of a close frame (``None`` if it carried none)."""
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8", "replace")


def client_frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """One masked frame, as a client must send it (RFC 6455 §5.3)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def parse_frame(data: bytes | bytearray) -> tuple[Frame, int] | None:
    """The first server frame in ``data`` and its length in bytes, or ``None`` while it is
    incomplete. A masked server frame raises ``WireError`` (RFC 6455 §5.1)."""
    if len(data) < 2:
        return None
    fin, opcode = bool(data[0] & 0x80), data[0] & 0x0F
    if data[1] & 0x80:
        raise WireError("server frame is masked (RFC 6455 §5.1 forbids it)", bytes(data[:64]))
    n, at = data[1] & 0x7F, 2
    if n == 126:
        if len(data) < 4:
            return None
        n, at = struct.unpack("!H", bytes(data[2:4]))[0], 4
    elif n == 127:
        if len(data) < 10:
            return None
        n, at = struct.unpack("!Q", bytes(data[2:10]))[0], 10
    if len(data) < at + n:
        return None
    return Frame(fin, opcode, bytes(data[at : at + n])), at + n


class WebSocket:
    """An open WebSocket over ``conn`` (after a 101)."""

    def __init__(self, conn: Connection, response: Response) -> None:
        self.conn = conn
        self.response = response

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True) -> None:
        """Send one masked frame (clients must mask, RFC 6455 §5.3)."""
        self.conn.send(client_frame(opcode, payload, fin))

    def send_text(self, text: str) -> None:
        self.send_frame(TEXT, text.encode())

    def send_binary(self, data: bytes) -> None:
        self.send_frame(BINARY, data)

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
        self.send_frame(CLOSE, payload)

    def recv_frame(self, timeout: float) -> Frame:
        """The next frame. Raises ``TimeoutError``, ``ConnectionClosed`` or ``WireError``."""
        deadline = time.monotonic() + timeout
        conn = self.conn
        head = conn._read_exact(2, deadline)
        fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
        if head[1] & 0x80:
            raise WireError("server frame is masked (RFC 6455 §5.1 forbids it)", conn.received)
        n = head[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", conn._read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", conn._read_exact(8, deadline))[0]
        return Frame(fin, opcode, conn._read_exact(n, deadline))

    def recv_message(self, timeout: float) -> Frame:
        """The next data or close frame, answering nothing and skipping pongs/pings;
        continuation frames are joined into one message."""
        deadline = time.monotonic() + timeout
        message: Frame | None = None
        while True:
            frame = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if frame.opcode in (PING, PONG):
                continue
            if frame.opcode == CLOSE:
                return frame
            if message is None:
                message = frame
            else:
                message.payload += frame.payload
            if frame.fin:
                message.fin = True
                return message

    def closed_within(self, timeout: float) -> tuple[bool, Frame | None]:
        """Read until the server closes (TCP) or sends a close frame: ``(ended, close)``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = self.recv_frame(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                return False, None
            except (ConnectionClosed, OSError):
                return True, None
            if frame.opcode == CLOSE:
                return True, frame


def connect(
    conn: Connection, target: str, host: str, headers: list[tuple[str, str | bytes]] | None
) -> tuple[bytes, Response, WebSocket | None, float]:
    """Perform the handshake on ``conn``: the request sent, the response, the socket if it
    is a valid 101, and the seconds the server took to answer."""
    request, key = handshake_request(target, host, headers)
    sent = time.monotonic()
    conn.send(request)
    response = conn.read_final("GET")[-1]
    elapsed = time.monotonic() - sent
    if response.status != 101:
        return request, response, None, elapsed
    if response.header("sec-websocket-accept") != accept_key(key):
        raise WireError("101 with a wrong Sec-WebSocket-Accept", conn.received)
    return request, response, WebSocket(conn, response), elapsed
