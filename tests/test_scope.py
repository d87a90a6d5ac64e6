"""The HTTP connection scope exactly as the ASGI spec writes it (www.rst, "HTTP Connection
Scope"; issue #2, D-ASGI-1..3)."""

from __future__ import annotations

import json
import os
import socket
import tempfile

import httpx

from tests.serverproc import raw_exchange, read_to_eof, sandman


def _scope(port: int, request: bytes) -> dict:
    raw = raw_exchange(port, request)
    return json.loads(raw.partition(b"\r\n\r\n")[2])


def test_scope_keys_and_types(scope_server):
    seen = _scope(
        scope_server.port,
        b"GET /a%20b/c%2Fd?x=%20y&z HTTP/1.1\r\nHost: example\r\nX-Dup: 1\r\nAccept: */*\r\n"
        b"X-DUP: 2\r\nConnection: close\r\n\r\n",
    )
    scope, types = seen["scope"], seen["types"]
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/c/d"
    assert scope["raw_path"] == {"bytes": "/a%20b/c%2Fd"}
    assert scope["query_string"] == {"bytes": "x=%20y&z"}
    assert scope["root_path"] == ""
    # pathsend on every HTTP request, early hints on HTTP/1.1 ones; trailers only with
    # TE: trailers; tls only over TLS
    assert scope["extensions"] == {"http.response.pathsend": {}, "http.response.early_hint": {}}
    assert types == {
        "type": "str",
        "asgi": "dict",
        "http_version": "str",
        "server": "tuple",
        "client": "tuple",
        "scheme": "str",
        "method": "str",
        "root_path": "str",
        "path": "str",
        "raw_path": "bytes",
        "query_string": "bytes",
        "headers": "list",
        "state": "dict",
        "extensions": "dict",
    }
    client = scope["client"]["tuple"]
    assert client[0] == "127.0.0.1" and isinstance(client[1], int)
    assert scope["server"] == {"tuple": ["127.0.0.1", scope_server.port]}
    headers = [(h["tuple"][0]["bytes"], h["tuple"][1]["bytes"]) for h in scope["headers"]]
    assert ("host", "example") in headers
    dups = [v for k, v in headers if k == "x-dup"]
    assert dups == ["1", "2"], "duplicates kept, in received order, names lowercased"
    assert all(k == k.lower() for k, _ in headers)


def test_http10_version(scope_server):
    seen = _scope(scope_server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert seen["scope"]["http_version"] == "1.0"


def test_fresh_extensions_and_state_copy_per_scope(scope_server):
    with httpx.Client() as client:
        first = client.get(scope_server.url).json()
        second = client.get(scope_server.url).json()
    # the app sets extensions["leak"] and state["leak"]: neither may survive to the next scope
    assert set(second["scope"]["extensions"]) == {
        "http.response.pathsend",
        "http.response.early_hint",
    }
    assert "leak" not in second["state"]
    # lifespan state is visible; a mutated shared value is shared (shallow copy)
    assert first["state"]["name"] == "from-lifespan"
    assert second["state"]["counter"][0] == first["state"]["counter"][0] + 1


def test_root_path_prefixes_path_and_raw_path():
    with sandman("tests.apps:scope_echo", "--root-path", "/app") as server:
        seen = _scope(
            server.port, b"GET /one%2Ftwo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert seen["scope"]["root_path"] == "/app"
        assert seen["scope"]["path"] == "/app/one/two"
        assert seen["scope"]["raw_path"] == {"bytes": "/app/one%2Ftwo"}


def _get_over_unix_socket(path: str) -> bytes:
    """``GET /`` with ``Connection: close`` over the unix socket at ``path``; the raw reply."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_to_eof(s)


def test_unix_socket_server_is_path_none():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.sock")
        with sandman("tests.apps:scope_echo", "--uds", path, port=False) as server:
            server.wait_for("Sandman running on unix socket " + path)
            assert oct(os.stat(path).st_mode & 0o777) == oct(0o666)
            data = _get_over_unix_socket(path)
            seen = json.loads(data.partition(b"\r\n\r\n")[2])
            assert seen["scope"]["server"] == {"tuple": [path, None]}
            assert seen["scope"]["client"] is None
        assert not os.path.exists(path), "socket file removed at exit"


def test_an_existing_unix_socket_file_keeps_its_mode():
    # D-PROC-7, as uvicorn: a socket file left from an earlier run is replaced, but the
    # mode its owner gave it is kept instead of the default 0666.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.sock")
        with socket.socket(socket.AF_UNIX) as old:
            old.bind(path)
        os.chmod(path, 0o600)
        with sandman("tests.apps:hello", "--uds", path, port=False) as server:
            server.wait_for("Sandman running on unix socket " + path)
            assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
            data = _get_over_unix_socket(path)
            assert data.endswith(b"Hello, world!")


def test_asgi2_app_auto_detected_and_forced():
    with sandman("tests.apps:Asgi2App") as server:
        assert httpx.get(server.url).text == "asgi2 version=2.0"
    with sandman("tests.apps:Asgi2App", "--interface", "asgi2") as server:
        assert httpx.get(server.url).text == "asgi2 version=2.0"


def test_factory_and_app_dir(tmp_path):
    (tmp_path / "myapp.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'from app-dir'})\n"
        "def make():\n    return app\n"
    )
    with sandman("myapp:app", "--app-dir", str(tmp_path)) as server:
        assert httpx.get(server.url).text == "from app-dir"
    with sandman("myapp:make", "--app-dir", str(tmp_path), "--factory") as server:
        assert httpx.get(server.url).text == "from app-dir"


def test_tasks_inherit_the_server_context_unless_reset_contextvars():
    """D-ASGI-9: by default a request task starts from a copy of the server's context (a
    value set at import is visible); ``--reset-contextvars`` starts each in an empty one. In
    both, what one request sets never reaches the next."""
    with sandman("tests.apps:context_probe") as server:
        assert [httpx.get(server.url).text for _ in range(2)] == ["import-time"] * 2
    with sandman("tests.apps:context_probe", "--reset-contextvars") as server:
        assert [httpx.get(server.url).text for _ in range(2)] == ["unset"] * 2
