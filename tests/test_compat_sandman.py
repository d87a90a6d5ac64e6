"""Sandman's column of the compat/ conformance suite (HTTP and lifespan).

The suite runs once per session against ``python -m sandman_asgi``; every check becomes a
test here. A failing MUST or SHOULD check is a Sandman bug; so is a failing de facto check
unless it is listed in ``KNOWN`` with the reason. Checks that cannot apply to what Sandman
advertises are listed in ``NOT_APPLICABLE`` and must keep reporting so.

WebSocket is left out until the core's WebSocket support (issue #4) is closed; the build of
2026-11-25 already keeps every WebSocket check (``python -m compat --server sandman --only
websocket``), so adding "websocket" to ``GROUPS`` is the whole change then.
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

GROUPS = ["http", "lifespan", "websocket", "extensions"]
CHECKS = select(REGISTRY, GROUPS)

# Deviations from a de facto rule, with the reason; strict xfail, so fixing one shows.
KNOWN: dict[str, str] = {}

# Rules superseded by what Sandman advertises (the expected status is checked too).
NOT_APPLICABLE: dict[str, Status] = {
    # Sandman advertises HTTP spec 2.4+, which replaces the no-op rule by an OSError.
    "http.disconnect.send_noop": Status.NOT_APPLICABLE,
    # Extensions Sandman does not offer (yet): the suite must see them not advertised, and
    # an unadvertised event must still be refused (checked by http.errors.* and the
    # extensions group's own "not advertised -> raise" checks).
    "extensions.pathsend": Status.NOT_ADVERTISED,
    "extensions.zerocopysend": Status.NOT_ADVERTISED,
    "extensions.trailers": Status.NOT_ADVERTISED,
    # HTTP/1.1 servers may ignore early hints; hyper cannot send a 1xx before the response.
    "extensions.early_hint": Status.NOT_ADVERTISED,
    # Server push exists only in HTTP/2.
    "extensions.push": Status.NOT_ADVERTISED,
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
        pytest.param(c.id, marks=pytest.mark.xfail(strict=True, reason=KNOWN[c.id]))
        if c.id in KNOWN
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
