"""Real frameworks and real gunicorn on Sandman, over real sockets (issue #5 integrations/,
D-API-5): the example apps under ``integrations/`` started with the one-line swap
(``sandman main:app``, ``sandman myproject.asgi:application``, ``python main.py``) and
``gunicorn -k sandman_asgi.workers.SandmanWorker``."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.serverproc import ROOT, ServerProcess, free_port, sandman, spawn

INTEGRATIONS = ROOT / "integrations"


@contextlib.contextmanager
def stopped_at_exit(server: ServerProcess) -> Iterator[ServerProcess]:
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop(signal.SIGTERM, timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.proc.pid, signal.SIGKILL)


# -- FastAPI --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fastapi_server() -> Iterator[ServerProcess]:
    with sandman("main:app", cwd=INTEGRATIONS / "fastapi_app") as server:
        yield server


def test_fastapi_json_validation_and_lifespan_state(fastapi_server):
    url = fastapi_server.url
    assert httpx.get(url + "/").json() == {"greeting": "hello", "server": True}
    created = httpx.post(url + "/items/7", json={"name": "lamp", "price": 9.5})
    assert created.status_code == 201
    assert created.json() == {"id": 7, "name": "lamp", "price": 9.5}
    item = httpx.get(url + "/items/7", params={"q": "a b"}).json()
    assert item == {"id": 7, "q": "a b", "item": {"name": "lamp", "price": 9.5}}
    invalid = httpx.post(url + "/items/8", json={"name": "no price"})
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "price"]
    assert httpx.get(url + "/items/not-an-int").status_code == 422


def test_fastapi_openapi_docs_and_streaming(fastapi_server):
    url = fastapi_server.url
    assert httpx.get(url + "/openapi.json").json()["info"]["title"] == "Sandman FastAPI example"
    assert "swagger-ui" in httpx.get(url + "/docs").text
    streamed = httpx.get(url + "/stream", params={"n": 4})
    assert streamed.text == "0\n1\n2\n3\n"
    assert streamed.headers.get("transfer-encoding") == "chunked"


def test_fastapi_websocket_echo(fastapi_server):
    with connect(f"ws://127.0.0.1:{fastapi_server.port}/ws", open_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo: hi"
        ws.send("again")
        assert ws.recv(timeout=5) == "echo: again"


def test_fastapi_websocket_broadcast_and_subprotocol(fastapi_server):
    url = f"ws://127.0.0.1:{fastapi_server.port}/ws/room"
    with (
        connect(url, subprotocols=["chat.v2"], open_timeout=5) as a,
        connect(url, open_timeout=5) as b,
    ):
        assert a.subprotocol == "chat.v2" and b.subprotocol is None
        a.send("hello room")
        # every member gets it, tagged with the sender's protocol
        assert a.recv(timeout=5) == "chat.v2: hello room"
        assert b.recv(timeout=5) == "chat.v2: hello room"
        b.send("hi")
        assert a.recv(timeout=5) == "plain: hi"
        assert b.recv(timeout=5) == "plain: hi"


def test_fastapi_websocket_rejection(fastapi_server):
    from websockets.exceptions import InvalidStatus

    url = f"ws://127.0.0.1:{fastapi_server.port}/ws/private"
    with pytest.raises(InvalidStatus) as refused:
        with connect(url, open_timeout=5):
            pass
    assert refused.value.response.status_code == 403
    with connect(url + "?token=letmein", open_timeout=5) as ws:
        assert ws.recv(timeout=5) == "welcome"


def test_fastapi_access_log_lines(fastapi_server):
    httpx.get(fastapi_server.url + "/items/1?q=x")
    fastapi_server.wait_for(r'"GET /items/1\?q=x HTTP/1\.1" 200 OK', stream="stdout")


# -- Starlette ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starlette_server() -> Iterator[ServerProcess]:
    flags = ("--root-path", "/api")
    with sandman("main:app", *flags, cwd=INTEGRATIONS / "starlette_app") as server:
        yield server


def test_starlette_routes_state_and_body(starlette_server):
    url = starlette_server.url
    assert httpx.get(url + "/").json() == {"hello": "world", "visits": 1}
    assert httpx.get(url + "/").json()["visits"] == 2
    echoed = httpx.post(url + "/echo", content=b"x" * 200_000)
    assert echoed.headers["x-length"] == "200000" and echoed.content == b"x" * 200_000
    assert httpx.get(url + "/countdown").text == "3\n2\n1\n"
    assert httpx.get(url + "/nowhere").status_code == 404


def test_starlette_root_path_mounting(starlette_server):
    # uvicorn semantics: --root-path sets root_path and Starlette routes below it.
    body = httpx.get(starlette_server.url + "/users/ada").json()
    assert body["name"] == "ada" and body["root_path"] == "/api"
    assert body["url"] == f"http://127.0.0.1:{starlette_server.port}/api/users/ada"


def test_starlette_websocket(starlette_server):
    with connect(f"ws://127.0.0.1:{starlette_server.port}/ws", open_timeout=5) as ws:
        ws.send("shout")
        assert ws.recv(timeout=5) == "SHOUT"


@pytest.mark.parametrize("app_dir", ["fastapi_app", "starlette_app"])
def test_python_main_py_launcher(app_dir):
    port = free_port()
    source = (INTEGRATIONS / app_dir / "main.py").read_text()
    assert 'sandman_asgi.run("main:app", host="127.0.0.1", port=8000)' in source
    # Run the file's own __main__ block, on a free port instead of 8000.
    launcher = source.replace("port=8000", f"port={port}")
    server = spawn([sys.executable, "-c", launcher], cwd=INTEGRATIONS / app_dir)
    with stopped_at_exit(server):
        server.wait_for(rf"Sandman running on http://127\.0\.0\.1:{port} ")
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        assert server.stop(signal.SIGINT) == 0


# -- Django ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_server() -> Iterator[ServerProcess]:
    with sandman("myproject.asgi:application", cwd=INTEGRATIONS / "django_project") as server:
        yield server


def test_django_views(django_server):
    url = django_server.url
    page = httpx.get(url + "/")
    assert page.status_code == 200 and "<h1>Django on Sandman</h1>" in page.text
    ping = httpx.get(url + "/api/ping", params={"q": "1"}).json()
    assert ping == {"pong": True, "path": "/api/ping", "scheme": "http", "q": "1"}
    echoed = httpx.post(url + "/api/echo", json={"a": [1, 2]})
    assert echoed.status_code == 201 and echoed.json()["received"] == {"a": [1, 2]}
    assert httpx.get(url + "/missing").status_code == 404


def test_django_static_files(django_server):
    css = httpx.get(django_server.url + "/static/css/site.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "Served by Sandman" in css.text
    assert httpx.get(django_server.url + "/static/css/none.css").status_code == 404


def test_django_lifespan_is_reported_unsupported(django_server):
    # Django's ASGI handler has no lifespan support; under --lifespan auto that is a note.
    assert "INFO:     ASGI 'lifespan' protocol appears unsupported." in django_server.stderr


# -- gunicorn -------------------------------------------------------------------------------


def gunicorn(app: str, *flags: str) -> tuple[ServerProcess, int]:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "sandman_asgi.workers.SandmanWorker",
        "-b",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "-",
        "--graceful-timeout",
        "5",
        *flags,
        app,
    ]
    return spawn(args, env={"GUNICORN_CMD_ARGS": ""}), port


def _started(server: ServerProcess) -> list[int]:
    return [int(p) for p in re.findall(r"Started server process \[(\d+)\]", server.stderr)]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_gunicorn_worker_serves_and_stops_gracefully():
    server, port = gunicorn("tests.supervised_apps:pid", "-w", "2")
    with stopped_at_exit(server):
        _wait(lambda: server.stderr.count("Application startup complete.") == 2, 20, "workers")
        pids = {int(httpx.get(f"http://127.0.0.1:{port}/x?y=1").text) for _ in range(20)}
        assert pids <= set(_started(server)) and server.proc.pid not in pids
        # Sandman's records go through gunicorn's loggers (its error format, its access log).
        assert re.search(r"\[\d+\] \[INFO\] Started server process \[\d+\]", server.stderr)
        server.wait_for(r'127\.0\.0\.1:\d+ - "GET /x\?y=1 HTTP/1\.1" 200', stream="stdout")
        assert server.stop(signal.SIGTERM, timeout=15) == 0
    assert server.stderr.count("Application shutdown complete.") == 2


def test_gunicorn_max_requests_recycles_the_worker():
    server, port = gunicorn("tests.supervised_apps:pid", "-w", "1", "--max-requests", "3")
    with stopped_at_exit(server):
        _wait(lambda: "Application startup complete." in server.stderr, 20, "the worker")
        first = _started(server)[0]
        seen = set()
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                seen.add(int(httpx.get(f"http://127.0.0.1:{port}/").text))
        assert first in seen and len(seen) == 2
        assert "Maximum request limit of 3 exceeded. Terminating process." in server.stderr


def test_gunicorn_boot_error_stops_the_arbiter():
    server, _ = gunicorn("tests.apps:lifespan_failed", "-w", "1")
    with stopped_at_exit(server):
        rc = server.wait(timeout=30)
    assert rc == 3  # gunicorn's "worker failed to boot" status
    assert "Application startup failed. Exiting." in server.stderr
    assert "Worker failed to boot." in server.stderr


def test_gunicorn_hup_replaces_the_workers():
    server, port = gunicorn("tests.supervised_apps:pid", "-w", "1")
    with stopped_at_exit(server):
        _wait(lambda: len(_started(server)) == 1, 20, "the worker")
        old = _started(server)[0]
        server.send_signal(signal.SIGHUP)
        _wait(lambda: len(_started(server)) == 2, 20, "a new worker")

        def served_by_new() -> bool:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                return int(httpx.get(f"http://127.0.0.1:{port}/").text) != old
            return False

        _wait(served_by_new, 20, "the new worker to serve")


def test_integrations_readme_documents_the_one_line_swap():
    readme = (INTEGRATIONS / "README.md").read_text()
    for line in (
        "sandman main:app",
        "sandman myproject.asgi:application",
        "gunicorn -k sandman_asgi.workers.SandmanWorker",
    ):
        assert line in readme, line


def test_example_files_are_where_the_readme_says():
    for path in (
        "fastapi_app/main.py",
        "fastapi_package/app/main.py",
        "fastapi_package/app/routers/items.py",
        "starlette_app/main.py",
        "starlette_nested/backend/__init__.py",
        "starlette_nested/backend/api/server.py",
        "django_project/manage.py",
        "django_project/myproject/asgi.py",
        "django_project/static/css/site.css",
    ):
        assert (INTEGRATIONS / path).is_file(), path
    assert Path(INTEGRATIONS / "README.md").is_file()
