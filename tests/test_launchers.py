"""``sandman dev PATH`` and ``sandman run PATH`` end to end: the example projects under
``integrations/`` (single file, package, nested package; FastAPI and Starlette) started as
fastapi-cli would start them, and driven over real sockets with httpx and websockets."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.serverproc import ROOT, ServerProcess, command, free_port, spawn

INTEGRATIONS = ROOT / "integrations"


@contextlib.contextmanager
def launched(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """``sandman ARGS`` in ``cwd``, yielded once it serves; stopped by PID (SIGINT) after."""
    server = spawn(command(*args), cwd=cwd, env=env)
    try:
        m = server.wait_for(r"running on http://[^ ]*:(\d+) ", timeout=30)
        server.port = int(m.group(1))
        server.wait_for(r"Application startup complete\.|lifespan' protocol appears", 30)
        yield server
    finally:
        if server.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop(signal.SIGINT, timeout=15)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.proc.pid, signal.SIGKILL)


def banner(server: ServerProcess) -> list[str]:
    return [line for line in server.stdout.splitlines() if line.startswith(("sandman ", "  "))]


def run_to_exit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


# -- single file: the fastapi-cli quick start ------------------------------------------------


def test_dev_main_py_serves_the_fastapi_app_with_reload_on_loopback():
    port = free_port()
    with launched("dev", "main.py", "--port", str(port), cwd=INTEGRATIONS / "fastapi_app") as s:
        assert banner(s) == [
            "sandman dev: FastAPI app in development mode (auto-reload on)",
            f"  import    main:app  (by name; from {INTEGRATIONS / 'fastapi_app'})",
            f"  serving   http://127.0.0.1:{port}",
            f"  API docs  http://127.0.0.1:{port}/docs",
        ]
        assert f"Sandman running on http://127.0.0.1:{port} " in s.stderr
        assert "Started reloader process" in s.stderr
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/").json() == {"greeting": "hello", "server": True}
        assert "swagger-ui" in httpx.get(url + "/docs").text
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "echo: hi"
        assert s.stop(signal.SIGINT, timeout=15) == 0
    assert "Application shutdown complete." in s.stderr


def test_run_main_py_serves_on_every_interface_without_reload():
    port = free_port()
    with launched("run", "main.py", "--port", str(port), cwd=INTEGRATIONS / "fastapi_app") as s:
        assert banner(s)[0] == "sandman run: FastAPI app in production mode"
        assert f"  serving   http://0.0.0.0:{port}" in banner(s)
        assert f"Sandman running on http://0.0.0.0:{port} " in s.stderr
        assert "reloader" not in s.stderr
        created = httpx.post(f"http://127.0.0.1:{port}/items/3", json={"name": "a", "price": 1})
        assert created.status_code == 201


# -- package: app/main.py with relative imports, found without a PATH ------------------------


def test_dev_without_path_finds_app_main_py_in_the_package(tmp_path):
    # A copy, so the reload can be shown by editing a file.
    project = tmp_path / "fastapi_package"
    shutil.copytree(INTEGRATIONS / "fastapi_package", project)
    port = free_port()
    with launched("dev", "--port", str(port), cwd=project) as s:
        lines = banner(s)
        assert lines[1] == f"  import    app.main:app  (by name; from {project})"
        assert lines[-1] == f"  API docs  http://127.0.0.1:{port}/documentation"
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/documentation").status_code == 200
        assert httpx.get(url + "/items/1").json() == {"id": 1, "name": "lamp"}
        items = project / "app" / "routers" / "items.py"
        items.write_text(items.read_text().replace('"lamp"', '"desk lamp"'))
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/items/1").json().get("name") == "desk lamp":
                    break
            assert time.monotonic() < deadline, s.stderr
            time.sleep(0.2)
        assert "WatchFiles detected changes in 'app/routers/items.py'. Reloading..." in s.stderr


def test_run_with_workers_and_proxy_headers():
    port = free_port()
    project = INTEGRATIONS / "fastapi_package"
    args = ("run", "app/main.py", "--port", str(port), "--workers", "2")
    with launched(*args, cwd=project) as s:
        assert banner(s)[0] == "sandman run: FastAPI app in production mode (2 workers)"
        url = f"http://127.0.0.1:{port}/whoami"
        deadline = time.monotonic() + 20
        pids = set()
        while len(pids) < 2:
            assert time.monotonic() < deadline, f"one worker answered: {pids}"
            pids.add(httpx.get(url).json()["pid"])
        # The proxy on 127.0.0.1 is trusted by default: its client address and scheme count.
        forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        seen = httpx.get(url, headers=forwarded).json()
        assert (seen["client"], seen["scheme"]) == ("203.0.113.7", "https")


def test_run_no_proxy_headers_ignores_them():
    port = free_port()
    project = INTEGRATIONS / "fastapi_package"
    with launched("run", "app/main.py", "--port", str(port), "--no-proxy-headers", cwd=project):
        forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        seen = httpx.get(f"http://127.0.0.1:{port}/whoami", headers=forwarded).json()
        assert (seen["client"], seen["scheme"]) == ("127.0.0.1", "http")


# -- nested package: Starlette two packages deep ---------------------------------------------


@pytest.mark.parametrize(
    ("cwd", "path", "import_string"),
    [
        (".", "backend", "backend:app"),
        (".", "backend/api/server.py", "backend.api.server:api"),
        ("backend/api", "server.py", "backend.api.server:api"),
    ],
)
def test_run_a_nested_starlette_package(cwd, path, import_string):
    project = INTEGRATIONS / "starlette_nested"
    port = free_port()
    with launched("run", path, "--port", str(port), cwd=project / cwd) as s:
        lines = banner(s)
        assert lines[0] == "sandman run: Starlette app in production mode"
        assert lines[1] == f"  import    {import_string}  (by name; from {project})"
        assert not any("API docs" in line for line in lines)
        body = httpx.get(f"http://127.0.0.1:{port}/").json()
        assert body == {"greeting": "hello from backend.api", "module": "backend.api.server"}
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as ws:
            ws.send("quiet")
            assert ws.recv(timeout=5) == "QUIET"


# -- naming the app ------------------------------------------------------------------------


def test_app_option_entrypoint_and_pyproject(tmp_path):
    (tmp_path / "service.py").write_text(
        "async def handler(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'raw asgi'})\n"
    )
    for args in (
        ("service.py", "--app", "handler"),
        ("-e", "service:handler"),
        (),  # from pyproject.toml below
    ):
        (tmp_path / "pyproject.toml").write_text('[tool.fastapi]\nentrypoint = "service:handler"\n')
        port = free_port()
        with launched("run", *args, "--port", str(port), cwd=tmp_path) as s:
            assert "  import    service:handler  (" in s.stdout
            assert httpx.get(f"http://127.0.0.1:{port}/").text == "raw asgi"


def test_port_from_the_port_environment_variable():
    port = free_port()
    env = {"PORT": str(port)}
    with launched("run", "main.py", cwd=INTEGRATIONS / "starlette_app", env=env) as s:
        assert s.port == port
        assert httpx.get(f"http://127.0.0.1:{port}/").json()["hello"] == "world"


# -- dev:app and run:app stay import strings ------------------------------------------------


@pytest.mark.parametrize("name", ["dev", "run"])
def test_a_module_named_dev_or_run_is_an_import_string(tmp_path, name):
    (tmp_path / f"{name}.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        f"    await send({{'type': 'http.response.body', 'body': b'module {name}'}})\n"
    )
    port = free_port()
    with launched(f"{name}:app", "--port", str(port), cwd=tmp_path) as s:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == f"module {name}"
        assert not banner(s)  # uvicorn's command line: no launcher banner


# -- errors ----------------------------------------------------------------------------------


def test_a_missing_path_is_a_usage_error(tmp_path):
    result = run_to_exit("dev", "nowhere.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "Invalid value for PATH: path 'nowhere.py' does not exist" in result.stderr
    result = run_to_exit("run", cwd=tmp_path)
    assert result.returncode == 2
    assert "no PATH given and none of main.py, app.py" in result.stderr


def test_a_module_without_an_app_fails_to_start_with_status_3(tmp_path):
    (tmp_path / "main.py").write_text("import fastapi\nx = 1\n")
    result = run_to_exit("run", "main.py", cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "ERROR:    Error loading ASGI app. no FastAPI or Starlette app found in module "
        "'main'; name it with --app NAME"
    ]
    result = run_to_exit("run", "main.py", "--app", "nothing", cwd=tmp_path)
    assert result.returncode == 3
    assert "module 'main' has no attribute 'nothing' (--app)" in result.stderr


def test_entrypoint_with_a_path_is_refused(tmp_path):
    result = run_to_exit("run", "main.py", "-e", "main:app", cwd=tmp_path)
    assert result.returncode == 2
    assert "--entrypoint cannot be combined with PATH or --app" in result.stderr


def test_a_broken_package_explains_the_missing_init(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "util.py").write_text("X = 1\n")
    (tmp_path / "pkg" / "sub" / "main.py").write_text("from ..util import X\n")
    result = run_to_exit("run", "pkg/sub/main.py", cwd=tmp_path)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        'ERROR:    Error loading ASGI app. Importing module "main" raised ImportError.'
    )
    # The traceback starts in the app's own file, then the hint.
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[2].startswith(f'  File "{tmp_path / "pkg" / "sub" / "main.py"}", line 1')
    assert lines[-1].endswith("every folder of that package needs an __init__.py.")


def test_an_app_with_a_syntax_error_is_one_line(tmp_path):
    (tmp_path / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI(\n")
    result = run_to_exit("dev", "main.py", cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        f'ERROR:    Error loading ASGI app. File "{tmp_path / "main.py"}", line 2: '
        "SyntaxError: '(' was never closed"
    ]


def test_help_of_each_launcher():
    for name, only_in_run in (("dev", False), ("run", True)):
        result = run_to_exit(name, "--help", cwd=ROOT)
        assert result.returncode == 0
        assert result.stdout.startswith(f"Usage: sandman {name} [OPTIONS] [PATH]")
        assert ("--workers" in result.stdout) is only_in_run
        assert "env var: PORT" in result.stdout


def test_the_console_script_dispatches_too():
    script = Path(sys.executable).parent / "sandman"
    result = subprocess.run(
        [str(script), "dev", "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and "Usage: sandman dev" in result.stdout
