"""``pip install ./compat`` in a fresh virtualenv gives a working ``python -m compat``, run
from a folder of its own (so nothing next to compat/ in this checkout is importable)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMPAT = Path(__file__).resolve().parent.parent
FAKE = Path(__file__).with_name("fake_server.py")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compat-venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(COMPAT)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return root


def run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "compat", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_installed_suite_lists_and_runs(venv: Path, tmp_path: Path) -> None:
    listing = run(venv, "--list", "--only", "lifespan", cwd=tmp_path)
    assert listing.returncode == 0 and "lifespan.state_copied" in listing.stdout
    # Installed under site-packages, not imported from this checkout.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import compat; print(compat.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "site-packages" in where.stdout and str(COMPAT) not in where.stdout
    assert (venv / "bin" / "asgi-conformance").is_file()
    not_starting = run(venv, "--cmd", f"{{python}} {FAKE} exit {{port}} {{app}}", cwd=tmp_path)
    assert not_starting.returncode == 3


def test_installed_suite_against_the_reference_uvicorn(venv: Path, tmp_path: Path) -> None:
    # CI installs uvicorn 0.54 in a virtualenv of its own (.ci-uvicorn/, or $UVICORN_ANCHOR_BIN).
    default = COMPAT.parent / ".ci-uvicorn" / "bin" / "uvicorn"
    anchor = Path(os.environ.get("UVICORN_ANCHOR_BIN", default))
    if not anchor.is_file():
        pytest.skip(f"reference uvicorn 0.54 not installed at {anchor}")
    bin_dir = str(anchor.parent)
    result = run(
        venv, "--server", "uvicorn", "--bin-dir", bin_dir, "--only", "http.scope,lifespan",
        "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "== uvicorn 0.54.0" in result.stdout
    assert "[     pass     ] http.scope.dict" in result.stdout
