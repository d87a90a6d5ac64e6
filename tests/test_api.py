"""The Python API as uvicorn users call it (D-API-1..4 in docs/uvicorn-surface-coverage.md):
signatures, ``serve()`` in a running loop, stopping from another thread, signal handling overrides,
port discovery, ``callback_notify``, ``log_config=None``."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import sandman_asgi
from sandman_asgi import Config, Server
from sandman_asgi import config as config_module
from sandman_asgi.testing import serve
from tests.signatures import dump

HERE = Path(__file__).resolve().parent
UVICORN_PYTHON = Path(
    os.environ.get("UVICORN_ANCHOR_PYTHON", HERE.parent / ".ci-uvicorn" / "bin" / "python")
)
SNAPSHOT = HERE / "uvicorn_0_54_surface.json"

# Sandman's own keywords, beyond uvicorn's; they must come after all of uvicorn's.
EXTRAS = {
    "header_read_timeout": 30.0,  # a request head must arrive within this many seconds
    "io_threads": 1,  # Rust IO threads per process
    "limit_request_line": 16384,  # longest request target, 414 beyond
    "limit_request_fields": 100,  # most header lines, 431 beyond
    "limit_request_body": None,  # largest body, 413 beyond
    "limit_connections": None,  # most open connections
    "timeout_request_body": 60.0,  # longest stall between body bytes, 408 after
    "limit_request_body_rate": 500.0,  # slowest body in bytes/s after the grace, 408 below
    "limit_request_body_rate_grace": 20.0,  # seconds of waiting before the rate applies
    "h2_max_concurrent_streams": 100,  # HTTP/2 streams one client may have open
    "static": None,  # PREFIX=DIRECTORY mounts served by the core
    "static_max_age": None,  # Cache-Control max-age for static files
    "static_index": False,  # a directory's index.html
    "cache_size": None,  # the core's response cache, in bytes
    "metrics_port": None,  # Prometheus metrics and health checks
    "metrics_host": None,  # where the metrics port listens (default: --host)
    "health_loop_timeout": 10.0,  # seconds without a loop turn before /livez fails
    "ws_deflate_window_bits": 12,  # permessage-deflate window, 2**N bytes
    "ws_deflate_context_takeover": False,  # keep compression context between messages
}


# -- signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["run", "Config"])
def test_signature_matches_uvicorn_0_54(name):
    expected = json.loads(SNAPSHOT.read_text())[name]
    ours = dump("sandman_asgi")[name]
    assert ours[: len(expected)] == expected
    extras = ours[len(expected) :]
    assert {p[0]: p[2] for p in extras} == EXTRAS
    kind = "KEYWORD_ONLY" if name == "run" else "POSITIONAL_OR_KEYWORD"
    assert all(p[1] == kind for p in extras)


def test_snapshot_is_what_uvicorn_0_54_has():
    if not UVICORN_PYTHON.exists():
        pytest.skip(f"uvicorn 0.54 reference interpreter not installed at {UVICORN_PYTHON}")
    live = subprocess.run(
        [str(UVICORN_PYTHON), str(HERE / "signatures.py"), "uvicorn"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(live.stdout) == json.loads(SNAPSHOT.read_text())


def test_public_names():
    assert {"main", "run", "Config", "Server"} <= set(sandman_asgi.__all__)
    for constant in (
        "LOGGING_CONFIG",
        "LOG_LEVELS",
        "HTTP_PROTOCOLS",
        "WS_PROTOCOLS",
        "LIFESPAN",
        "LOOP_FACTORIES",
        "INTERFACES",
        "SSL_PROTOCOL_VERSION",
    ):
        assert hasattr(config_module, constant), constant
    assert config_module.STARTUP_FAILURE == 3
    config = Config("tests.apps:hello", log_config=None)
    for member in (
        "load",
        "load_app",
        "bind_socket",
        "configure_logging",
        "get_loop_factory",
        "should_reload",
        "use_subprocess",
        "is_ssl",
        "asgi_version",
        "encoded_headers",
        "loaded",
        "callback_notify",
        "timeout_notify",
        "reload_dirs_excludes",
    ):
        assert hasattr(config, member), member


def test_server_members_have_uvicorns_shape():
    coroutines = {"serve", "startup", "main_loop", "on_tick", "shutdown"}
    plain = {"run", "handle_exit", "capture_signals"}
    for name in coroutines | plain:
        assert inspect.iscoroutinefunction(getattr(Server, name)) == (name in coroutines), name
    assert list(inspect.signature(Server.run).parameters) == ["self", "sockets"]
    assert list(inspect.signature(Server.on_tick).parameters) == ["self", "counter"]
    assert list(inspect.signature(Server.handle_exit).parameters) == ["self", "sig", "frame"]
    server = Server(Config("tests.apps:hello", log_config=None))
    for attribute in ("config", "started", "should_exit", "force_exit", "last_notified"):
        assert hasattr(server, attribute), attribute
    state = server.server_state
    assert (state.total_requests, state.connections, state.tasks) == (0, set(), set())
    assert state.default_headers == []


# -- apps run in this process ---------------------------------------------------------------


class Recorder:
    """An ASGI app that records lifespan events and can be slow on demand (``/slow``)."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.handler_during_request: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        self.handler_during_request = signal.getsignal(signal.SIGINT)
        if scope["path"] == "/slow":
            await asyncio.sleep(30)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _config(app: Any, **kwargs: Any) -> Config:
    kwargs.setdefault("log_config", None)
    return Config(app, port=0, **kwargs)


