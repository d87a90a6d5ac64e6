"""WebSockets over HTTP/2 (RFC 8441): an extended CONNECT opens a stream whose DATA frames
carry RFC 6455 frames, as on an upgraded HTTP/1.1 connection (no extensions negotiated)."""

from __future__ import annotations

import time

from compat.harness.h2wire import H2Client, H2Response
from compat.harness.wire import ConnectionClosed
from compat.harness.ws import BINARY, CLOSE, PING, PONG, TEXT, Frame, client_frame, parse_frame

# SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).
ENABLE_CONNECT_PROTOCOL = 0x8


def offers_extended_connect(client: H2Client) -> bool:
    """Whether the server's SETTINGS allow an extended CONNECT (RFC 8441 §3)."""
    return client.remote_settings.get(ENABLE_CONNECT_PROTOCOL) == 1


class H2WebSocket:
    """An open WebSocket on one stream of ``client`` (after a 2xx to the CONNECT)."""

    def __init__(self, client: H2Client, stream_id: int) -> None:
        self.client = client
        self.stream_id = stream_id
        self.offset = 0  # bytes of the stream's data already parsed into frames

    @property
    def stream(self) -> H2Response:
        return self.client.streams[self.stream_id]

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True) -> None:
        self.client.send_data(self.stream_id, client_frame(opcode, payload, fin))

    def send_text(self, text: str) -> None:
        self.send_frame(TEXT, text.encode())

    def send_binary(self, data: bytes) -> None:
        self.send_frame(BINARY, data)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        self.send_frame(CLOSE, code.to_bytes(2, "big") + reason.encode())

    def recv_frame(self, timeout: float) -> Frame:
        """The next frame. Raises ``TimeoutError``, or ``ConnectionClosed`` once the stream
        (or the connection) ended without one."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.stream.body
            parsed = parse_frame(data[self.offset :])
            if parsed is not None:
                frame, size = parsed
                self.offset += size
                return frame
            if self.stream.done or self.client.closed:
                raise ConnectionClosed("the stream ended", data[self.offset :][:200])
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no WebSocket frame in time")
            self.client.pump(min(left, 0.5))

    def recv_message(self, timeout: float) -> Frame:
        """The next data or close frame (pings and pongs skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if frame.opcode not in (PING, PONG):
                return frame

    def closed_within(self, timeout: float) -> tuple[bool, Frame | None]:
        """Read until a close frame or the end of the stream: ``(ended, close)``."""
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
