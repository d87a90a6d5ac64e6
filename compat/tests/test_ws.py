"""The WebSocket client's handshake key and frame codec."""

from __future__ import annotations

import socket
import struct

from compat.harness.endpoint import Endpoint
from compat.harness.wire import Connection, Response
from compat.harness.ws import CLOSE, TEXT, Frame, WebSocket, accept_key


def test_accept_key_matches_rfc_6455_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def pair() -> tuple[WebSocket, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    conn = Connection(Endpoint(port=listener.getsockname()[1]), 2.0)
    server, _ = listener.accept()
    listener.close()
    return WebSocket(conn, Response(b"", "1.1", 101, b"", [])), server


def unmask(data: bytes) -> tuple[int, bytes]:
    n = data[1] & 0x7F
    mask, payload = data[2:6], data[6 : 6 + n]
    return data[0], bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_client_frames_are_masked() -> None:
    ws, server = pair()
    try:
        ws.send_text("hé")
        data = server.recv(100)
        assert data[1] & 0x80
        assert unmask(data) == (0x80 | TEXT, "hé".encode())
    finally:
        server.close()
        ws.conn.close()


def test_server_frames_and_close_payload() -> None:
    ws, server = pair()
    try:
        payload = struct.pack("!H", 4001) + b"bye"
        server.sendall(bytes([0x01, 2]) + b"ab" + bytes([0x80, 2]) + b"cd")
        server.sendall(bytes([0x80 | CLOSE, len(payload)]) + payload)
        message = ws.recv_message(2.0)
        assert (message.opcode, message.payload) == (TEXT, b"abcd")
        close = ws.recv_message(2.0)
        assert (close.close_code, close.close_reason) == (4001, "bye")
    finally:
        server.close()
        ws.conn.close()


def test_close_frame_without_code() -> None:
    assert Frame(True, CLOSE, b"").close_code is None
