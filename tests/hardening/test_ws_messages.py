"""Invalid app messages on a live WebSocket (issue #7 "No panic reachable from the outside"):
each ``send()`` raises ``TypeError``/``ValueError``/``RuntimeError``, nothing reaches the
wire, the connection then works and the worker serves the next client."""

from __future__ import annotations

import json

from websockets.sync.client import connect

from tests.serverproc import sandman


def test_invalid_websocket_messages_raise_and_the_worker_lives():
    with sandman("tests.parsing_apps:ws_bad_messages") as server:
        for _ in range(2):  # the second client proves the worker survived the first
            with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5) as ws:
                outcomes = json.loads(ws.recv(timeout=5))
                assert ws.response.headers.get("sec-websocket-protocol") is None
                assert "x-a" not in ws.response.headers
        assert outcomes == {
            "non-ascii-subprotocol": "ValueError",
            "subprotocol-bytes": "TypeError",
            "header-crlf": "ValueError",
            "header-non-ascii-str": "TypeError",
            "send-before-accept": "RuntimeError",
            "text-bytes": "TypeError",
            "both": "ValueError",
            "close-code-bool": "TypeError",
            "close-code-1005": "ValueError",
            "close-reason-int": "TypeError",
        }
        assert server.proc.poll() is None
        assert "panicked" not in server.stderr
