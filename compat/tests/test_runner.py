"""The runner reports every check, bounds each in time, and survives a server crash."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from compat.checks.base import (
    H2,
    H2C,
    H2C_TARGET,
    MAIN,
    TLS_TARGET,
    Check,
    Fail,
    NotAdvertised,
    Status,
    Strength,
)
from compat.context import CheckContext
from compat.harness.launch import Launcher
from compat.harness.servers import custom_profile
from compat.harness.wire import Connection, WireError, build_request
from compat.runner import run_server

FAKE = Path(__file__).with_name("fake_server.py")


def make(name: str, func, timeout: float = 2.0) -> Check:
    return Check(f"http.fake.{name}", "http", name, "test", Strength.MUST, MAIN, timeout, func)


def get(ctx: CheckContext, path: str = "/") -> int:
    with Connection(ctx.endpoint, 2.0) as conn:
        conn.send(build_request("GET", path))
        return conn.read_final()[-1].status


def passes(ctx: CheckContext) -> str:
    return f"status {get(ctx)}"


def fails(ctx: CheckContext) -> None:
    raise Fail("wrong on purpose")


def not_advertised(ctx: CheckContext) -> None:
    raise NotAdvertised("no such extension")


def breaks(ctx: CheckContext) -> None:
    raise ValueError("a bug in the check")


def hangs(ctx: CheckContext) -> None:
    time.sleep(30)


def kills_server(ctx: CheckContext) -> None:
    try:
        get(ctx, "/die")
    except (ConnectionError, TimeoutError, WireError):
        pass
    time.sleep(0.3)


def fake(mode: str):
    return custom_profile(f"{{python}} {FAKE} {mode} {{port}} {{app}}", name=f"fake-{mode}")


def test_statuses_timeouts_and_crash_recovery(tmp_path: Path) -> None:
    checks = [
        make("pass", passes),
        make("fail", fails),
        make("not-advertised", not_advertised),
        make("error", breaks),
        make("hang", hangs, timeout=0.5),
        make("after-hang", passes),
        make("crash", kills_server),
        make("after-crash", passes),
    ]
    began = time.monotonic()
    report = run_server(fake("ok"), checks, workroot=tmp_path)
    statuses = {r.check.id.rsplit(".", 1)[1]: r for r in report.results}
    assert statuses["pass"].status is Status.PASS and statuses["pass"].detail == "status 200"
    assert statuses["fail"].status is Status.FAIL
    assert statuses["not-advertised"].status is Status.NOT_ADVERTISED
    assert statuses["error"].status is Status.ERROR
    assert "ValueError" in statuses["error"].detail
    assert statuses["hang"].status is Status.ERROR and "exceeded" in statuses["hang"].detail
    assert statuses["after-hang"].status is Status.PASS
    assert statuses["crash"].status is Status.CRASH
    assert "status 7" in statuses["crash"].detail
    assert statuses["after-crash"].status is Status.PASS
    assert [r.check.id for r in report.results] == [c.id for c in checks]
    assert time.monotonic() - began < 25


def test_server_that_exits_at_start(tmp_path: Path) -> None:
    report = run_server(fake("exit"), [make("a", passes), make("b", passes)], workroot=tmp_path)
    assert [r.status for r in report.results] == [Status.CRASH, Status.CRASH]
    assert "status 4" in report.results[0].detail
    assert "giving up" in report.results[0].evidence


def test_server_that_never_listens(tmp_path: Path) -> None:
    began = time.monotonic()
    report = run_server(fake("silent"), [make("a", passes)], workroot=tmp_path, startup_timeout=1)
    assert report.results[0].status is Status.CRASH
    assert "did not accept" in report.results[0].detail
    assert time.monotonic() - began < 15


def test_the_server_imports_only_the_probe_from_here(tmp_path: Path) -> None:
    # The server must test what is installed where it runs: not the folder above compat/
    # (in a source checkout: the unbuilt sources of the server under test).
    launcher = Launcher(fake("where"), None, tmp_path)
    try:
        server = launcher.start()
        where = json.loads((server.workdir / "where.json").read_text())
    finally:
        launcher.close()
    above_compat = str(Path(__file__).resolve().parent.parent.parent)
    assert Path(where["cwd"]) == server.workdir
    assert above_compat not in where["pythonpath"].split(os.pathsep)
    probe = Path(where["probe"])
    assert probe.is_relative_to(tmp_path) and probe.name == "app.py"
    assert sorted(p.name for p in probe.parent.glob("*.py")) == sorted(
        p.name for p in (Path(__file__).parent.parent / "probe").glob("*.py")
    )


def test_http2_and_tls_checks_on_a_server_without_them(tmp_path: Path) -> None:
    # The fake speaks HTTP/1.1 only, and a --cmd server has no known TLS options: the h2c
    # check is "unsupported" (HTTP/2 is optional), the TLS one "n/a"; neither fails.
    def over_h2c(ctx: CheckContext) -> None:
        ctx.h2()

    h2c = Check("http2.fake.h2c", "http2", "h2c", "test", Strength.MUST, H2C_TARGET, 3.0,
                over_h2c, H2C)  # fmt: skip
    tls = Check("http2.fake.h2", "http2", "h2", "test", Strength.MUST, TLS_TARGET, 3.0,
                over_h2c, H2)  # fmt: skip
    report = run_server(fake("ok"), [h2c, tls], workroot=tmp_path)
    statuses = [r.status for r in report.results]
    assert statuses == [Status.UNSUPPORTED, Status.NOT_APPLICABLE], report.results
    assert "no HTTP/2 by prior knowledge" in report.results[0].detail
    assert "HTTP/1.x" in report.results[0].detail
    assert "no TLS options" in report.results[1].detail
