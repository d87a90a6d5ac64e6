"""An HTTP/2 client for the checks, on the ``h2`` library: by prior knowledge on a plain
connection (h2c, RFC 9113 §3.3) or over TLS by ALPN ``h2`` (RFC 9113 §3.2).

It shows what the checks judge and a client library would hide: every header field of each
stream as it arrived (pseudo-headers apart, no validation or normalisation of what the server
sent), 1xx header blocks, each DATA frame, trailers, RST_STREAM codes, PUSH_PROMISEs and the
server's SETTINGS. Every read is bounded; a transcript of the frames is kept as evidence.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame

from compat.harness.endpoint import Endpoint
from compat.harness.wire import WireError, wrap_tls

Headers = list[tuple[bytes, bytes]]
TRANSCRIPT_LIMIT = 200  # lines kept per connection
SHOWN_VALUE = 60  # bytes of a header value shown in a transcript


class NotHTTP2(Exception):
    """The server did not answer the connection preface with HTTP/2 (or ALPN chose another
    protocol); ``raw`` holds what it sent instead."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw


class H2ProtocolError(WireError):
    """The server broke HTTP/2 framing or state rules (the ``h2`` library refused it)."""


@dataclass(repr=False)
class H2Response:
    """What arrived on one stream."""

    stream_id: int
    pseudo: Headers = field(default_factory=list)  # the response's pseudo-headers
    headers: Headers = field(default_factory=list)  # the rest, in order, as sent
    informational: list[Headers] = field(default_factory=list)  # 1xx blocks (with :status)
    frames: list[bytes] = field(default_factory=list)  # each DATA frame's data
    trailers: Headers = field(default_factory=list)
    ended: bool = False  # END_STREAM arrived
    reset: int | None = None  # RST_STREAM error code
    promised: list[int] = field(default_factory=list)  # streams pushed for this one
    promise: Headers = field(default_factory=list)  # for a pushed stream: the request

    @property
    def status(self) -> int | None:
        for name, value in self.pseudo:
            if name == b":status":
                return int(value)
        return None

    @property
    def body(self) -> bytes:
        return b"".join(self.frames)

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None

    def __repr__(self) -> str:
        # Short enough for a report's detail column; the transcript has the rest.
        parts = [f"stream {self.stream_id}", f":status {self.status}"]
        if self.informational:
            parts.append(f"{len(self.informational)} 1xx")
        parts.append(f"{len(self.headers)} headers")
        body = self.body
        parts.append(f"body {body[:40]!r}{'...' if len(body) > 40 else ''} ({len(body)} B)")
        if self.trailers:
            parts.append(f"trailers {self.trailers!r}")
        if self.reset is not None:
            parts.append(f"RST_STREAM {self.reset}")
        parts.append("ended" if self.ended else "open")
        return "<" + ", ".join(parts) + ">"

    def header(self, name: str) -> bytes | None:
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[bytes]:
        key = name.lower().encode()
        return [v for k, v in self.headers if k.lower() == key]


def split_pseudo(headers: Headers) -> tuple[Headers, Headers]:
    pseudo = [(k, v) for k, v in headers if k.startswith(b":")]
    return pseudo, [(k, v) for k, v in headers if not k.startswith(b":")]


def _shown(headers: Headers) -> str:
    parts = []
    for name, value in headers:
        text = value[:SHOWN_VALUE].decode("latin-1")
        parts.append(f"{name.decode('latin-1')}: {text}{'...' if len(value) > SHOWN_VALUE else ''}")
    return "; ".join(parts)


