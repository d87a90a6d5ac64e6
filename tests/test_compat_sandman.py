"""Sandman's column of the compat/ conformance suite: every group, over every protocol
(HTTP/1.x, HTTP/1.1 over TLS, h2c and h2 by ALPN).

The suite runs once per session against ``python -m sandman_asgi``; every check becomes a
test here. A failing MUST or SHOULD check is a Sandman bug; so is a failing de facto check
unless it is listed in ``KNOWN`` with the reason. A bug found and not fixed yet is listed in
``OPEN_BUGS`` (strict xfail: the fix shows). Checks that cannot apply to what Sandman
advertises are listed in ``NOT_APPLICABLE`` and must keep reporting so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from compat.checks import REGISTRY
from compat.checks.base import Status, select
from compat.harness.servers import PROFILES
from compat.runner import Result, RunReport, run_server
from tests.serverproc import ROOT

GROUPS = ["http", "http2", "lifespan", "websocket", "extensions"]
CHECKS = select(REGISTRY, GROUPS)

# Deviations from a de facto rule, with the reason; strict xfail, so fixing one shows.
KNOWN: dict[str, str] = {}

# MUST/SHOULD rules Sandman breaks today, each waiting for its fix in the core; strict
# xfail, so the fix shows (and the entry goes).
OPEN_BUGS: dict[str, str] = {}
XFAIL = {**KNOWN, **OPEN_BUGS}

# Rules superseded by what Sandman advertises (the expected status is checked too).
NOT_APPLICABLE: dict[str, Status] = {
    # Sandman advertises HTTP spec 2.4+, which replaces the no-op rule by an OSError.
    "http.disconnect.send_noop": Status.NOT_APPLICABLE,
    # Extensions Sandman does not offer (yet), over either protocol: the suite must see
    # them not advertised, and an unadvertised event must still be refused (checked by
    # http.errors.* and the "not advertised -> raise" checks of both protocols).
    "extensions.zerocopysend": Status.NOT_ADVERTISED,
    "extensions.h2.zerocopysend": Status.NOT_ADVERTISED,
    # Early hints are offered on HTTP/1.1 only (hyper sends no 1xx of a server's over h2).
    "extensions.h2.early_hint": Status.NOT_ADVERTISED,
    # Server push is not offered (browsers removed it); on HTTP/1.1 it cannot exist.
    "extensions.push": Status.NOT_ADVERTISED,
    "extensions.h2.push": Status.NOT_ADVERTISED,
    "extensions.h2.push_promise": Status.NOT_ADVERTISED,
}


@pytest.fixture(scope="session")
def sandman_report() -> Iterator[RunReport]:
    yield run_server(PROFILES["sandman"], CHECKS)


def _explain(result: Result) -> str:
    text = f"{result.check.id} [{result.check.strength.value}] {result.status.value}: "
    text += result.detail
    if result.evidence:
        text += "\n" + result.evidence
    return text


@pytest.mark.parametrize(
    "check_id",
    [
        pytest.param(c.id, marks=pytest.mark.xfail(strict=True, reason=XFAIL[c.id]))
        if c.id in XFAIL
        else c.id
        for c in CHECKS
    ],
)
def test_sandman_keeps_rule(sandman_report: RunReport, check_id: str) -> None:
    [result] = [r for r in sandman_report.results if r.check.id == check_id]
    if check_id in NOT_APPLICABLE:
        assert result.status is NOT_APPLICABLE[check_id], _explain(result)
        return
    assert result.status is Status.PASS, _explain(result)


def test_the_run_is_quick(sandman_report: RunReport) -> None:
    # The whole column must stay well under two minutes to keep CI useful.
    assert sandman_report.seconds < 90, f"took {sandman_report.seconds:.0f} s"


def test_the_pytest_plugin_checks_sandman(tmp_path) -> None:
    # The same suite through its pytest plugin, as another project's CI would run it
    # (in a folder of its own; the plugin loaded as its pytest11 entry point would load it).
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "compat.pytest_plugin", "-p", "no:cacheprovider"]
        + ["--asgi-server", "sandman", "--asgi-only", "http.scope,lifespan", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout
