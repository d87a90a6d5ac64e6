"""The ``sandman_server`` fixture as a user gets it: a test file in a temporary folder outside
this repository, run by pytest in a subprocess with nothing but the installed packages (the
fixture comes from the ``pytest11`` entry point, not from a conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.serverproc import ROOT

USER_TESTS = textwrap.dedent(
    """
    import os
    from contextlib import asynccontextmanager

    import httpx
    import pytest
    from fastapi import FastAPI, WebSocket
    from websockets.sync.client import connect

    MARKER = os.environ["LIFESPAN_MARKER"]


    @asynccontextmanager
    async def lifespan(app):
        with open(MARKER, "a") as f:
            f.write("startup\\n")
        yield
        with open(MARKER, "a") as f:
            f.write("shutdown\\n")


    app = FastAPI(lifespan=lifespan)


    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}


    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        name = await websocket.receive_text()
        await websocket.send_text(f"hello {name}")
        await websocket.close()


    def test_http_and_websocket(sandman_server):
        server = sandman_server(app)
        assert httpx.get(f"{server.url}/items/3").json() == {"id": 3}
        with connect(f"{server.ws_url}/ws") as websocket:
            websocket.send("sandman")
            assert websocket.recv(timeout=5) == "hello sandman"


    @pytest.mark.asyncio
    async def test_async_client(sandman_server):
        server = sandman_server(app)
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/items/4")).json() == {"id": 4}


    def test_failing(sandman_server):
        server = sandman_server(app)
        assert httpx.get(f"{server.url}/items/5").json() == {"id": 6}
    """
)


def run_user_tests(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LIFESPAN_MARKER"] = str(folder / "lifespan.txt")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_user.py", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_users_test_file_outside_the_repository(tmp_path):
    folder = tmp_path / "user_project"
    folder.mkdir()
    assert ROOT not in folder.parents
    (folder / "test_user.py").write_text(USER_TESTS)

    passing = run_user_tests(folder, "-k", "not failing")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "2 passed" in passing.stdout
    marker = folder / "lifespan.txt"
    assert marker.read_text() == "startup\nshutdown\n" * 2

    marker.unlink()
    failing = run_user_tests(folder, "-k", "failing")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "1 failed" in failing.stdout
    # The failed test's server was still stopped with its lifespan shutdown.
    assert marker.read_text() == "startup\nshutdown\n"


def test_the_documented_example_passes(tmp_path):
    # docs/testing.md's example, run as a user would run it.
    text = (ROOT / "docs" / "testing.md").read_text()
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "def test_http_and_websocket(sandman_server)" in example
    (tmp_path / "test_user.py").write_text(example)
    result = run_user_tests(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
