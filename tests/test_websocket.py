"""WebSockets end to end (issue #4): handshake, messages, close codes both ways, denial,
errors, limits, pings, back-pressure, shutdown — with the ``websockets`` client and raw
frames. Categories follow the Autobahn|Testsuite sections (framing, pings, fragmentation,
UTF-8, close handling, limits)."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests import wsframes
from tests.serverproc import raw_exchange, sandman


@pytest.fixture(scope="module")
def echo_server():
    with sandman("tests.ws_apps:echo") as s:
        yield s


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_echo_text_binary_subprotocol_and_headers(echo_server):
    async def go():
        async with websockets.connect(
            f"ws://127.0.0.1:{echo_server.port}/chat?room=1", subprotocols=["v2", "v1"]
        ) as ws:
            assert ws.subprotocol == "v2"
            headers = ws.response.headers
            assert headers["x-accept"] == "yes"
            assert headers["server"] == "sandman" and "date" in headers
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xff" * 50000)
            assert await ws.recv() == b"\x00\xff" * 50000

    run(go())
    echo_server.wait_for(
        r"APP scope subprotocols=\['v2', 'v1'\] scheme=ws spec=2.5 path=/chat "
        r"ext=\['websocket.http.response'\]"
    )
    echo_server.wait_for(r'INFO:     127\.0\.0\.1:\d+ - "WebSocket /chat\?room=1" \[accepted\]')


def test_permessage_deflate_is_negotiated_by_default_and_can_be_turned_off(echo_server):
    async def go(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            ext = ws.response.headers.get("sec-websocket-extensions")
            await ws.send("x" * 100000)
            assert await ws.recv() == "x" * 100000
            return ext

    assert "permessage-deflate" in run(go(echo_server.port))
    with sandman("tests.ws_apps:echo", "--ws-per-message-deflate", "false") as server:
        assert run(go(server.port)) is None


def test_deflate_context_takeover_parameters_are_honoured(echo_server):
    sock, head = wsframes.handshake(
        echo_server.port,
        extra=b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        b"client_no_context_takeover; server_max_window_bits=10\r\n",
    )
    with sock:
        assert b" 101 " in head.split(b"\r\n")[0]
        ext = [
            line
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-extensions")
        ]
        assert ext, head
        value = ext[0].lower()
        assert b"server_no_context_takeover" in value
        assert b"client_no_context_takeover" in value
        assert b"server_max_window_bits=10" in value


def test_app_close_code_and_reason_reach_client(echo_server):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{echo_server.port}/") as ws:
            await ws.send("close")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd

    rcvd = run(go())
    assert (rcvd.code, rcvd.reason) == (4001, "bye")


def test_client_close_code_and_reason_reach_app(echo_server):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{echo_server.port}/") as ws:
            await ws.close(code=4123, reason="custom reason")

    run(go())
    echo_server.wait_for("APP disconnect code=4123 reason='custom reason'")


def test_close_without_code_is_1005_and_dropped_tcp_is_1006(echo_server):
    sock, _ = wsframes.handshake(echo_server.port)
    with sock:
        sock.sendall(wsframes.frame(0x8, b""))
        opcode, _, payload = wsframes.read_frame(sock)
        assert opcode == 0x8
    echo_server.wait_for("APP disconnect code=1005 reason=''")
    sock, _ = wsframes.handshake(echo_server.port)
    sock.close()
    echo_server.wait_for("APP disconnect code=1006 reason=''")


def _refused_status(port: int, path: str) -> int:
    """The HTTP status of a WebSocket handshake the server refuses."""

    async def go() -> int:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{port}{path}"):
                pass
        return info.value.response.status_code

    return run(go())


def test_close_before_accept_is_403_and_app_sees_1006():
    with sandman("tests.ws_apps:handshake") as server:
        assert _refused_status(server.port, "/reject") == 403
        server.wait_for("APP rejected then websocket.disconnect code=1006")
        server.wait_for(r'"WebSocket /reject" 403')


def test_denial_response_extension(sandman_server):
    # In-process, through sandman_asgi.testing's fixture (nothing to read from the logs).
    server = sandman_server("tests.ws_apps:handshake")
    sock, head = wsframes.handshake(server.port, "/deny")
    with sock:
        rest = b""
        while not rest.endswith(b"goodbye"):
            chunk = sock.recv(100)
            if not chunk:
                break
            rest += chunk
    assert head.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"x-deny: 1" in head and b"content-length: 7" in head
    assert rest == b"goodbye"


@pytest.mark.parametrize("path", ["/no-handshake", "/send-first"])
def test_app_without_handshake_is_500(path):
    with sandman("tests.ws_apps:handshake") as server:
        sock, head = wsframes.handshake(server.port, path)
        sock.close()
        assert head.startswith(b"HTTP/1.1 500 Internal Server Error")
        if path == "/no-handshake":
            server.wait_for("ERROR:    ASGI callable returned without sending handshake.")
        else:
            server.wait_for("RuntimeError: Expected ASGI message 'websocket.accept'")


def test_app_error_after_accept_closes_1011_and_return_closes_1000(echo_server):
    async def go(text):
        async with websockets.connect(f"ws://127.0.0.1:{echo_server.port}/") as ws:
            await ws.send(text)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd.code

    assert run(go("raise")) == 1011
    echo_server.wait_for("RuntimeError: boom in websocket")
    assert run(go("return")) == 1000


def test_send_after_disconnect_raises_oserror_not_logged():
    with sandman("tests.ws_apps:handshake") as server:
        sock, _ = wsframes.handshake(server.port, "/after-disconnect")
        sock.sendall(wsframes.frame(0x8, wsframes.close_payload(1001, b"away")))
        wsframes.read_close_code(sock)
        sock.close()
        server.wait_for("APP got websocket.disconnect code=1001")
        server.wait_for("APP send raised ClientDisconnected")
        time.sleep(0.3)
        assert "Exception in ASGI application" not in server.stderr


def test_message_over_max_size_closes_1009():
    with sandman("tests.ws_apps:echo", "--ws-max-size", "1000") as server:
        sock, _ = wsframes.handshake(server.port)
        with sock:
            sock.sendall(wsframes.frame(0x2, b"a" * 1000))
            assert wsframes.read_frame(sock) == (0x2, True, b"a" * 1000)
            sock.sendall(wsframes.frame(0x2, b"a" * 1001))
            assert wsframes.read_close_code(sock) == 1009
        server.wait_for("APP disconnect code=1009")
        # fragmented: each fragment small, the message too big
        sock, _ = wsframes.handshake(server.port)
        with sock:
            sock.sendall(wsframes.frame(0x1, b"a" * 600, fin=False))
            sock.sendall(wsframes.frame(0x0, b"a" * 600, fin=True))
            assert wsframes.read_close_code(sock) == 1009


def test_fragmented_messages_are_reassembled_with_interleaved_ping(echo_server):
    sock, _ = wsframes.handshake(echo_server.port)
    with sock:
        sock.sendall(wsframes.frame(0x1, b"frag", fin=False))
        sock.sendall(wsframes.frame(0x9, b"ping-in-the-middle"))
        sock.sendall(wsframes.frame(0x0, b"ment", fin=False))
        sock.sendall(wsframes.frame(0x0, "ed ✓".encode(), fin=True))
        frames = [wsframes.read_frame(sock) for _ in range(2)]
        assert (0xA, True, b"ping-in-the-middle") in frames, "automatic pong with the payload"
        assert (0x1, True, "fragmented ✓".encode()) in frames
        sock.sendall(wsframes.frame(0x2, b"bin", fin=False) + wsframes.frame(0x0, b"ary"))
        assert wsframes.read_frame(sock) == (0x2, True, b"binary")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (wsframes.frame(0x1, b"\xff\xfe invalid"), {1007}),
        (
            wsframes.frame(0x1, b"ok"[:1] + b"\xc3", fin=False) + wsframes.frame(0x0, b"\x28"),
            {1007},
        ),
        (wsframes.frame(0x3, b"reserved opcode"), {1002, 1003}),
        (wsframes.frame(0x1, b"rsv bits", rsv=2), {1002}),
        (wsframes.frame(0x1, b"unmasked", masked=False), {1002}),
        (wsframes.frame(0x9, b"x" * 126), {1002}),
        (wsframes.frame(0xA, b"x" * 126), {1002}),
        (wsframes.frame(0x9, b"fragmented ping", fin=False), {1002}),
        (wsframes.frame(0x0, b"continuation first"), {1002}),
        (wsframes.frame(0x8, wsframes.close_payload(1005)), {1002}),
        (wsframes.frame(0x8, wsframes.close_payload(1000, b"\xff")), {1002, 1007}),
        (wsframes.frame(0x8, b"\x03"), {1002}),
    ],
    ids=[
        "bad-utf8",
        "bad-utf8-across-fragments",
        "bad-opcode",
        "rsv",
        "unmasked",
        "big-ping",
        "big-pong",
        "fragmented-control",
        "orphan-continuation",
        "reserved-close-code",
        "bad-utf8-close-reason",
        "one-byte-close",
    ],
)
def test_protocol_violations_close_with_the_right_code(echo_server, data, expected):
    sock, _ = wsframes.handshake(echo_server.port)
    with sock:
        sock.sendall(data)
        code = wsframes.read_close_code(sock)
    assert code in expected, code
    # the worker lives on
    assert httpx.get(echo_server.url).text == "plain http"


def test_empty_messages_with_permessage_deflate_are_echoed(echo_server):
    # An empty message compressed after another one spun the IO thread for ever (yawc's
    # flush waited for a sync marker zlib does not repeat); found by the fuzz target.
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{echo_server.port}/") as ws:
            assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
            for message in ["hello", "", "", b"", "again"]:
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), 5) == message

    run(go())
    assert httpx.get(echo_server.url, timeout=5).text == "plain http"


def test_close_frame_over_125_bytes_fails_the_connection(echo_server):
    # Autobahn 7.3.6: a control frame carries at most 125 bytes (RFC 6455 §5.5), a close
    # reason included. The connection is failed: never the over-long close echoed back.
    sock, _ = wsframes.handshake(echo_server.port)
    with sock:
        sock.sendall(wsframes.frame(0x8, wsframes.close_payload(1000, b"r" * 124)))
        code = wsframes.read_close_code(sock)
    assert code in (None, 1002), code
    echo_server.wait_for("APP disconnect code=1002 reason=''")
    assert httpx.get(echo_server.url).text == "plain http"


def test_ping_flood_is_answered_and_survived(echo_server):
    sock, _ = wsframes.handshake(echo_server.port)
    with sock:
        sock.sendall(b"".join(wsframes.frame(0x9, b"%d" % i) for i in range(2000)))
        sock.sendall(wsframes.frame(0x1, b"after flood"))
        seen_pongs = 0
        while True:
            opcode, _, payload = wsframes.read_frame(sock)
            if opcode == 0xA:
                seen_pongs += 1
            elif opcode == 0x1:
                assert payload == b"after flood"
                break
        assert seen_pongs == 2000


def test_keepalive_ping_timeout_closes_1011():
    with sandman(
        "tests.ws_apps:echo", "--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.3"
    ) as server:
        sock, _ = wsframes.handshake(server.port)
        with sock:
            opcode, _, _ = wsframes.read_frame(sock)
            assert opcode == 0x9, "server pings"
            # never answer
            start = time.monotonic()
            code = wsframes.read_close_code(sock)
            assert code == 1011
            assert time.monotonic() - start < 3
        server.wait_for("APP disconnect code=1011 reason='keepalive ping timeout'")


def test_keepalive_ping_answered_keeps_the_socket_open():
    with sandman(
        "tests.ws_apps:echo", "--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.5"
    ) as server:

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await asyncio.sleep(1.5)  # the client library answers pings
                await ws.send("still here")
                return await ws.recv()

        assert run(go()) == "still here"


def test_shutdown_sends_1012():
    with sandman("tests.ws_apps:handshake") as server:

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/wait-shutdown") as ws:
                server.send_signal(signal.SIGINT)
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                return info.value.rcvd.code

        assert run(go()) == 1012
        server.wait_for("APP shutdown disconnect code=1012")
        assert server.wait() == 0


def test_ws_none_serves_upgrades_as_http():
    with sandman("tests.ws_apps:echo", "--ws", "none") as server:
        raw = raw_exchange(
            server.port,
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(b"plain http")
        server.wait_for("WARNING:  Unsupported upgrade request.")


def test_invalid_handshakes(echo_server):
    raw = raw_exchange(
        echo_server.port,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 11\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 426") and b"sec-websocket-version: 13" in raw.lower()
    raw = raw_exchange(
        echo_server.port,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 400")


def test_h2c_upgrade_is_ignored(echo_server):
    raw = raw_exchange(
        echo_server.port,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 200 OK")


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError


def test_fast_client_cannot_flood_a_slow_app():
    with sandman("tests.ws_apps:handshake", "--ws-max-queue", "4") as server:
        sock, _ = wsframes.handshake(server.port, "/never-read")
        base = _rss_kib(server.proc.pid)
        sent = 0
        message = wsframes.frame(0x2, b"m" * (1 << 20))
        sock.settimeout(0.5)
        deadline = time.monotonic() + 4
        try:
            while time.monotonic() < deadline and sent < 300:
                sock.sendall(message)
                sent += 1
        except OSError:
            pass
        grown = (_rss_kib(server.proc.pid) - base) // 1024
        sock.close()
        assert sent < 300, "the server stopped reading: the client is blocked"
        assert grown < 64, f"server RSS grew {grown} MiB"


def test_slow_client_blocks_the_app_instead_of_buffering():
    with sandman("tests.ws_apps:handshake") as server:
        sock, _ = wsframes.handshake(server.port, "/flood")
        time.sleep(2.0)  # never read
        sent = [int(m) for m in __import__("re").findall(r"APP sent (\d+)", server.stderr)]
        sock.close()
        assert sent and max(sent) < 100, f"app sent {max(sent)} MiB to a client that reads nothing"


def test_many_concurrent_sockets(echo_server):
    async def one(i):
        async with websockets.connect(f"ws://127.0.0.1:{echo_server.port}/") as ws:
            for j in range(10):
                await ws.send(f"{i}-{j}")
                assert await ws.recv() == f"{i}-{j}"

    async def go():
        await asyncio.gather(*(one(i) for i in range(50)))

    run(go())


def test_clients_leaving_during_the_handshake_release_every_app():
    """Clients that reset right after their upgrade request: whether the app had not
    decided yet, had accepted but the IO thread had not read it, or the socket was already
    upgraded, every app must end (its accept raises or its ``receive()`` reports the
    disconnect). Once, an accept the IO thread never read left the app in ``receive()`` for
    ever, and a graceful stop waiting on it."""
    import socket
    import struct

    request = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with sandman("tests.ws_apps:accept_and_wait", "--no-access-log", "--lifespan", "off") as server:
        for delay in (0.0, 0.001, 0.003, 0.01):
            socks = []
            for _ in range(40):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.sendall(request)
                socks.append(s)
            time.sleep(delay)
            for s in socks:
                s.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            begun = server.stderr.count("APP begin")
            if begun and server.stderr.count("APP end") == begun:
                break
            time.sleep(0.1)
        assert begun > 0
        assert server.stderr.count("APP end") == begun
        assert server.stop(signal.SIGTERM, timeout=5) in (0, -signal.SIGTERM)


def test_app_raising_before_accept_gets_500_and_the_server_lives():
    """D-ASGI-6: an exception before the handshake is decided is an HTTP 500, logged."""
    with sandman("tests.ws_apps:handshake") as server:
        assert _refused_status(server.port, "/raise-before-accept") == 500
        server.wait_for("RuntimeError: boom before accept")

        async def after():
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/where") as ws:
                return await ws.recv()

        assert run(after()) == " /where"  # the server lives on


def test_root_path_in_websocket_scopes():
    """D-ASGI-5: `--root-path` reaches WebSocket scopes as it does HTTP ones (`path`
    includes it)."""
    with sandman("tests.ws_apps:handshake", "--root-path", "/app") as server:

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/where") as ws:
                return await ws.recv()

        assert run(go()) == "/app /app/where"
