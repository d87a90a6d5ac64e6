"""glibc malloc tuning is the ``sandman`` command's alone: process-wide settings must not
change under a program that embeds Sandman (``run()``, ``Server``), and the user can turn
them off."""

from __future__ import annotations

import sys

import httpx
import pytest

from tests.serverproc import sandman, spawn

APP = "tests.apps:malloc_probe"


@pytest.fixture(autouse=True)
def _no_outside_malloc_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SANDMAN_MALLOC_TUNING", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)


def _tuned(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text


def test_the_command_tunes_malloc_unless_told_not_to():
    with sandman(APP) as server:
        assert _tuned(server.port) == "1"
    with sandman(APP, env={"SANDMAN_MALLOC_TUNING": "0"}) as server:
        assert _tuned(server.port) == "0"


def test_an_embedded_server_leaves_malloc_alone():
    code = f"import sandman_asgi; sandman_asgi.run({APP!r}, port=0)"
    server = spawn([sys.executable, "-c", code])
    try:
        m = server.wait_for(r"running on http://[^ ]*:(\d+) ")
        assert _tuned(int(m.group(1))) == "0"
    finally:
        server.stop()
