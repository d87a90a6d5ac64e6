"""The ``sandman`` command as a process: log lines, lifespan, signals, exit statuses
(issue #2 "Running it"; D-PROC in docs/uvicorn-surface-coverage.md)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.serverproc import ROOT, command, free_port, read_to_eof, sandman, spawn


def _run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def test_default_log_lines_and_sigint_exit_0():
    with sandman("tests.apps:hello") as server:
        httpx.get(server.url + "/a%20b?x=1")
        server.wait_for(r'127\.0\.0\.1:\d+ - "GET /a%20b\?x=1 HTTP/1\.1" 200 OK', stream="stdout")
        rc = server.stop(signal.SIGINT)
    assert rc == 0
    lines = [line for line in server.stderr.splitlines() if line and not line.startswith("APP ")]
    pid = server.proc.pid
    assert lines == [
        f"INFO:     Started server process [{pid}]",
        "INFO:     Waiting for application startup.",
        "INFO:     Application startup complete.",
        f"INFO:     Sandman running on http://127.0.0.1:{server.port} (Press CTRL+C to quit)",
        "INFO:     Shutting down",
        "INFO:     Waiting for application shutdown.",
        "INFO:     Application shutdown complete.",
        f"INFO:     Finished server process [{pid}]",
    ]


def test_sigterm_dies_by_signal_after_graceful_shutdown():
    with sandman("tests.apps:hello") as server:
        rc = server.stop(signal.SIGTERM)
    assert rc == -signal.SIGTERM
    assert "Application shutdown complete." in server.stderr


def test_no_access_log():
    with sandman("tests.apps:hello", "--no-access-log") as server:
        httpx.get(server.url)
        server.stop()
    assert "GET /" not in server.stdout


def test_lifespan_unsupported_under_auto():
    with sandman("tests.apps:no_lifespan") as server:
        assert httpx.get(server.url).text == "no lifespan here"
        rc = server.stop()
    assert rc == 0
    assert "INFO:     ASGI 'lifespan' protocol appears unsupported." in server.stderr
    assert "Waiting for application shutdown." not in server.stderr


def test_lifespan_on_makes_the_exception_fatal():
    result = _run("tests.apps:no_lifespan", "--port", "0", "--lifespan", "on")
    assert result.returncode == 3
    assert "Exception in 'lifespan' protocol" in result.stderr
    assert "ERROR:    Application startup failed. Exiting." in result.stderr


def test_lifespan_off_prints_nothing():
    with sandman("tests.apps:hello", "--lifespan", "off") as server:
        server.stop()
    assert "application startup" not in server.stderr.lower()


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_lifespan_startup_failed_exits_3(mode):
    result = _run("tests.apps:lifespan_failed", "--port", "0", "--lifespan", mode)
    assert result.returncode == 3
    assert "ERROR:    database unreachable" in result.stderr
    assert "ERROR:    Application startup failed. Exiting." in result.stderr
    assert "running on" not in result.stderr


def test_startup_waits_for_lifespan_before_accepting(tmp_path):
    (tmp_path / "slowstart.py").write_text(
        "import asyncio\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'lifespan':\n"
        "        await receive(); await asyncio.sleep(1.0)\n"
        "        await send({'type': 'lifespan.startup.complete'})\n"
        "        await receive(); await send({'type': 'lifespan.shutdown.complete'}); return\n"
        "    await send({'type': 'http.response.start', 'status': 200})\n"
        "    await send({'type': 'http.response.body', 'body': b'up'})\n"
    )
    port = free_port()
    server = spawn(command("slowstart:app", "--port", str(port), "--app-dir", str(tmp_path)))
    try:
        time.sleep(0.5)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        server.wait_for("running on")
        assert httpx.get(f"http://127.0.0.1:{port}").text == "up"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("nocolon", 'Import string "nocolon" must be in format "<module>:<attribute>".'),
        ("no_such_module:app", 'Could not import module "no_such_module".'),
        ("tests.apps:nope", 'Attribute "nope" not found in module "tests.apps".'),
    ],
)
def test_bad_app_path_is_one_line_and_exit_3(app, message):
    result = _run(app, "--port", "0")
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [f"ERROR:    Error loading ASGI app. {message}"]


@pytest.mark.parametrize(
    "args",
    [
        ["tests.apps:hello", "--port", "notanint"],
        ["tests.apps:hello", "--lifespan", "sometimes"],
        ["tests.apps:hello", "--no-such-flag"],
        ["tests.apps:hello", "--log-level", "INFO"],
        ["tests.apps:hello", "--http", "nope"],
        [],
    ],
    ids=[
        "bad-int",
        "bad-choice",
        "unknown-flag",
        "case-sensitive-choice",
        "bad-selector",
        "missing-app",
    ],
)
def test_usage_errors_exit_2(args):
    result = _run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: ")
    assert "Error: " in result.stderr
    assert "Traceback" not in result.stderr


def test_bind_failure_exits_3():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run("tests.apps:hello", "--port", str(port))
    assert result.returncode == 3
    assert (
        f"error while attempting to bind on address ('127.0.0.1', {port}): address already in use"
        in result.stderr
    )


def test_version():
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("Running sandman ") and " with CPython " in result.stdout


def test_python_dash_m_and_console_script():
    script = os.path.join(os.path.dirname(sys.executable), "sandman")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0 and result.stdout.startswith("Running sandman")


def test_graceful_shutdown_lets_in_flight_finish_and_refuses_new():
    with sandman("tests.apps:slow") as server:
        result = {}

        def client():
            result["r"] = httpx.get(server.url + "/?s=1.5", timeout=10)

        t = threading.Thread(target=client)
        t.start()
        time.sleep(0.5)
        server.send_signal(signal.SIGINT)
        time.sleep(0.3)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        t.join(10)
        rc = server.wait()
    assert result["r"].status_code == 200 and result["r"].text == "start;end"
    assert rc == 0
    assert "Waiting for connections to close. (CTRL+C to force quit)" in server.stderr


def test_a_response_started_during_shutdown_says_connection_close():
    # D-PROC-3: in-flight responses finish, with `connection: close`
    # (the app here has not sent its head yet when the shutdown starts).
    with sandman("tests.apps:slow") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET /late?s=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.5)
            server.send_signal(signal.SIGINT)
            data = read_to_eof(s)  # the server closes it after the response
        assert server.wait() == 0
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK" and body == b"late"
    assert [line for line in lines if line.lower().startswith(b"connection:")] == [
        b"connection: close"
    ]


def test_a_second_sigint_exits_at_once_during_a_slow_request():
    # D-PROC-2: the first SIGINT waits for the request in flight, a second
    # one stops waiting; the process still exits 0, as uvicorn's does.
    with sandman("tests.apps:slow") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET /?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.3)
            server.send_signal(signal.SIGINT)
            server.wait_for("Waiting for connections to close.")
            assert server.proc.poll() is None, "exited while a request was in flight"
            start = time.monotonic()
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=10) == 0
            assert time.monotonic() - start < 3


def test_idle_keep_alive_connections_close_at_once_on_shutdown():
    with sandman("tests.apps:hello") as server:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(65536)
        start = time.monotonic()
        server.send_signal(signal.SIGINT)
        assert s.recv(100) == b""
        assert time.monotonic() - start < 1.0
        s.close()
        assert server.wait() == 0


def test_a_connection_accepted_before_shutdown_may_still_send_its_first_request():
    # With --workers, a rolling restart retires a worker that may have just accepted a
    # connection whose request it has not read yet. Closing it as idle drops the request
    # (the client sees the connection close with no response); it is served instead, with
    # `connection: close` (FIRST_REQUEST_GRACE, sandman_core/src/server/conn.rs).
    with sandman("tests.apps:hello") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            time.sleep(0.3)  # accepted by now
            server.send_signal(signal.SIGINT)
            # Logged just before the core asks every connection to close; well within
            # the grace (500 ms) after it.
            server.wait_for("Shutting down")
            time.sleep(0.05)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = read_to_eof(s)
        assert server.wait() == 0
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK" and body == b"Hello, world!", data
    assert b"connection: close" in lines


def test_a_connection_that_never_sends_does_not_hold_up_shutdown():
    with sandman("tests.apps:hello") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            time.sleep(0.3)
            start = time.monotonic()
            server.send_signal(signal.SIGINT)
            assert read_to_eof(s) == b""  # closed once the first-request grace is over
            assert time.monotonic() - start < 1.5
        assert server.wait() == 0


def test_graceful_timeout_cancels_stuck_requests():
    with sandman("tests.apps:slow", "--timeout-graceful-shutdown", "1") as server:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.sendall(b"GET /?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        start = time.monotonic()
        server.send_signal(signal.SIGINT)
        rc = server.wait(timeout=10)
        assert time.monotonic() - start < 5
        s.close()
    assert rc == 0
    assert "ERROR:    Cancel 1 running task(s), timeout graceful shutdown exceeded" in server.stderr


def test_fd_adopts_an_inherited_socket():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        with sandman(
            "tests.apps:hello", "--fd", str(sock.fileno()), pass_fds=(sock.fileno(),), port=False
        ) as server:
            server.wait_for(rf"Sandman running on socket \('127\.0\.0\.1', {port}\)")
            assert httpx.get(f"http://127.0.0.1:{port}").text == "Hello, world!"
    finally:
        sock.close()


def test_env_vars_configure_like_uvicorn():
    with sandman("tests.apps:scope_echo", env={"UVICORN_ROOT_PATH": "/env"}) as server:
        assert httpx.get(server.url + "/x").json()["scope"]["root_path"] == "/env"