class H2Client:
    """One HTTP/2 connection. ``open()`` sends the preface and waits for the server's
    SETTINGS; ``NotHTTP2`` if something else comes back."""

    def __init__(
        self,
        endpoint: Endpoint,
        timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
        enable_push: bool = False,
    ) -> None:
        self.timeout = timeout
        self.sock: socket.socket = endpoint.connect(timeout)
        self.alpn: str | None = None
        if tls is not None:
            self.sock = wrap_tls(self.sock, tls)
            self.alpn = self.sock.selected_alpn_protocol()
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            # The checks judge what the server sent: the library must not reject or
            # rewrite it first.
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            # Sent as given (cookie crumbs stay separate).
            normalize_outbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config=config)
        self.enable_push = enable_push
        self.streams: dict[int, H2Response] = {}
        self.remote_settings: dict[int, int] = {}
        self.settings_seen = False
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False  # the server closed the connection (or broke it)
        self.auto_window = True  # open the windows again as data is read
        self.received = b""  # the first bytes, to show what a non-HTTP/2 server said
        self.buffer = bytearray()  # bytes of a frame not complete yet
        self.last_goaway: tuple[int, int] | None = None  # (error code, last stream) of a later one
        self.transcript: list[str] = []

    # -- plumbing ------------------------------------------------------------------------

    def note(self, line: str) -> None:
        if len(self.transcript) < TRANSCRIPT_LIMIT:
            self.transcript.append(line)

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def open(self) -> None:
        """The client preface, then the server's SETTINGS within the timeout."""
        self.conn.initiate_connection()
        self.conn.update_settings(
            {h2.settings.SettingCodes.ENABLE_PUSH: 1 if self.enable_push else 0}
        )
        self.note("> preface, SETTINGS")
        self.flush()
        deadline = time.monotonic() + self.timeout
        while not self.settings_seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotHTTP2("no SETTINGS frame within the timeout", self.received)
            try:
                got = self.pump(left)
            except H2ProtocolError as exc:
                raise NotHTTP2(f"the answer is not HTTP/2 ({exc})", self.received) from None
            if not got and self.closed:
                raise NotHTTP2("the server closed the connection", self.received)

    def pump(self, timeout: float) -> bool:
        """Read once (waiting up to ``timeout``) and handle what came; ``False`` if nothing
        came. Raises ``H2ProtocolError`` when the server breaks HTTP/2."""
        if self.closed:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            self.note("< connection closed")
            return False
        if len(self.received) < 512:
            self.received += data[: 512 - len(self.received)]
        if not self.settings_seen and self.received.startswith(b"HTTP/"):
            line = self.received.split(b"\r\n", 1)[0].decode("latin-1")
            self.closed = True
            raise H2ProtocolError(f"answered with HTTP/1.x: {line!r}", self.received)
        self.buffer += data
        # Frame by frame: the h2 library takes the connection as over at a GOAWAY, while a
        # graceful GOAWAY lets the streams in flight finish; later frames are read here.
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if length > self.conn.max_inbound_frame_size and self.goaway is None:
                frame = bytes(self.buffer)  # the library reports the oversized frame
            elif len(self.buffer) < 9 + length:
                break
            else:
                frame = bytes(self.buffer[: 9 + length])
            del self.buffer[: len(frame)]
            if self.goaway is None:
                self._receive(frame)
            else:
                self._after_goaway(frame)
        if self.goaway is None:
            self.flush()
        return True

    def _receive(self, frame: bytes) -> None:
        try:
            events = self.conn.receive_data(frame)
        except h2.exceptions.ProtocolError as exc:
            self.closed = True
            self.note(f"< protocol error: {type(exc).__name__}: {exc}")
            raise H2ProtocolError(f"{type(exc).__name__}: {exc}", self.received) from None
        for event in events:
            self._handle(event)

    def _after_goaway(self, raw: bytes) -> None:
        """A frame after the server's GOAWAY, decoded with the library's own frame and
        header decoders (the header blocks are assumed to fit one frame)."""
        frame, length = Frame.parse_frame_header(memoryview(raw[:9]))
        frame.parse_body(memoryview(raw[9 : 9 + length]))
        stream = self._stream(frame.stream_id) if frame.stream_id else None
        if isinstance(frame, HeadersFrame) and stream is not None:
            fields = list(self.conn.decoder.decode(frame.data, raw=True))
            if stream.status is None:
                stream.pseudo, stream.headers = split_pseudo(fields)
            else:
                stream.trailers = fields
            self.note(f"< HEADERS stream {frame.stream_id}: {_shown(fields)}")
        elif isinstance(frame, DataFrame) and stream is not None:
            stream.frames.append(bytes(frame.data))
            self.note(f"< DATA stream {frame.stream_id}: {len(frame.data)} B")
        elif isinstance(frame, RstStreamFrame) and stream is not None:
            stream.reset = frame.error_code
            self.note(f"< RST_STREAM stream {frame.stream_id}: {frame.error_code}")
        elif isinstance(frame, GoAwayFrame):
            self.last_goaway = (frame.error_code, frame.last_stream_id)
            self.note(f"< GOAWAY {frame.error_code} last stream {frame.last_stream_id}")
        if stream is not None and "END_STREAM" in frame.flags:
            stream.ended = True
            self.note(f"< END_STREAM stream {frame.stream_id}")

    def _stream(self, stream_id: int) -> H2Response:
        return self.streams.setdefault(stream_id, H2Response(stream_id))

    def _handle(self, event: h2.events.Event) -> None:
        E = h2.events
        if isinstance(event, E.RemoteSettingsChanged):
            for code, setting in event.changed_settings.items():
                self.remote_settings[int(code)] = setting.new_value
            self.settings_seen = True
            self.note(f"< SETTINGS {dict(self.remote_settings)}")
        elif isinstance(event, E.InformationalResponseReceived):
            self._stream(event.stream_id).informational.append(list(event.headers))
            self.note(f"< HEADERS (1xx) stream {event.stream_id}: {_shown(event.headers)}")
        elif isinstance(event, E.ResponseReceived):
            stream = self._stream(event.stream_id)
            stream.pseudo, stream.headers = split_pseudo(list(event.headers))
            self.note(f"< HEADERS stream {event.stream_id}: {_shown(event.headers)}")
        elif isinstance(event, E.DataReceived):
            self._stream(event.stream_id).frames.append(bytes(event.data))
            self.note(f"< DATA stream {event.stream_id}: {len(event.data)} B {event.data[:40]!r}")
            if self.auto_window and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, E.TrailersReceived):
            self._stream(event.stream_id).trailers = list(event.headers)
            self.note(f"< HEADERS (trailers) stream {event.stream_id}: {_shown(event.headers)}")
        elif isinstance(event, E.StreamEnded):
            self._stream(event.stream_id).ended = True
            self.note(f"< END_STREAM stream {event.stream_id}")
        elif isinstance(event, E.StreamReset):
            self._stream(event.stream_id).reset = int(event.error_code)
            self.note(f"< RST_STREAM stream {event.stream_id}: {event.error_code!r}")
        elif isinstance(event, E.PushedStreamReceived):
            self._stream(event.parent_stream_id).promised.append(event.pushed_stream_id)
            self._stream(event.pushed_stream_id).promise = list(event.headers)
            self.note(
                f"< PUSH_PROMISE stream {event.parent_stream_id} -> {event.pushed_stream_id}: "
                f"{_shown(event.headers)}"
            )
        elif isinstance(event, E.ConnectionTerminated):
            self.goaway = event
            self.last_goaway = (int(event.error_code), int(event.last_stream_id or 0))
            self.note(f"< GOAWAY {event.error_code!r} last stream {event.last_stream_id}")

    # -- requests ----------------------------------------------------------------------------

    def request(
        self,
        headers: Headers,
        body: bytes | None = None,
        end_stream: bool = True,
        timeout: float | None = None,
    ) -> int:
        """Open a stream with ``headers`` (pseudo-headers first); send ``body`` as the
        flow-control windows allow. Returns the stream id."""
        stream_id = self.conn.get_next_available_stream_id()
        self._stream(stream_id)
        self.conn.send_headers(stream_id, headers, end_stream=end_stream and body is None)
        self.note(f"> HEADERS stream {stream_id}: {_shown(headers)}")
        self.flush()
        if body is not None:
            self.send_data(stream_id, body, end_stream, timeout)
        return stream_id

    def send_data(
        self, stream_id: int, data: bytes, end_stream: bool = False, timeout: float | None = None
    ) -> None:
        """Send ``data`` in DATA frames no larger than the windows and frame size allow,
        reading (and waiting) while the server keeps a window closed."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        view = memoryview(data)
        while True:
            room = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if room <= 0 and view:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"stream {stream_id}: the server kept its window closed")
                if not self.pump(min(left, 0.5)) and self.closed:
                    raise ConnectionError("the server closed the connection mid-body")
                if self.streams[stream_id].reset is not None:
                    return  # the server gave up on the stream; nothing more to send
                continue
            piece, view = view[:room], view[room:]
            last = end_stream and not view
            self.conn.send_data(stream_id, bytes(piece), end_stream=last)
            self.note(f"> DATA stream {stream_id}: {len(piece)} B{' END_STREAM' if last else ''}")
            self.flush()
            if not view:
                return

    def end_stream(self, stream_id: int) -> None:
        self.conn.end_stream(stream_id)
        self.note(f"> END_STREAM stream {stream_id}")
        self.flush()

    def reset(self, stream_id: int, code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        self.conn.reset_stream(stream_id, error_code=code)
        self.note(f"> RST_STREAM stream {stream_id}: {code!r}")
        self.flush()

    def wait_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Read until ``done()``; ``TimeoutError`` naming ``what`` if it never is."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: not within {timeout:.0f} s")
            if not self.pump(min(left, 0.5)) and self.closed:
                if done():
                    return
                raise ConnectionError(f"{what}: the server closed the connection")

    def wait(self, stream_id: int, timeout: float | None = None) -> H2Response:
        """Read until the stream ends (END_STREAM or RST_STREAM)."""
        stream = self.streams[stream_id]
        limit = timeout if timeout is not None else self.timeout
        self.wait_until(lambda: stream.done, limit, f"stream {stream_id} did not end")
        return stream

    def wait_headers(self, stream_id: int, timeout: float | None = None) -> H2Response:
        """Read until the stream's final response headers arrive (or it ends)."""
        stream = self.streams[stream_id]
        limit = timeout if timeout is not None else self.timeout
        self.wait_until(
            lambda: stream.status is not None or stream.done,
            limit,
            f"no response headers on stream {stream_id}",
        )
        return stream

    def text(self, stream_id: int | None = None) -> str:
        """The transcript; with ``stream_id`` only that stream's frames and the
        connection's own (SETTINGS, GOAWAY, errors)."""
        lines = self.transcript
        if stream_id is not None:
            mine = re.compile(rf"(stream|->) {stream_id}\b")
            lines = [x for x in lines if "stream " not in x or mine.search(x)]
        return "\n".join(lines)

    def close(self) -> None:
        if not self.closed:
            try:
                self.conn.close_connection()
                self.flush()
            except (h2.exceptions.ProtocolError, OSError):
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True
