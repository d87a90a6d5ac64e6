"""Proxy headers on by default, trusting 127.0.0.1 and ::1 (D-HTTP-13; uvicorn §4.7).

All requests come from 127.0.0.1, so trust is varied through --forwarded-allow-ips."""

from __future__ import annotations

import httpx
import pytest

from tests.serverproc import sandman


def _seen(server, headers: list[tuple[str, str]]) -> tuple[str, list]:
    scope = httpx.get(server.url, headers=headers).json()["scope"]
    return scope["scheme"], scope["client"]["tuple"]


@pytest.fixture(scope="module")
def default_server():
    with sandman("tests.apps:scope_echo") as s:
        yield s


def test_trusted_localhost_applies_both_headers(default_server):
    scheme, client = _seen(
        default_server,
        [("x-forwarded-for", "1.2.3.4, 10.0.0.1"), ("x-forwarded-proto", "https")],
    )
    assert scheme == "https"
    assert client == ["10.0.0.1", 0], "right-most untrusted hop"
    default_server.wait_for(r'10\.0\.0\.1:0 - "GET / HTTP/1\.1" 200', stream="stdout")


@pytest.mark.parametrize(
    ("xff", "expected"),
    [
        ("1.2.3.4:123", ["1.2.3.4", 123]),
        ("[2001:db8::1]:8080", ["2001:db8::1", 8080]),
        ("not-an-ip", ["not-an-ip", 0]),
        ("127.0.0.1, ::1", ["127.0.0.1", 0]),
    ],
)
def test_forwarded_for_values(default_server, xff, expected):
    assert _seen(default_server, [("x-forwarded-for", xff)])[1] == expected


def test_duplicate_headers_combine_and_last_proto_wins(default_server):
    scheme, client = _seen(
        default_server,
        [
            ("x-forwarded-for", "5.5.5.5"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "http"),
        ],
    )
    assert client == ["6.6.6.6", 0] and scheme == "http"


def test_unknown_proto_and_empty_for_are_ignored(default_server):
    scheme, client = _seen(default_server, [("x-forwarded-for", ""), ("x-forwarded-proto", "ftp")])
    assert scheme == "http" and client[0] == "127.0.0.1"


def test_untrusted_peer_is_ignored():
    with sandman("tests.apps:scope_echo", "--forwarded-allow-ips", "10.9.9.9") as server:
        scheme, client = _seen(
            server, [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]
        )
        assert scheme == "http" and client[0] == "127.0.0.1"


def test_network_and_star():
    with sandman("tests.apps:scope_echo", "--forwarded-allow-ips", "127.0.0.0/8") as server:
        assert _seen(server, [("x-forwarded-for", "9.9.9.9")])[1] == ["9.9.9.9", 0]
    with sandman("tests.apps:scope_echo", "--forwarded-allow-ips", "*") as server:
        assert _seen(server, [("x-forwarded-for", "9.9.9.9, 8.8.8.8")])[1] == ["9.9.9.9", 0]


def test_no_proxy_headers():
    with sandman("tests.apps:scope_echo", "--no-proxy-headers") as server:
        assert _seen(server, [("x-forwarded-for", "9.9.9.9")])[1][0] == "127.0.0.1"


def test_env_var_default(tmp_path):
    with sandman("tests.apps:scope_echo", env={"FORWARDED_ALLOW_IPS": "10.0.0.0/8"}) as server:
        assert _seen(server, [("x-forwarded-for", "9.9.9.9")])[1][0] == "127.0.0.1"


def test_websocket_scheme_follows_forwarded_proto():
    import asyncio

    import websockets

    with sandman("tests.ws_apps:echo") as server:

        async def go():
            async with websockets.connect(
                f"ws://127.0.0.1:{server.port}/", additional_headers={"x-forwarded-proto": "https"}
            ) as ws:
                await ws.send("x")
                await ws.recv()

        asyncio.run(asyncio.wait_for(go(), 10))
        server.wait_for("APP scope subprotocols=.* scheme=wss ")
