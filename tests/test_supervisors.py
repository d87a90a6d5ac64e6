"""``--workers N`` and ``--reload`` as processes (D-PROC-4, D-PROC-5, D-PROC-6 in
docs/uvicorn-surface-coverage.md): real parents, real children, real signals, bounded waits."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from sandman_asgi.supervisors.reloadpaths import ReloadFilter, resolve_patterns
from tests.serverproc import ServerProcess, sandman

STARTED_WORKER = re.compile(r"Started server process \[(\d+)\]")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split(") ", 1)[1].startswith("Z"):
                return False
    return True


def started_workers(server: ServerProcess) -> list[int]:
    return [int(pid) for pid in STARTED_WORKER.findall(server.stderr)]


def ready_count(server: ServerProcess) -> int:
    return server.stderr.count("Application startup complete.")


def get_pid(server: ServerProcess) -> int:
    return int(httpx.get(server.url, timeout=5).text)


@contextmanager
def supervised(app: str, *flags: str, ready: int = 0, **kwargs) -> Iterator[ServerProcess]:
    """A supervisor process; waits for ``ready`` workers; kills its whole process group
    at the end so no worker outlives a failing test."""
    with sandman(app, *flags, **kwargs) as server:
        try:
            if ready:
                wait_until(lambda: ready_count(server) >= ready, 20, f"{ready} workers")
            yield server
        finally:
            if server.proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.stop(signal.SIGINT, timeout=10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server.proc.pid, signal.SIGKILL)


# -- --workers ------------------------------------------------------------------------------


def test_workers_serve_and_sigint_stops_everything():
    with supervised("tests.supervised_apps:pid", "--workers", "2", ready=2) as server:
        workers = started_workers(server)
        assert len(workers) == 2
        seen = {get_pid(server) for _ in range(40)}
        assert seen <= set(workers) and seen, seen
        rc = server.stop(signal.SIGINT)
    assert rc == 0
    parent = server.proc.pid
    lines = [line for line in server.stderr.splitlines() if "child process" in line]
    assert "INFO:     Received SIGINT, exiting." in server.stderr
    assert sorted(lines) == sorted(
        [f"INFO:     Terminated child process [{pid}]" for pid in workers]
        + [f"INFO:     Waiting for child process [{pid}]" for pid in workers]
    )
    assert server.stderr.splitlines()[:2] == [
        f"INFO:     Sandman running on http://127.0.0.1:{server.port} (Press CTRL+C to quit)",
        f"INFO:     Started parent process [{parent}]",
    ]
    assert server.stderr.splitlines()[-1] == f"INFO:     Stopping parent process [{parent}]"
    assert server.stderr.count("Application shutdown complete.") == 2
    assert not any(pid_alive(pid) for pid in workers)


def test_workers_sigterm_exits_0():
    with supervised("tests.supervised_apps:pid", "--workers", "2", ready=2) as server:
        rc = server.stop(signal.SIGTERM)
    assert rc == 0
    assert "INFO:     Received SIGTERM, exiting." in server.stderr


def test_workers_are_spawned_not_forked():
    # D-PROC-4: a fresh interpreter per worker (spawn), as uvicorn's
    # Multiprocess does; a forked worker would inherit the parent's threads and loop.
    with supervised("tests.supervised_apps:pid", "--workers", "2", ready=2) as server:
        for pid in started_workers(server):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            assert any(b"multiprocessing.spawn" in arg for arg in argv), argv


def test_web_concurrency_sets_the_worker_count():
    env = {"WEB_CONCURRENCY": "3"}
    with supervised("tests.supervised_apps:pid", env=env, ready=3) as server:
        assert len(started_workers(server)) == 3


def test_dead_worker_is_replaced_within_a_second():
    with supervised("tests.supervised_apps:pid", "--workers", "2", ready=2) as server:
        victim = started_workers(server)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        server.wait_for(rf"Child process \[{victim}\] died", timeout=5)
        wait_until(lambda: len(started_workers(server)) == 3, 5, "a replacement")
        assert time.monotonic() - killed_at < 1.5
        wait_until(lambda: ready_count(server) == 3, 10, "the replacement to start")
        replacement = started_workers(server)[2]
        pids = {get_pid(server) for _ in range(40)}
        assert victim not in pids and pids <= set(started_workers(server)[1:])
        assert pid_alive(replacement)


def test_hung_worker_is_killed_and_replaced():
    flags = ("--workers", "2", "--timeout-worker-healthcheck", "1")
    with supervised("tests.supervised_apps:pid", *flags, ready=2) as server:
        victim = started_workers(server)[1]
        os.kill(victim, signal.SIGSTOP)  # alive but answering nothing: a wedged worker
        server.wait_for(rf"Child process \[{victim}\] died", timeout=5)
        wait_until(lambda: not pid_alive(victim), 5, "the hung worker to be killed")
        wait_until(lambda: ready_count(server) == 3, 10, "the replacement to start")
        assert server.proc.poll() is None


def test_worker_that_cannot_start_stops_the_parent_with_status_3():
    with supervised("tests.apps:lifespan_failed", "--workers", "2") as server:
        rc = server.wait(timeout=20)
    assert rc == 3
    assert "ERROR:    Application startup failed. Exiting." in server.stderr
    assert re.search(
        r"ERROR:    Child process \[\d+\] failed to start, stopping the parent process\.",
        server.stderr,
    )
    assert f"Stopping parent process [{server.proc.pid}]" in server.stderr


def test_sighup_rolls_every_worker_without_dropping_requests():
    with supervised("tests.supervised_apps:pid", "--workers", "2", ready=2) as server:
        old = started_workers(server)
        failures: list[Exception] = []
        served: set[int] = set()
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    served.add(get_pid(server))
                except httpx.HTTPError as exc:
                    failures.append(exc)

        thread = threading.Thread(target=client)
        thread.start()
        try:
            server.send_signal(signal.SIGHUP)
            server.wait_for("Received SIGHUP, restarting processes.")
            wait_until(lambda: not any(pid_alive(pid) for pid in old), 20, "old workers to go")
            new = started_workers(server)[2:]
            assert len(new) == 2
            wait_until(lambda: served & set(new) == set(new), 10, "both new workers to serve")
        finally:
            stop.set()
            thread.join(10)
        assert failures == []
        assert server.proc.poll() is None
        assert {get_pid(server) for _ in range(20)} <= set(new)


def test_sigttin_and_sigttou_change_the_worker_count():
    with supervised("tests.supervised_apps:pid", "--workers", "1", ready=1) as server:
        # --workers 1 is a single process (no supervisor): check that first.
        assert "Started parent process" not in server.stderr
    with supervised("tests.supervised_apps:pid", "--workers", "2", ready=2) as server:
        server.send_signal(signal.SIGTTIN)
        server.wait_for("Received SIGTTIN, increasing the number of processes.")
        wait_until(lambda: ready_count(server) == 3, 10, "a third worker")
        third = started_workers(server)[2]
        server.send_signal(signal.SIGTTOU)
        server.wait_for("Received SIGTTOU, decreasing number of processes.")
        wait_until(lambda: not pid_alive(third), 10, "the newest worker to stop")
        server.send_signal(signal.SIGTTOU)
        wait_until(lambda: len(terminated(server)) == 2, 10, "a second worker to stop")
        (survivor,) = set(started_workers(server)) - set(terminated(server))
        wait_until(lambda: not any(pid_alive(p) for p in terminated(server)), 10, "workers")
        server.send_signal(signal.SIGTTOU)
        server.wait_for("Already reached one process, cannot decrease the number of processes")
        assert {get_pid(server) for _ in range(10)} == {survivor}


def terminated(server: ServerProcess) -> list[int]:
    return [int(pid) for pid in re.findall(r"Terminated child process \[(\d+)\]", server.stderr)]


def test_other_signals_do_not_kill_the_parent():
    with supervised("tests.supervised_apps:pid", "--workers", "2", ready=2) as server:
        for sig in (signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
            server.send_signal(sig)
        time.sleep(0.7)
        assert server.proc.poll() is None
        get_pid(server)


def test_limit_max_requests_replaces_the_worker():
    flags = ("--workers", "2", "--limit-max-requests", "3")
    with supervised("tests.supervised_apps:pid", *flags, ready=2) as server:
        for _ in range(12):
            get_pid(server)
        server.wait_for(r"Maximum request limit of 3 exceeded\. Terminating process\.")
        server.wait_for(r"Child process \[\d+\] died", timeout=5)
        wait_until(lambda: len(started_workers(server)) >= 3, 5, "a replacement worker")
        assert get_pid(server) in started_workers(server)
        assert server.proc.poll() is None


def test_reload_ignores_workers_with_a_warning(tmp_path):
    (tmp_path / "app.py").write_text(APP_SOURCE.format(version="one"))
    flags = ("--reload", "--workers", "2", "--app-dir", str(tmp_path))
    with supervised("app:app", *flags, cwd=tmp_path, ready=1) as server:
        warning = 'WARNING:  "workers" flag is ignored when reloading is enabled.'
        assert server.stderr.count(warning) == 1
        assert "Started parent process" not in server.stderr


# -- --reload -------------------------------------------------------------------------------

APP_SOURCE = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({{"type": f"lifespan.{{kind}}.complete"}})
            if kind == "shutdown":
                return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
"""


