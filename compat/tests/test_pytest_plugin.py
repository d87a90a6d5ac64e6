"""``pytest --asgi-server CMD``: the checks as pytest items, run in a pytest subprocess in a
folder of its own (the plugin loaded with ``-p``, as the installed entry point loads it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FAKE = Path(__file__).with_name("fake_server.py")
SOURCES = Path(__file__).resolve().parent.parent.parent


def pytest_run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SOURCES)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "compat.pytest_plugin", "-p", "no:cacheprovider"]
        + ["-W", "ignore::DeprecationWarning", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def fake(mode: str) -> str:
    return f"{{python}} {FAKE} {mode} {{port}} {{app}}"


def test_each_check_is_a_test_and_a_failed_must_fails(tmp_path: Path) -> None:
    # The fake server answers 200 "ok" without the probe app: every scope check fails.
    only = "http.scope.dict,http.scope.type"
    result = pytest_run(tmp_path, "--asgi-server", fake("ok"), "--asgi-only", only, "-rA")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "collected 2 items" in result.stdout
    assert "2 failed" in result.stdout
    assert "FAILED asgi::http.scope.dict" in result.stdout
    # The failure reads as the check: id, strength, the rule, its source, the evidence.
    assert "http.scope.dict [MUST] fail: the probe app recorded no scope" in result.stdout
    assert "rule: the scope is a dict whose keys are all str" in result.stdout
    assert ">>> GET / HTTP/1.1" in result.stdout


def test_expected_failures_and_k_selection(tmp_path: Path) -> None:
    only = "http.scope.dict,http.scope.type,http.scope.method"
    args = ["--asgi-server", fake("ok"), "--asgi-only", only, "-k", "not method"]
    result = pytest_run(tmp_path, *args, "--asgi-expect-fail", "http.scope.dict,http.scope.type")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 xfailed" in result.stdout and "1 deselected" in result.stdout


def test_a_server_that_cannot_start_fails_every_check(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, "--asgi-server", fake("exit"), "--asgi-only", "http.scope.type")
    assert result.returncode == 1
    assert "server did not start: exited with status 4" in result.stdout


def test_usage_errors(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, "--asgi-server", "myserver --port {port}")
    assert result.returncode == 4
    assert "--asgi-server: a server command needs both {app} and {port}" in result.stderr
    result = pytest_run(tmp_path, "--asgi-server", fake("ok"), "--asgi-only", "nothing")
    assert result.returncode == 4 and "selects no check" in result.stderr


def test_without_the_option_the_plugin_adds_nothing(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text("def test_mine():\n    pass\n")
    result = pytest_run(tmp_path)
    assert result.returncode == 0 and "1 passed" in result.stdout
