"""The HTTP/2 client against a stand-in server over real sockets: responses, 1xx blocks,
trailers, resets, flow-controlled bodies, non-HTTP/2 servers, h2 by ALPN over TLS, and
WebSocket frames carried on a stream."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat.harness.certs import make_tls_files, pem_to_der
from compat.harness.endpoint import Endpoint
from compat.harness.h2wire import H2Client, NotHTTP2
from compat.harness.wire import Connection, build_request
from compat.harness.ws import CLOSE, TEXT, client_frame, parse_frame
from compat.tests.fake_h2 import FakeH2Server


@pytest.fixture
def server() -> Iterator[FakeH2Server]:
    fake = FakeH2Server()
    yield fake
    fake.close()


def client_for(port: int, tls: ssl.SSLContext | None = None) -> H2Client:
    client = H2Client(Endpoint(port=port), 3.0, tls)
    client.open()
    return client


def get(path: str) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"x"),
        (b":path", path.encode()),
    ]


def test_a_response_with_1xx_trailers_and_repeated_headers(server: FakeH2Server) -> None:
    client = client_for(server.port)
    try:
        hint = client.wait(client.request(get("/hint")))
        trailers = client.wait(client.request(get("/trailers")))
    finally:
        client.close()
    assert hint.informational == [[(b":status", b"103"), (b"link", b"</a.css>; rel=preload")]]
    assert hint.status == 200 and hint.header_values("x-a") == [b"1", b"2"]
    assert all(not name.startswith(b":") for name, _ in hint.headers)
    assert trailers.body == b"data" and trailers.trailers == [(b"x-checksum", b"abc")]
    assert trailers.ended and trailers.reset is None
    assert "< HEADERS (trailers) stream 3" in client.text(3)
    assert "stream 1" not in client.text(3)


def test_a_body_larger_than_the_window_is_sent_as_the_server_opens_it(
    server: FakeH2Server,
) -> None:
    client = client_for(server.port)
    try:
        head = [(b":method", b"POST"), *get("/")[1:]]
        stream = client.wait(client.request(head, body=b"x" * 300_000, timeout=5.0))
    finally:
        client.close()
    assert stream.body == b"300000"


def test_a_reset_stream_is_reported(server: FakeH2Server) -> None:
    client = client_for(server.port)
    try:
        stream = client.wait(client.request(get("/reset")))
    finally:
        client.close()
    assert stream.reset == 7 and not stream.ended and "RST_STREAM 7" in repr(stream)


def one_shot(answer: bytes) -> int:
    """A listener that answers its first connection with ``answer`` and closes it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        sock, _ = listener.accept()
        sock.recv(1024)
        sock.sendall(answer)
        sock.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def test_an_http11_answer_to_the_preface_is_not_http2() -> None:
    port = one_shot(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    with pytest.raises(NotHTTP2, match="HTTP/1.x") as caught:
        client_for(port)
    assert caught.value.raw.startswith(b"HTTP/1.1 400")


def test_a_close_after_the_preface_is_not_http2() -> None:
    with pytest.raises(NotHTTP2, match="closed"):
        client_for(one_shot(b""))


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def server_context(tls_files, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files.certfile, tls_files.keyfile)
    context.set_alpn_protocols(alpn)
    return context


def test_h2_by_alpn_over_tls(tls_files) -> None:
    fake = FakeH2Server(server_context(tls_files, ["h2"]))
    try:
        client = client_for(fake.port, tls_files.client_context(["h2", "http/1.1"]))
        try:
            stream = client.wait(client.request(get("/")))
            presented = client.sock.getpeercert(binary_form=True)
        finally:
            client.close()
    finally:
        fake.close()
    assert client.alpn == "h2" and stream.status == 200
    assert presented == pem_to_der(tls_files.server_cert_pem)


def test_http11_over_tls(tls_files) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    context = server_context(tls_files, ["http/1.1"])

    def serve() -> None:
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as sock:
            sock.recv(4096)
            sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    port = listener.getsockname()[1]
    with Connection(Endpoint(port=port), 3.0, tls_files.client_context(["http/1.1"])) as conn:
        conn.send(build_request("GET", "/"))
        response = conn.read_final()[-1]
    assert conn.alpn == "http/1.1" and response.body == b"ok"


def test_tls_files_key_is_pkcs8(tls_files) -> None:
    assert Path(tls_files.keyfile).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_websocket_frames_parse_from_a_byte_stream() -> None:
    close = bytes([0x80 | CLOSE, 2]) + (4001).to_bytes(2, "big")
    data = bytes([0x81, 3]) + b"abc" + bytes([0x82, 126]) + (300).to_bytes(2, "big") + b"z" * 300
    first, used = parse_frame(data + close)
    assert (first.opcode, first.payload, used) == (TEXT, b"abc", 5)
    second, used2 = parse_frame((data + close)[used:])
    assert len(second.payload) == 300 and used2 == 304
    assert parse_frame(data[:4]) is None
    assert parse_frame(close)[0].close_code == 4001
    masked = client_frame(TEXT, b"hi")
    assert masked[1] & 0x80 and len(masked) == 2 + 4 + 2