def _body(server: ServerProcess) -> str:
    return httpx.get(server.url, timeout=5).text


def _without_watchfiles(tmp_path: Path) -> dict[str, str]:
    """Environment for a server that cannot import watchfiles (so it falls back to StatReload)."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "watchfiles.py").write_text("raise ImportError('hidden for this test')\n")
    return {"PYTHONPATH": f"{blocker}{os.pathsep}{Path(__file__).resolve().parent.parent}"}


def _edit_and_await_reload(server: ServerProcess, path: Path, text: str, expect: str) -> None:
    # One write is enough: the reloader watches from before the first child starts.
    path.write_text(text)
    server.wait_for("Reloading...", timeout=15)
    wait_until(lambda: _safe_body(server) == expect, 15, f"body {expect!r}")


def _safe_body(server: ServerProcess) -> str | None:
    try:
        return _body(server)
    except httpx.HTTPError:
        return None


def test_reload_restarts_the_child_on_a_python_change(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(APP_SOURCE.format(version="one"))
    flags = ("--reload", "--reload-delay", "0.1")
    with supervised("app:app", *flags, cwd=tmp_path, ready=1) as server:
        assert _body(server) == "one"
        first_child = started_workers(server)[0]
        _edit_and_await_reload(server, app, APP_SOURCE.format(version="two"), "two")
        assert "WARNING:  WatchFiles detected changes in 'app.py'. Reloading..." in server.stderr
        wait_until(lambda: not pid_alive(first_child), 5, "the old child to exit")
        rc = server.stop(signal.SIGINT)
    assert rc == 0
    reloader = server.proc.pid
    lines = server.stderr.splitlines()
    assert lines[:3] == [
        f"INFO:     Will watch for changes in these directories: ['{tmp_path.resolve()}']",
        f"INFO:     Sandman running on http://127.0.0.1:{server.port} (Press CTRL+C to quit)",
        f"INFO:     Started reloader process [{reloader}] using WatchFiles",
    ]
    assert lines[-1] == f"INFO:     Stopping reloader process [{reloader}]"
    assert not any(pid_alive(pid) for pid in started_workers(server))


def test_reload_skips_excluded_files_and_honours_includes(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(APP_SOURCE.format(version="one"))
    flags = ("--reload", "--reload-delay", "0.1", "--reload-include", "*.txt")
    with supervised("app:app", *flags, cwd=tmp_path, ready=1) as server:
        # Excluded by default: hidden files; not included: other extensions.
        (tmp_path / ".hidden.py").write_text("x = 1\n")
        (tmp_path / "notes.md").write_text("hello\n")
        time.sleep(1.5)
        assert "Reloading..." not in server.stderr
        _edit_and_await_reload(server, tmp_path / "settings.txt", "x", "one")
        assert "detected changes in 'settings.txt'" in server.stderr
        server.stop(signal.SIGTERM)
    assert server.proc.returncode == 0


def test_reload_falls_back_to_stat_polling_without_watchfiles(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    app = site / "app.py"
    app.write_text(APP_SOURCE.format(version="one"))
    env = _without_watchfiles(tmp_path)
    flags = ("--reload", "--reload-delay", "0.1")
    with supervised("app:app", *flags, cwd=site, env=env, ready=1) as server:
        assert "using StatReload" in server.stderr
        assert _body(server) == "one"
        _edit_and_await_reload(server, app, APP_SOURCE.format(version="two"), "two")
        assert "WARNING:  StatReload detected changes in 'app.py'. Reloading..." in server.stderr
    assert server.proc.returncode == 0


@pytest.mark.parametrize("reloader", ["WatchFiles", "StatReload"])
def test_reload_sees_an_edit_made_as_the_first_child_starts(tmp_path, reloader):
    # With a long --reload-delay the first look for changes comes seconds after the child
    # is serving; an edit made in between must still restart it.
    site = tmp_path / "site"
    site.mkdir()
    app = site / "app.py"
    app.write_text(APP_SOURCE.format(version="one"))
    env = _without_watchfiles(tmp_path) if reloader == "StatReload" else {}
    flags = ("--reload", "--reload-delay", "3")
    with supervised("app:app", *flags, cwd=site, env=env, ready=1) as server:
        assert f"using {reloader}" in server.stderr
        _edit_and_await_reload(server, app, APP_SOURCE.format(version="two"), "two")


def test_reload_keeps_serving_after_a_broken_edit(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(APP_SOURCE.format(version="one"))
    with supervised("app:app", "--reload", "--reload-delay", "0.1", cwd=tmp_path, ready=1) as s:
        app.write_text("this is not python (\n")
        s.wait_for("SyntaxError", timeout=15)
        assert s.proc.poll() is None  # the reloader survives a child that cannot import
        app.write_text(APP_SOURCE.format(version="three"))
        wait_until(lambda: _safe_body(s) == "three", 15, "the fixed app")


# -- what --reload watches (in-process: pure functions) -------------------------------------


class _Cfg:
    def __init__(self, includes=(), excludes=(), dirs_excludes=()):
        self.reload_includes = list(includes)
        self.reload_excludes = list(excludes)
        self.reload_dirs_excludes = [Path(d) for d in dirs_excludes]


@pytest.mark.parametrize(
    ("path", "includes", "excludes", "expected"),
    [
        ("/src/app.py", (), (), True),
        ("/src/notes.txt", (), (), False),
        ("/src/.hidden.py", (), (), False),
        ("/src/~backup.py", (), (), False),
        ("/src/notes.txt", ("*.txt",), (), True),
        ("/src/app.py", (), ("*.py",), False),
        ("/src/app.py", (), ("app.py",), False),
        ("/src/.env", (".env",), (), True),
        ("/src/.hidden.py", (".*",), (), True),
        # Editor and bytecode files never restart the server (D-PROC-5), and with ".*"
        # included the other default excludes still apply.
        ("/src/x.pyc", (), (), False),
        ("/src/.x.swp", (), (), False),
        ("/src/x.swo", (), (), False),
        ("/src/.pyc", (".*",), (), False),
        ("/src/.pyo", (".*",), (), False),
        ("/src/.sw.tmp", (".*",), (), False),
        ("/src/.pyc", (".*", ".py[cod]"), (), True),
    ],
)
def test_reload_filter(path, includes, excludes, expected):
    assert ReloadFilter(_Cfg(includes, excludes))(Path(path)) is expected


def test_reload_filter_excluded_directory(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    check = ReloadFilter(_Cfg(excludes=[str(build)], dirs_excludes=[build]))
    assert check(build / "gen.py") is False
    assert check(tmp_path / "app.py") is True


def test_resolve_patterns_collects_directories_and_drops_nested(tmp_path, monkeypatch):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "templates").mkdir()
    monkeypatch.chdir(tmp_path)
    patterns, dirs = resolve_patterns(["templates", "*.html", ".*"], ["pkg", "pkg/sub"])
    assert patterns == ["templates", "*.html", ".*"]
    assert dirs == sorted([(tmp_path / "pkg").resolve(), (tmp_path / "templates").resolve()])


def test_limit_max_requests_jitter_is_drawn_once_per_process():
    flags = ("--limit-max-requests", "2", "--limit-max-requests-jitter", "3")
    with supervised("tests.supervised_apps:pid", *flags) as server:
        served = 0
        while server.proc.poll() is None and served < 10:
            with contextlib.suppress(httpx.HTTPError):
                get_pid(server)
                served += 1
            time.sleep(0.3)  # past the 0.1 s tick: the limit is acted on before the next one
        assert server.wait(timeout=10) == 0
    limit = int(server.wait_for(r"Maximum request limit of (\d+) exceeded").group(1))
    assert 2 <= limit <= 5 and served == limit


def test_workers_on_a_unix_socket(tmp_path):
    path = tmp_path / "s.sock"
    flags = ("--uds", str(path), "--workers", "2")
    with supervised("tests.supervised_apps:pid", *flags, port=False, ready=0) as server:
        server.wait_for(rf"Sandman running on unix socket {re.escape(str(path))} ")
        wait_until(lambda: ready_count(server) == 2, 20, "workers")
        assert oct(path.stat().st_mode & 0o777) == oct(0o666)
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport) as client:
            pids = {int(client.get("http://sandman/").text) for _ in range(20)}
        assert pids <= set(started_workers(server))
        assert server.stop(signal.SIGINT) == 0
    assert not path.exists()
