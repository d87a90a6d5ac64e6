"""Bad input fails at once, in one line, with uvicorn's exit statuses: 3 for an app that
cannot start, 2 for a usage error. Every case runs the real command in a subprocess.

uvicorn 0.54 has no answer for these (a 20-line traceback and status 1 for a syntax error
in the app, one process for ``--workers 0``, a raw ``ValueError`` for
``WEB_CONCURRENCY=abc``, a server answering 500 to every request for a non-callable app),
so the statuses are the ones uvicorn uses for the same kind of failure
(docs/differences.md, "Startup and usage errors").
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from tests.serverproc import command, read_to_eof, sandman, spawn

APP = "async def app(scope, receive, send):\n    pass\n"


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, str]:
    server = spawn(command(*args, "--port", "0"), env=env, cwd=cwd)
    try:
        rc = server.wait(timeout=timeout)
    finally:
        if server.proc.poll() is None:
            server.stop()
    return rc, server.stderr


def _one_error_line(stderr: str) -> str:
    """The only ``Error:`` line of a click usage error (after its ``Usage:`` lines)."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, stderr
    assert "Usage: " in stderr and stderr.rstrip("\n").endswith(errors[0])
    return errors[0]


# -- the app cannot start: exit 3 -----------------------------------------------------------


def test_syntax_error_in_the_app_is_one_line_at_the_apps_own_file(tmp_path):
    app = tmp_path / "broken.py"
    app.write_text("import os\n\ndef app(:\n    pass\n")
    rc, stderr = _run("broken:app", cwd=tmp_path)
    assert rc == 3
    line = re.escape(f'ERROR:    Error loading ASGI app. File "{app}", line 3: SyntaxError: ')
    assert re.fullmatch(line + r"[^\n]+", stderr), stderr


def test_syntax_error_in_a_module_the_app_imports_points_at_that_module(tmp_path):
    (tmp_path / "helpers.py").write_text("x = (\n")
    (tmp_path / "main.py").write_text("import helpers\n" + APP)
    rc, stderr = _run("main:app", cwd=tmp_path)
    assert rc == 3
    assert stderr.startswith(f'ERROR:    Error loading ASGI app. File "{tmp_path / "helpers.py"}"')
    assert len(stderr.splitlines()) == 1, stderr


def test_syntax_error_under_workers_stops_the_parent_with_3(tmp_path):
    (tmp_path / "broken.py").write_text("def app(:\n")
    rc, stderr = _run("broken:app", "--workers", "2", cwd=tmp_path)
    assert rc == 3
    assert "SyntaxError: " in stderr and "Traceback" not in stderr
    assert "failed to start, stopping the parent process" in stderr


def test_an_exception_while_importing_shows_only_the_apps_frames(tmp_path):
    (tmp_path / "main.py").write_text(
        APP + "\ndef connect():\n    raise RuntimeError('no DATABASE_URL')\n\nconnect()\n"
    )
    rc, stderr = _run("main:app", cwd=tmp_path)
    assert rc == 3
    lines = stderr.splitlines()
    assert (
        lines[0] == 'ERROR:    Error loading ASGI app. Importing module "main" raised RuntimeError.'
    )
    assert lines[1] == "Traceback (most recent call last):"
    # From the app's own module on: no frame of Sandman, click or importlib.
    frames = [line for line in lines if line.startswith("  File ")]
    assert frames and all(str(tmp_path / "main.py") in frame for frame in frames), stderr
    assert lines[-1] == "RuntimeError: no DATABASE_URL"


@pytest.mark.parametrize(
    ("source", "flags", "message"),
    [
        ("app = 42\n", [], '"main:app" is an int, not an ASGI application (a callable).'),
        (
            "def app():\n    return 'not an app'\n",
            ["--factory"],
            'The factory "main:app" returned a str, not an ASGI application (a callable).',
        ),
    ],
    ids=["object", "factory-result"],
)
def test_a_non_callable_app_fails_at_startup_in_one_line(tmp_path, source, flags, message):
    (tmp_path / "main.py").write_text(source)
    rc, stderr = _run("main:app", *flags, cwd=tmp_path)
    assert rc == 3
    assert stderr == f"ERROR:    Error loading ASGI app. {message}"


def test_interface_wsgi_is_refused_in_one_line(tmp_path):
    (tmp_path / "main.py").write_text(APP)
    rc, stderr = _run("main:app", "--interface", "wsgi", cwd=tmp_path)
    assert rc == 3
    assert stderr.startswith("ERROR:    --interface wsgi is not supported by Sandman; wrap the app")
    assert "a2wsgi" in stderr and len(stderr.splitlines()) == 1


# -- usage errors: exit 2 -------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_workers_below_one_is_a_usage_error(tmp_path, workers):
    (tmp_path / "main.py").write_text(APP)
    rc, stderr = _run("main:app", "--workers", workers, cwd=tmp_path)
    assert rc == 2
    assert _one_error_line(stderr) == (
        f"Error: Invalid value for '--workers': {workers} is not a number of worker "
        "processes (1 or more)."
    )


@pytest.mark.parametrize("value", ["abc", "0", "2.5"])
def test_a_bad_web_concurrency_is_a_usage_error(tmp_path, value):
    (tmp_path / "main.py").write_text(APP)
    rc, stderr = _run("main:app", cwd=tmp_path, env={"WEB_CONCURRENCY": value})
    assert rc == 2
    assert _one_error_line(stderr) == (
        f"Error: Invalid value for WEB_CONCURRENCY: {value!r} is not a number of worker "
        "processes (a whole number, 1 or more)."
    )


def test_a_bad_web_concurrency_from_the_env_file_is_a_usage_error(tmp_path):
    (tmp_path / "main.py").write_text(APP)
    (tmp_path / "app.env").write_text("WEB_CONCURRENCY=many\n")
    rc, stderr = _run("main:app", "--env-file", "app.env", cwd=tmp_path)
    assert rc == 2
    assert "Error: Invalid value for WEB_CONCURRENCY: 'many'" in _one_error_line(stderr)


# -- environment spellings follow the flags -------------------------------------------------


def _seconds_until_a_half_sent_head_is_dropped(env: dict[str, str]) -> float:
    # The keep-alive timeout (5 s by default) also bounds a request head; raise it so only
    # the request-header timeout can close the connection this early.
    with sandman("tests.apps:hello", "--timeout-keep-alive", "30", env=env) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            start = time.monotonic()
            read_to_eof(sock)
            return time.monotonic() - start


@pytest.mark.parametrize(
    "variable",
    [
        "SANDMAN_TIMEOUT_REQUEST_HEADER",
        "UVICORN_TIMEOUT_REQUEST_HEADER",
        "SANDMAN_HEADER_READ_TIMEOUT",
    ],
)
def test_timeout_request_header_is_read_from_its_flags_name(variable):
    assert _seconds_until_a_half_sent_head_is_dropped({variable: "0.5"}) < 3


def test_the_flags_spelling_wins_over_the_old_one():
    env = {"SANDMAN_TIMEOUT_REQUEST_HEADER": "0.5", "SANDMAN_HEADER_READ_TIMEOUT": "60"}
    assert _seconds_until_a_half_sent_head_is_dropped(env) < 3