def _port(server: Server) -> int:
    return server.servers[0].sockets[0].getsockname()[1]


def _wait_started(server: Server, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)


@contextlib.contextmanager
def in_thread(server: Server) -> Iterator[threading.Thread]:
    """``server.run()`` on a thread (no signal handlers there); always stopped at the end."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait_started(server)
        yield thread
    finally:
        server.should_exit = True
        server.force_exit = True
        thread.join(10)
        assert not thread.is_alive(), "server thread did not stop"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return True
    return False


def test_serve_inside_a_running_loop_and_port_0_discovery():
    app = Recorder()

    async def main() -> int:
        server = Server(_config(app))
        task = asyncio.get_running_loop().create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = _port(server)
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/")
        assert response.text == "ok"
        server.should_exit = True
        await asyncio.wait_for(task, 5)
        return port

    port = asyncio.run(main())
    assert port != 0 and _refused(port)
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


def test_ssl_context_factory_is_refused_with_one_line_and_exit_3(tmp_path):
    # D-API-2 and docs/differences.md's TLS row: TLS is rustls in the core, so a Python
    # SSLContext factory cannot be used; the refusal is one ERROR line, exit 3, no serving.
    script = tmp_path / "serve.py"
    script.write_text(
        "import ssl, sandman_asgi\n"
        "sandman_asgi.run('tests.apps:hello', port=0,"
        " ssl_context_factory=lambda *a: ssl.create_default_context())\n"
    )
    from tests.serverproc import ROOT

    # PYTHONPATH, as the other subprocess tests: a script's directory is its sys.path[0],
    # and only an editable install happens to add the source tree.
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "ssl_context_factory is not supported" in errors[0]
    assert "running on" not in result.stderr


def test_protocol_classes_for_http_and_ws_are_accepted():
    # D-API-2: uvicorn takes a protocol class for ``http``/``ws``; Sandman has one
    # implementation of each in its core, so it accepts the class and serves as usual.
    class CustomProtocol:
        pass

    with serve(Recorder(), http=CustomProtocol, ws=CustomProtocol) as server:
        assert httpx.get(server.url + "/").text == "ok"


def test_config_headers_go_on_every_response():
    # D-API-2: `headers=` as (name, value) string pairs, as `--header` builds them.
    with serve(Recorder(), headers=[("X-A", "1"), ("x-b", "two words")]) as server:
        response = httpx.get(server.url + "/")
    assert response.text == "ok"
    assert response.headers["x-a"] == "1" and response.headers["x-b"] == "two words"
    assert response.headers["server"] == "sandman"


def test_should_exit_from_another_thread_stops_within_a_tenth_of_a_second():
    app = Recorder()
    server = Server(_config(app))
    with in_thread(server) as thread:
        port = _port(server)
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "ok"
        start = time.monotonic()
        server.should_exit = True
        while not _refused(port):
            assert time.monotonic() - start < 2
        stopped_listening = time.monotonic() - start
        thread.join(5)
        assert not thread.is_alive()
    # One 0.1 s tick to notice, plus connection set-up jitter in the probe.
    assert stopped_listening < 0.35, stopped_listening
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


def test_force_exit_skips_waiting_for_requests_and_lifespan_shutdown():
    app = Recorder()
    server = Server(_config(app))
    with in_thread(server) as thread:
        port = _port(server)
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while not server.server_state.tasks:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        server.should_exit = True
        time.sleep(0.3)
        assert thread.is_alive(), "must wait for the in-flight request"
        start = time.monotonic()
        server.force_exit = True
        thread.join(5)
        assert time.monotonic() - start < 1.0
        slow.close()
    assert app.events == ["lifespan.startup"]


def test_run_cancels_the_tasks_a_forced_exit_left_before_it_returns():
    # As asyncio.run does before closing its loop, on every version (3.10 has no
    # asyncio.Runner): a task left pending would be destroyed later, in whatever runs then.
    seen: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        try:
            if scope["type"] == "lifespan":
                await receive()
                await send({"type": "lifespan.startup.complete"})
                await receive()  # the shutdown a forced exit never sends
            else:
                await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append(f"{scope['type']} cancelled")
            raise

    server = Server(_config(app))
    with in_thread(server) as thread:
        with socket.create_connection(("127.0.0.1", _port(server))) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.monotonic() + 5
            while not server.server_state.tasks:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            server.should_exit = True
            server.force_exit = True
            thread.join(5)
            assert not thread.is_alive()
    assert sorted(seen) == ["http cancelled", "lifespan cancelled"]


def test_capture_signals_installs_and_restores_handle_exit():
    app = Recorder()
    server = Server(_config(app))
    before = signal.getsignal(signal.SIGINT)

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        assert signal.getsignal(signal.SIGINT) == server.handle_exit
        server.should_exit = True
        await task

    asyncio.run(main())
    assert signal.getsignal(signal.SIGINT) is before


def test_capture_signals_overridden_with_a_no_op_keeps_working():
    class NoSignals(Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    app = Recorder()
    server = NoSignals(_config(app))
    before = signal.getsignal(signal.SIGINT)

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{_port(server)}/")
        server.should_exit = True
        await task

    asyncio.run(main())
    # Whatever handled SIGINT (asyncio.run's own), it was never the server's.
    assert getattr(app.handler_during_request, "__self__", None) is not server
    assert signal.getsignal(signal.SIGINT) is before


def test_handle_exit_second_sigint_forces():
    server = Server(_config(Recorder()))
    server.handle_exit(signal.SIGINT, None)
    assert (server.should_exit, server.force_exit) == (True, False)
    server.handle_exit(signal.SIGINT, None)
    assert server.force_exit is True


def test_callback_notify_is_awaited_every_timeout_notify():
    calls: list[float] = []

    async def notify() -> None:
        calls.append(time.monotonic())

    server = Server(_config(Recorder(), callback_notify=notify, timeout_notify=0))
    with in_thread(server):
        deadline = time.monotonic() + 5
        while len(calls) < 2:
            assert time.monotonic() < deadline, calls
            time.sleep(0.02)
    # Checked once a second (every 10th tick), like uvicorn's.
    assert 0.8 < calls[1] - calls[0] < 1.5


def test_log_config_none_leaves_logging_alone():
    handler = logging.NullHandler()
    error_logger = logging.getLogger("uvicorn.error")
    error_logger.addHandler(handler)
    root_handlers = list(logging.getLogger().handlers)
    try:
        Config("tests.apps:hello", log_config=None)
        assert handler in error_logger.handlers
        assert logging.getLogger().handlers == root_handlers
    finally:
        error_logger.removeHandler(handler)


def test_use_colors_does_not_mutate_the_default_logging_config():
    snapshot = json.dumps(config_module.LOGGING_CONFIG, sort_keys=True)
    Config("tests.apps:hello", use_colors=False)
    assert json.dumps(config_module.LOGGING_CONFIG, sort_keys=True) == snapshot
    Config("tests.apps:hello", log_config=None)  # leave logging as the other tests expect


def test_log_level_accepts_any_case_and_ints():
    Config("tests.apps:hello", log_config=None, log_level="DEBUG")
    assert logging.getLogger("uvicorn.error").level == logging.DEBUG
    Config("tests.apps:hello", log_config=None, log_level=5)
    assert logging.getLogger("uvicorn.access").level == 5
    Config("tests.apps:hello", log_config=None, log_level="info")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def error_log() -> Iterator[_Capture]:
    capture = _Capture()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)


@pytest.mark.parametrize("option", [{"workers": 2}, {"reload": True}])
def test_run_needs_an_import_string_for_workers_or_reload(option, error_log):
    with pytest.raises(SystemExit) as exc:
        sandman_asgi.run(Recorder(), log_config=None, port=0, **option)
    assert exc.value.code == 3
    assert error_log.messages == [
        "You must pass the application as an import string to enable 'reload' or 'workers'."
    ]


def test_run_with_a_bad_import_string_exits_3_before_serving(error_log):
    with pytest.raises(SystemExit) as exc:
        sandman_asgi.run("tests.apps:missing", log_config=None, port=0)
    assert exc.value.code == 3
    assert error_log.messages == [
        'Error loading ASGI app. Attribute "missing" not found in module "tests.apps".'
    ]


def test_reload_options_without_reload_warn(error_log):
    Config("tests.apps:hello", log_config=None, reload_dirs=["."])
    assert error_log.messages == [
        "Current configuration will not reload as not all conditions are met, please refer "
        "to documentation."
    ]


def test_reload_dirs_default_to_the_working_directory(tmp_path, monkeypatch, error_log):
    monkeypatch.chdir(tmp_path)
    config = Config("tests.apps:hello", log_config=None, reload=True)
    assert config.reload_dirs == [tmp_path.resolve()]
    assert config.reload_includes == [] and config.reload_excludes == []
    assert error_log.messages == [
        f"Will watch for changes in these directories: ['{tmp_path.resolve()}']"
    ]


def test_get_loop_factory():
    assert Config("x:y", log_config=None, loop="none").get_loop_factory() is None
    assert Config("x:y", log_config=None, loop="asyncio").get_loop_factory() is (
        asyncio.new_event_loop
    )
    custom = Config("x:y", log_config=None, loop="asyncio:new_event_loop").get_loop_factory()
    assert custom is asyncio.new_event_loop


@pytest.mark.parametrize(
    "target",
    [
        "'tests.supervised_apps:pid'",
        # D-API-1: an app object works as well as an import string (without workers/reload).
        "__import__('tests.supervised_apps', fromlist=['pid']).pid",
    ],
    ids=["import-string", "app-object"],
)
def test_run_in_a_subprocess_with_port_0_and_callback_free_defaults(tmp_path, target):
    # The documented one-liner, as a script: sandman_asgi.run("mod:app", port=0).
    script = tmp_path / "serve.py"
    script.write_text(f"import sandman_asgi\nsandman_asgi.run({target}, port=0, lifespan='off')\n")
    from tests.serverproc import ROOT, spawn

    server = spawn([sys.executable, str(script)], cwd=ROOT)
    try:
        match = server.wait_for(r"Sandman running on http://127\.0\.0\.1:(\d+) ")
        port = int(match.group(1))
        assert httpx.get(f"http://127.0.0.1:{port}/").text == str(server.proc.pid)
        assert server.stop(signal.SIGINT) == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(5)
