"""Raw WebSocket frames for tests that a client library would not let us send."""

from __future__ import annotations

import base64
import os
import socket
import struct


def handshake(
    port: int, path: str = "/", extra: bytes = b"", timeout: float = 5.0
) -> tuple[socket.socket, bytes]:
    """Open a TCP connection and do the upgrade; returns the socket and the response head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return sock, head


def frame(
    opcode: int, payload: bytes, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """Encode one frame (client frames are masked)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", first, mask_bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, bool, bytes]:
    """Read one (unmasked, server) frame: (opcode, fin, payload)."""
    b1, b2 = _recv_exact(sock, 2)
    n = b2 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", _recv_exact(sock, 2))
    elif n == 127:
        (n,) = struct.unpack("!Q", _recv_exact(sock, 8))
    return b1 & 0x0F, bool(b1 & 0x80), _recv_exact(sock, n)


def read_close_code(sock: socket.socket) -> int | None:
    """Read frames until a close frame; return its code (None if the socket just closed)."""
    try:
        while True:
            opcode, _, payload = read_frame(sock)
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    except (ConnectionError, OSError):
        return None
