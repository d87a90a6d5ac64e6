"""The HTTP/2 attacks a server must survive, each sent over a real socket: rapid reset
(CVE-2023-44487), CONTINUATION flood (CVE-2024-27316), HPACK bomb, SETTINGS, PING and empty
DATA floods, the stream-count limit and the header-list size limit. After each, the server
is alive, its memory has not run away, and a new client is served at once."""

from __future__ import annotations

import time

import hpack
import httpx
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
)

from tests.h2client import H2Client
from tests.serverproc import sandman

APP = "tests.h2_apps:app"
# Memory a single attack may cost the server, at most (it starts around 40 MB).
RSS_BUDGET_KIB = 64 * 1024


@pytest.fixture(scope="module")
def server():
    with sandman(APP) as s:
        yield s


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _assert_unharmed(server, rss_before: int) -> None:
    assert server.proc.poll() is None, "the server died"
    started = time.monotonic()
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        r = client.get(f"{server.url}/scope")
    assert r.status_code == 200
    assert time.monotonic() - started < 3, "a new client waited"
    grown = _rss_kib(server.proc.pid) - rss_before
    assert grown < RSS_BUDGET_KIB, f"the attack cost {grown} KiB"


def _flood(client: H2Client, frames: list[bytes], repeat: int, seconds: float = 10) -> int:
    """Send ``frames`` ``repeat`` times (within ``seconds``) until the server closes the
    connection. Returns how many batches went out."""
    batch = b"".join(frames)
    deadline = time.monotonic() + seconds
    sent = 0
    try:
        for _ in range(repeat):
            if time.monotonic() > deadline:
                break
            client.send_raw(batch)
            sent += 1
    except OSError:
        pass  # closed by the server: what a defence may do
    return sent


def _block(client: H2Client, path: str, extra: list[tuple[str, str]] | None = None) -> bytes:
    """An encoded request header block, with the client's own encoder."""
    return client.conn.encoder.encode(
        [
            (":method", "GET"),
            (":path", path),
            (":scheme", "http"),
            (":authority", "localhost"),
            *(extra or []),
        ]
    )


def _closed_or_goaway(client: H2Client, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and client.goaway is None and not client.closed:
        try:
            client.pump(0.5)
        except Exception:  # noqa: BLE001 - the h2 state machine may object to a dying peer
            return True
    return client.goaway is not None or client.closed


def test_rapid_reset(server):
    before = _rss_kib(server.proc.pid)
    client = H2Client(server.port)
    try:
        for _ in range(10_000):
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(
                sid,
                [(":method", "GET"), (":path", "/scope"), (":scheme", "http"), (":authority", "x")],
            )
            client.conn.reset_stream(sid)
            try:
                client.flush()
            except OSError:
                break
        # hyper answers a flood of resets with GOAWAY (ENHANCE_YOUR_CALM) and closes.
        assert _closed_or_goaway(client)
    finally:
        client.close()
    _assert_unharmed(server, before)


def test_continuation_flood(server):
    before = _rss_kib(server.proc.pid)
    client = H2Client(server.port)
    try:
        sid = client.conn.get_next_available_stream_id()
        first = HeadersFrame(sid, _block(client, "/scope"))  # no END_HEADERS: more follow
        junk = hpack.Encoder().encode([("x-junk", "j" * 8000)])
        continuation = ContinuationFrame(sid, junk).serialize()
        client.send_raw(first.serialize())
        batches = _flood(client, [continuation] * 100, repeat=1_000)
        assert batches < 1_000, "the server kept reading an endless header block"
        assert _closed_or_goaway(client)
    finally:
        client.close()
    _assert_unharmed(server, before)


def test_hpack_bomb(server):
    before = _rss_kib(server.proc.pid)
    client = H2Client(server.port)
    try:
        # A 4 KB field into the dynamic table, then a block that names it 10,000 times:
        # 10 KB on the wire, 40 MB decoded.
        big = client.request("/scope", headers=[("x-bomb", "b" * 4000)])
        client.wait(big)
        sid = client.conn.get_next_available_stream_id()
        block = _block(client, "/scope") + bytes([0x80 | 62]) * 10_000
        frame = HeadersFrame(sid, block)
        frame.flags.add("END_HEADERS")
        frame.flags.add("END_STREAM")
        client.send_raw(frame.serialize())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not client.closed and client.goaway is None:
            try:
                client.pump(0.5)
            except Exception:  # noqa: BLE001 - a refusal the h2 state machine may not expect
                break
            stream = client.streams.get(sid)
            if stream and (stream.reset is not None or stream.headers):
                break
        stream = client.streams.get(sid)
        served = bool(stream and stream.headers and stream.status == 200)
        assert not served, "a 40 MB header list reached the app"
    finally:
        client.close()
    _assert_unharmed(server, before)


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(SettingsFrame(0).serialize(), id="settings"),
        pytest.param(PingFrame(0, b"12345678").serialize(), id="ping"),
    ],
)
def test_control_frame_floods(server, frame):
    before = _rss_kib(server.proc.pid)
    client = H2Client(server.port)
    try:
        # 200,000 frames, never reading the acknowledgements the server owes.
        _flood(client, [frame] * 1_000, repeat=200)
    finally:
        client.close()
    _assert_unharmed(server, before)


def test_empty_data_flood(server):
    before = _rss_kib(server.proc.pid)
    client = H2Client(server.port)
    try:
        sid = client.request("/wait-disconnect?empty-data", method="POST", end_stream=False)
        _flood(client, [DataFrame(sid, b"").serialize()] * 1_000, repeat=200)
    finally:
        client.close()
    _assert_unharmed(server, before)


def test_streams_past_the_limit_are_refused():
    with sandman(APP, "--h2-max-concurrent-streams", "5") as server:
        before = _rss_kib(server.proc.pid)
        client = H2Client(server.port)
        try:
            client.wait_until(lambda: client.remote_settings.get(3) == 5)
            ids = []
            for i in range(6):
                sid = client.conn.get_next_available_stream_id()
                frame = HeadersFrame(sid, _block(client, f"/wait-disconnect?s{i}"))
                frame.flags.add("END_HEADERS")
                client.send_raw(frame.serialize())
                ids.append(sid)
            deadline = time.monotonic() + 5
            refused = None
            while time.monotonic() < deadline and refused is None and not client.closed:
                try:
                    client.pump(0.5)
                except Exception:  # noqa: BLE001 - the refusal may be a connection error
                    refused = "connection"
                    break
                if client.streams.get(ids[-1]) and client.streams[ids[-1]].reset is not None:
                    refused = client.streams[ids[-1]].reset
                if client.goaway is not None:
                    refused = "goaway"
            assert refused is not None, "a sixth stream was accepted"
            assert all(f"APP disconnect s{i}" not in server.stderr for i in range(5))
        finally:
            client.close()
        _assert_unharmed(server, before)


def test_a_header_list_over_the_limit_is_refused(server):
    before = _rss_kib(server.proc.pid)
    client = H2Client(server.port)
    try:
        sid = client.request("/scope", headers=[("x-huge", "h" * 100_000)])
        try:
            stream = client.wait(sid, timeout=5)
            refused = stream.reset is not None or stream.status == 431
        except AssertionError:
            refused = client.closed or client.goaway is not None
        assert refused, "a 100 KB header list was served"
    finally:
        client.close()
    _assert_unharmed(server, before)
