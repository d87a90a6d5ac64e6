"""The release artifacts as a user gets them: each wheel, installed into a fresh virtualenv of
its own Python, serves the demo app; the sdist holds every source file.

They are built by ``.ci/build-wheels`` (``.ci/run`` does, then runs this): ``SANDMAN_WHEELS``
names the folder, ``SANDMAN_PYTHONS`` the interpreters (paths separated by ``os.pathsep``),
one wheel each. A plain ``pytest`` tests the source tree, not built artifacts: without
``SANDMAN_WHEELS`` this module is skipped, and the summary says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.serverproc import ROOT, ServerProcess, free_port

WHEELS = os.environ.get("SANDMAN_WHEELS")
if not WHEELS:
    pytest.skip(
        "the built wheels are tested only when SANDMAN_WHEELS names their folder "
        "(.ci/build-wheels writes them; .ci/run does both)",
        allow_module_level=True,
    )
WHEEL_DIR = Path(WHEELS)
PYTHONS = [Path(p) for p in os.environ.get("SANDMAN_PYTHONS", "").split(os.pathsep) if p]


def _tag(python: Path) -> str:
    """The wheel tag of an interpreter: cp312 for CPython 3.12."""
    out = subprocess.run(
        [str(python), "-c", "import sys; print('cp%d%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


def test_every_interpreter_has_a_manylinux_wheel_and_there_is_one_sdist():
    assert PYTHONS, "SANDMAN_PYTHONS must list the interpreters the wheels were built for"
    wheels = sorted(p.name for p in WHEEL_DIR.glob("sandman_asgi-*.whl"))
    tags = sorted(_tag(p) for p in PYTHONS)
    assert [w.split("-")[2] for w in wheels] == tags, wheels
    assert all("manylinux_2_17_x86_64" in w for w in wheels), wheels
    assert len(list(WHEEL_DIR.glob("sandman_asgi-*.tar.gz"))) == 1


def test_sdist_holds_every_source_file():
    (sdist,) = WHEEL_DIR.glob("sandman_asgi-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    sources = [
        *ROOT.glob("sandman_asgi/**/*.py"),
        *ROOT.glob("sandman_core/src/**/*.rs"),
        ROOT / "sandman_core/Cargo.toml",
        ROOT / "Cargo.toml",
        ROOT / "Cargo.lock",
        ROOT / "pyproject.toml",
    ]
    wanted = {p.relative_to(ROOT).as_posix() for p in sources}
    assert wanted - names == set()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("python", PYTHONS, ids=[_tag(p) for p in PYTHONS])
def test_wheel_installs_and_serves_the_demo_app(python: Path, tmp_path: Path):
    tag = _tag(python)
    found = list(WHEEL_DIR.glob(f"sandman_asgi-*-{tag}-*.whl"))
    assert len(found) == 1, f"expected one {tag} wheel in {WHEEL_DIR}, found {found}"
    wheel = found[0]
    venv = tmp_path / "venv"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        timeout=420,
    )
    # Away from the source tree, with no PYTHONPATH: only the installed wheel can answer.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONUNBUFFERED"] = "1"
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import sandman_asgi._core as c; print(c.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=30,
        check=True,
    )
    assert where.stdout.startswith(str(venv)), where.stdout

    port = free_port()
    server = ServerProcess(
        subprocess.Popen(
            [str(venv / "bin/sandman"), "sandman_asgi.demo:app", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
    )
    try:
        server.wait_for(rf"running on http://127\.0\.0\.1:{port} ", timeout=30)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        echo = httpx.post(f"http://127.0.0.1:{port}/echo", content=b"x" * 100_000, timeout=10)
    finally:
        rc = server.stop(signal.SIGINT, timeout=15)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert b"<h1>Sandman is running</h1>" in page.content
    assert (echo.status_code, echo.content) == (200, b"x" * 100_000)
    assert rc == 0, server.stderr
    assert f"Finished server process [{server.proc.pid}]" in server.stderr
