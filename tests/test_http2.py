"""HTTP/2 end to end: h2c by prior knowledge and h2 by ALPN, with httpx, curl and the ``h2``
library driving frames (trailers, RST_STREAM, flow control, GOAWAY, WebSockets over
HTTP/2)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time

import h2.events
import h2.settings
import httpx
import pytest

from tests.h2client import H2Client
from tests.serverproc import sandman

APP = "tests.h2_apps:app"


@pytest.fixture(scope="module")
def server():
    with sandman(APP) as s:
        yield s


def _scope(body: bytes | bytearray) -> dict:
    return json.loads(bytes(body))


def test_h2c_by_prior_knowledge_with_httpx(server):
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        r = client.get(f"{server.url}/scope?x=1")
    assert r.status_code == 200
    assert r.http_version == "HTTP/2"
    scope = r.json()
    assert scope["http_version"] == "2"
    assert scope["path"] == "/scope"
    assert scope["query_string"] == "x=1"
    # :authority becomes the first header, named host (ASGI HTTP spec, "headers").
    assert scope["headers"][0] == ["host", f"127.0.0.1:{server.port}"]
    # Offered only to a client that sent te: trailers, on HTTP/2 as on HTTP/1.1.
    assert "http.response.trailers" not in scope["extensions"]
    assert scope["extensions"]["http.response.pathsend"] == {}
    server.wait_for(r'"GET /scope\?x=1 HTTP/2" 200', stream="stdout")


def test_http11_clients_see_no_change(server):
    r = httpx.get(f"{server.url}/scope", timeout=10)
    assert r.http_version == "HTTP/1.1"
    scope = r.json()
    assert scope["http_version"] == "1.1"
    assert "http.response.trailers" not in scope["extensions"], "no TE: trailers sent"


def test_curl_speaks_h2c_by_prior_knowledge(server):
    out = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version}"]
        + [f"{server.url}/scope"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert out.stdout == "2"


def test_authority_becomes_host_and_cookie_crumbs_are_joined(server):
    client = H2Client(server.port)
    try:
        sid = client.request(
            "/scope",
            authority="example.test:1234",
            headers=[("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")],
        )
        stream = client.wait(sid)
    finally:
        client.close()
    headers = _scope(stream.body)["headers"]
    assert headers[0] == ["host", "example.test:1234"]
    assert ["cookie", "a=1; b=2"] in headers, headers
    assert sum(1 for name, _ in headers if name == "cookie") == 1


def test_streams_are_multiplexed_on_one_connection(server):
    client = H2Client(server.port)
    try:
        ids = [client.request(f"/scope?i={i}") for i in range(50)]
        streams = {sid: client.wait(sid) for sid in ids}
    finally:
        client.close()
    for i, sid in enumerate(ids):
        assert streams[sid].status == 200
        assert _scope(streams[sid].body)["query_string"] == f"i={i}"


def test_trailers_over_http2(server):
    client = H2Client(server.port)
    try:
        stream = client.wait(client.request("/trailers", headers=[("te", "trailers")]))
    finally:
        client.close()
    assert bytes(stream.body) == b"part one, part two"
    assert stream.trailers == [(b"x-checksum", b"abc123"), (b"x-more", b"yes")]


def _raw_http11(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while not data.endswith(b"\r\n\r\n") or b"0\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_trailers_over_http11_when_the_client_asks_for_them(server):
    data = _raw_http11(
        server.port,
        b"GET /trailers HTTP/1.1\r\nhost: x\r\nte: trailers\r\nconnection: close\r\n\r\n",
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body.endswith(b"0\r\nx-checksum: abc123\r\nx-more: yes\r\n\r\n"), body


def test_no_trailers_over_http11_without_te(server):
    data = _raw_http11(
        server.port, b"GET /trailers HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    assert b"part one, part two" in data
    assert data.endswith(b"\r\n0\r\n\r\n"), "the body ends without trailer fields"
    assert b"x-checksum: abc123" not in data


def test_rst_stream_disconnects_that_stream_only(server):
    client = H2Client(server.port)
    try:
        one = client.request("/wait-disconnect?one")
        two = client.request("/wait-disconnect?two")
        time.sleep(0.3)
        client.reset(one)
        server.wait_for(r"APP disconnect one")
        time.sleep(0.3)
        assert "APP disconnect two" not in server.stderr
        client.reset(two)
        server.wait_for(r"APP disconnect two")
    finally:
        client.close()


def _send_body(client: H2Client, sid: int, total: int, stall: float) -> int:
    """Send up to ``total`` bytes as the stream's window allows; stop after ``stall``
    seconds without window. Returns the bytes sent."""
    sent = 0
    last_progress = time.monotonic()
    while sent < total and time.monotonic() - last_progress < stall:
        window = min(
            client.conn.local_flow_control_window(sid), client.conn.max_outbound_frame_size
        )
        if window <= 0:
            client.pump(0.2)
            continue
        size = min(window, total - sent)
        client.conn.send_data(sid, b"b" * size, end_stream=sent + size == total)
        client.flush()
        sent += size
        last_progress = time.monotonic()
    return sent


def test_request_body_back_pressure_follows_the_stream_window(server):
    total = 8 * 1024 * 1024
    client = H2Client(server.port)
    try:
        sid = client.request("/slow-body?backpressure", method="POST", body=None, end_stream=False)
        server.wait_for(r"APP slow started backpressure")
        sent = _send_body(client, sid, total, stall=1.5)
        # The app reads nothing: the server stops opening the window after its buffer.
        assert sent < 2 * 1024 * 1024, f"{sent} bytes taken while the app read nothing"
        go = client.request("/go")
        client.wait(go)
        sent += _send_body(client, sid, total - sent, stall=5)
        assert sent == total
        stream = client.wait(sid, timeout=20)
    finally:
        client.close()
    assert bytes(stream.body) == str(total).encode()


def test_send_waits_while_the_client_window_is_closed():
    with sandman(APP) as server:
        client = H2Client(server.port, window=65535)
        try:
            sid = client.request("/big-stream")
            client.wait_until(lambda: len(client.streams[sid].body) >= 65535, timeout=10)
            time.sleep(1.0)
            sent = max(int(n) for n in re.findall(r"APP sent (\d+)", server.stderr))
            assert sent < 2 * 1024 * 1024, f"send() went on to {sent} with the window closed"
            assert "APP stream done" not in server.stderr
            # Open the window: the rest flows and the app finishes.
            client.auto_window = True
            client.conn.increment_flow_control_window(1 << 30)
            client.conn.increment_flow_control_window(1 << 30, stream_id=sid)
            client.conn.acknowledge_received_data(len(client.streams[sid].body), sid)
            client.flush()
            stream = client.wait(sid, timeout=20)
            assert len(stream.body) == 64 * 65536
            server.wait_for(r"APP stream done")
        finally:
            client.close()


def test_graceful_shutdown_sends_goaway_and_lets_streams_finish():
    with sandman(APP, "--timeout-graceful-shutdown", "5") as server:
        client = H2Client(server.port)
        try:
            sid = client.request("/slow-response")
            server.wait_for(r"APP slow response started")
            server.send_signal(signal.SIGTERM)
            stream = client.wait(sid, timeout=10)
            assert bytes(stream.body) == b"finished"
            client.wait_until(lambda: client.goaway is not None, timeout=10)
            assert client.goaway.error_code == 0
        finally:
            client.close()
        assert server.wait(timeout=15) in (-signal.SIGTERM, 0)


def test_h2_by_alpn_with_the_tls_extension(server_certificate):
    certificate = server_certificate
    with sandman(APP, "--ssl-certfile", str(certificate.pem)) as server:
        client = H2Client(server.port, tls=certificate.client_context(["h2", "http/1.1"]))
        try:
            stream = client.wait(client.request("/scope"))
        finally:
            client.close()
        scope = _scope(stream.body)
        assert scope["http_version"] == "2"
        assert scope["scheme"] == "https"
        tls = scope["extensions"]["tls"]
        assert tls["server_cert"] == certificate.cert.cert_chain_pems[0].bytes().decode()
        assert tls["client_cert_chain"] == []
        assert tls["client_cert_name"] is None
        assert tls["client_cert_error"] is None
        assert tls["tls_version"] == 0x0304
        assert isinstance(tls["cipher_suite"], int) and tls["cipher_suite"] > 0

        # A client that offers only HTTP/1.1 gets it, with the same extension.
        with httpx.Client(verify=certificate.client_context(["http/1.1"]), timeout=10) as h1:
            r = h1.get(f"https://localhost:{server.port}/scope")
        assert r.http_version == "HTTP/1.1"
        assert r.json()["extensions"]["tls"]["tls_version"] == 0x0304


def test_http11_only_listener(server_certificate):
    with sandman(APP, "--http", "h11") as server:
        with pytest.raises(httpx.HTTPError):
            with httpx.Client(http1=False, http2=True, timeout=5) as client:
                client.get(f"{server.url}/scope")
        assert httpx.get(f"{server.url}/scope", timeout=10).http_version == "HTTP/1.1"
    with sandman(APP, "--http", "h11", "--ssl-certfile", str(server_certificate.pem)) as server:
        context = server_certificate.client_context(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == "http/1.1"


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.2) with a short payload."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def test_websocket_over_http2(server):
    client = H2Client(server.port)
    try:
        client.wait_until(
            lambda: (
                client.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1
            )
        )
        sid = client.request(
            "/chat",
            method="CONNECT",
            protocol="websocket",
            headers=[("sec-websocket-version", "13")],
            end_stream=False,
        )
        client.wait_until(lambda: client.streams[sid].headers, timeout=10)
        assert client.streams[sid].status == 200
        server.wait_for(r"APP ws connect http_version=2 path=/chat")
        client.conn.send_data(sid, _ws_frame(0x1, b"hello"))
        client.flush()
        client.wait_until(lambda: b"echo: hello" in client.streams[sid].body, timeout=10)
        assert bytes(client.streams[sid].body[:2]) == bytes([0x81, len(b"echo: hello")])
        client.conn.send_data(sid, _ws_frame(0x8, (1000).to_bytes(2, "big")))
        client.flush()
        server.wait_for(r"APP ws disconnect 1000")
    finally:
        client.close()


def test_the_stream_limit_is_advertised_and_enforced():
    with sandman(APP, "--h2-max-concurrent-streams", "5") as server:
        client = H2Client(server.port)
        try:
            client.wait_until(
                lambda: h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in client.remote_settings
            )
            assert client.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 5
            assert isinstance(client.events[0], h2.events.RemoteSettingsChanged)
        finally:
            client.close()
