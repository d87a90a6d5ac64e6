"""A stand-in HTTP/2 server for the client's tests: the ``h2`` library's server side on a real
socket in a thread (optionally TLS with ALPN "h2"). By ``:path``: ``/trailers`` answers with
trailers, ``/hint`` with a 103 first, ``/reset`` with RST_STREAM; anything else with 200 and
the number of request body bytes it read."""

from __future__ import annotations

import socket
import ssl
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions


class FakeH2Server:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.tls = tls
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopped = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(5.0)
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            self._h2(sock)
        except (OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            sock.close()

    def _h2(self, sock: socket.socket) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        conn = h2.connection.H2Connection(config=config)
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        paths: dict[int, bytes] = {}
        sizes: dict[int, int] = {}
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    paths[event.stream_id] = dict(event.headers)[b":path"]
                    sizes[event.stream_id] = 0
                elif isinstance(event, h2.events.DataReceived):
                    sizes[event.stream_id] += len(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if isinstance(event, h2.events.StreamEnded):
                    self._respond(conn, event.stream_id, paths[event.stream_id], sizes)
            sock.sendall(conn.data_to_send())

    def _respond(self, conn: h2.connection.H2Connection, sid: int, path: bytes, sizes) -> None:
        if path == b"/reset":
            conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        if path == b"/hint":
            conn.send_headers(sid, [(b":status", b"103"), (b"link", b"</a.css>; rel=preload")])
        conn.send_headers(sid, [(b":status", b"200"), (b"x-a", b"1"), (b"x-a", b"2")])
        body = b"data" if path in (b"/trailers", b"/hint") else str(sizes[sid]).encode()
        if path == b"/trailers":
            conn.send_data(sid, body)
            conn.send_headers(sid, [(b"x-checksum", b"abc")], end_stream=True)
        else:
            conn.send_data(sid, body, end_stream=True)
