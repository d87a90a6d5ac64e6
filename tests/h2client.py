"""A small HTTP/2 client over a real socket, driving the ``h2`` library's frames by hand:
for what httpx does not expose (trailers, RST_STREAM, flow control, extended CONNECT) and
for sending the attacks the server must survive. Every read is bounded."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame


@dataclass
class Stream:
    """What arrived on one stream."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the error code of a RST_STREAM

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])


class H2Client:
    """One HTTP/2 connection (h2c with prior knowledge, or h2 by ALPN with ``tls``)."""

    def __init__(
        self,
        port: int,
        tls: ssl.SSLContext | None = None,
        window: int | None = None,
        enable_connect_protocol: bool = False,
    ) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
        self.sock = sock
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        if window is not None:
            # A small window: the server may send this much per stream before we open it.
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.streams: dict[int, Stream] = {}
        self.buffer = bytearray()
        self.events: list[h2.events.Event] = []
        self.closed = False
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.remote_settings: dict[int, int] = {}
        self.auto_window = window is None
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        """Bytes straight onto the connection, past the h2 state machine (attacks)."""
        self.sock.sendall(data)

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        end_stream: bool = True,
        authority: str = "localhost",
        protocol: str | None = None,
    ) -> int:
        """Open a stream; ``protocol`` makes it an extended CONNECT (RFC 8441)."""
        stream_id = self.conn.get_next_available_stream_id()
        head = [
            (":method", method),
            *([(":protocol", protocol)] if protocol else []),
            (":path", path),
            (":scheme", "http"),
            (":authority", authority),
            *(headers or []),
        ]
        self.conn.send_headers(stream_id, head, end_stream=end_stream and body is None)
        self.streams[stream_id] = Stream()
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=end_stream)
        self.flush()
        return stream_id

    def pump(self, timeout: float = 5.0) -> bool:
        """Read once (up to ``timeout``) and handle what came; False if nothing came."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return False
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.buffer += data
        # Frame by frame: the h2 library treats the connection as over at the first
        # GOAWAY, while a graceful GOAWAY lets the streams in flight finish; after it the
        # frames are read here (with the library's own frame and header decoders).
        while len(self.buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(bytes(self.buffer[:9])))
            if len(self.buffer) < 9 + length:
                break
            raw = bytes(self.buffer[: 9 + length])
            del self.buffer[: 9 + length]
            if self.goaway is None:
                for event in self.conn.receive_data(raw):
                    self.events.append(event)
                    self._handle(event)
            else:
                frame.parse_body(memoryview(raw[9:]))
                self._after_goaway(frame)
        if self.goaway is None:
            self.flush()
        return True

    def _after_goaway(self, frame: Frame) -> None:
        stream = self.streams.setdefault(frame.stream_id, Stream())
        if isinstance(frame, HeadersFrame):
            fields = self.conn.decoder.decode(frame.data, raw=True)
            if stream.headers:
                stream.trailers = fields
            else:
                stream.headers = fields
        elif isinstance(frame, DataFrame):
            stream.body += frame.data
        elif isinstance(frame, RstStreamFrame):
            stream.reset = frame.error_code
        elif isinstance(frame, GoAwayFrame):
            self.goaway = h2.events.ConnectionTerminated()
            self.goaway.error_code = frame.error_code
            self.goaway.last_stream_id = frame.last_stream_id
        if "END_STREAM" in frame.flags:
            stream.ended = True

    def _handle(self, event: h2.events.Event) -> None:
        stream = self.streams.setdefault(getattr(event, "stream_id", 0) or 0, Stream())
        if isinstance(event, h2.events.ResponseReceived):
            stream.headers = event.headers
        elif isinstance(event, h2.events.DataReceived):
            stream.body += event.data
            if self.auto_window and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            stream.trailers = event.headers
        elif isinstance(event, h2.events.StreamEnded):
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset):
            stream.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for code, setting in event.changed_settings.items():
                self.remote_settings[code] = setting.new_value

    def wait(self, stream_id: int, timeout: float = 10.0) -> Stream:
        """Read until ``stream_id`` ends or is reset."""
        deadline = time.monotonic() + timeout
        stream = self.streams[stream_id]
        while not (stream.ended or stream.reset is not None):
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                raise AssertionError(f"stream {stream_id} did not end: {stream}")
            self.pump(min(left, 1.0))
        return stream

    def wait_until(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("condition not met in time")
            if self.closed:
                raise AssertionError("connection closed")
            self.pump(min(left, 0.5))

    def reset(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id)
        self.flush()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
