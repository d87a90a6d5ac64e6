"""pytest plugin: ``pytest --asgi-server 'CMD {app} --port {port}'`` runs every check of the
suite as a test, so a server or framework can put ASGI conformance in its own CI.

Registered through the ``pytest11`` entry point of the asgi-conformance distribution; without
``--asgi-server`` it adds nothing. The checks run once, against one server, when the first
of them is reached (after ``-k``/``-m`` selection, so a narrowed run starts fewer servers).

Outcomes: pass; a failed MUST check fails (a SHOULD check too with ``--asgi-strict``); other
failures are xfail with the reason; a rule that does not bind the server (not advertised,
unsupported protocol, n/a) is skipped with the reason; a check named in
``--asgi-expect-fail`` is xfail when it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from compat.checks.base import Check
    from compat.harness.servers import ServerProfile
    from compat.runner import Result

MARKER = "asgi_conformance"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("asgi-conformance", "ASGI conformance checks (compat)")
    group.addoption(
        "--asgi-server",
        metavar="CMD",
        default=None,
        help="the server to check: a command with {app} and {port} (and optionally {host}, "
        "{python}), or a known server name (sandman, uvicorn, hypercorn, ...)",
    )
    group.addoption(
        "--asgi-only",
        metavar="GROUPS",
        default="",
        help="comma list of check groups (http, websocket, lifespan, extensions) or id prefixes",
    )
    group.addoption(
        "--asgi-protocol",
        metavar="PROTOCOLS",
        default="",
        help="comma list of the protocols to check over (http/1.1, http/1.1+tls, h2c, h2); "
        "default all",
    )
    group.addoption(
        "--asgi-strict", action="store_true", help="a failed SHOULD check fails the test too"
    )
    group.addoption(
        "--asgi-expect-fail",
        metavar="IDS",
        default="",
        help="comma list of check ids known to fail (xfail)",
    )
    group.addoption(
        "--asgi-stop-signal",
        metavar="SIGNAL",
        default="INT",
        help="the signal that stops the server gracefully (default INT; e.g. TERM)",
    )
    group.addoption(
        "--asgi-bin-dir",
        metavar="DIR",
        default=None,
        help="where the server's executables (and its python) are",
    )


def _profile(config: pytest.Config) -> ServerProfile:
    from compat.harness.servers import PROFILES, custom_profile, signal_named

    value = config.getoption("asgi_server")
    if value in PROFILES:
        return PROFILES[value]
    try:
        stop = signal_named(config.getoption("asgi_stop_signal"))
        return custom_profile(value, "server", stop)
    except ValueError as exc:
        raise pytest.UsageError(f"--asgi-server: {exc}") from None


def _selected_checks(config: pytest.Config) -> list[Check]:
    from compat.checks import REGISTRY
    from compat.checks.base import PROTOCOLS, select

    only = _comma_list(config.getoption("asgi_only"))
    protocols = _comma_list(config.getoption("asgi_protocol"))
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise pytest.UsageError(f"--asgi-protocol: unknown {unknown}; known: {PROTOCOLS}")
    checks = select(REGISTRY, only, protocols)
    if not checks:
        raise pytest.UsageError(f"--asgi-only {only} --asgi-protocol {protocols} selects no check")
    return checks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a check of the ASGI conformance suite")
    if config.getoption("asgi_server"):
        # Bad options are usage errors before anything runs.
        _profile(config)
        _selected_checks(config)


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection sees the items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not config.getoption("asgi_server"):
        return
    # Collected through the hooks, as pytest collects a file, so reporters count the items.
    suite = ConformanceSuite.from_parent(session, name="asgi-conformance", nodeid="asgi")
    suite.ihook.pytest_collectstart(collector=suite)
    report = suite.ihook.pytest_make_collect_report(collector=suite)
    suite.ihook.pytest_collectreport(report=report)
    items.extend(x for x in report.result if isinstance(x, pytest.Item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    # A skip is reported at the check, not at the line of this file that skipped it.
    if isinstance(item, CheckItem) and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (item.nodeid, None, report.longrepr[2])
    return report


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class ConformanceSuite(pytest.Collector):
    """One item per selected check; the suite runs once, for the items still selected."""

    def collect(self) -> Iterator[CheckItem]:
        for check in _selected_checks(self.config):
            yield CheckItem.from_parent(self, name=check.id, check=check)

    def result_for(self, check: Check) -> Result:
        results: dict[str, Result] | None = getattr(self, "_results", None)
        if results is None:
            from compat.runner import run_server

            chosen = [i.check for i in self.session.items if isinstance(i, CheckItem)]
            bin_dir = self.config.getoption("asgi_bin_dir")
            report = run_server(
                _profile(self.config), chosen, bin_dir=Path(bin_dir) if bin_dir else None
            )
            results = {r.check.id: r for r in report.results}
            self._results = results
        return results[check.id]


class CheckFailed(Exception):
    """A check the server did not pass (the detail and evidence are the report)."""


class CheckItem(pytest.Item):
    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.add_marker(MARKER)

    def runtest(self) -> None:
        from compat.checks.base import Status, Strength
        from compat.report import BAD

        assert isinstance(self.parent, ConformanceSuite)
        result = self.parent.result_for(self.check)
        if result.status is Status.PASS:
            return
        what = f"{result.status.value}: {result.detail}"
        if result.status not in BAD:
            pytest.skip(what)
        expected = _comma_list(self.config.getoption("asgi_expect_fail"))
        if self.check.id in expected:
            pytest.xfail(f"expected to fail ({what})")
        gated = self.check.strength is Strength.MUST or (
            self.check.strength is Strength.SHOULD and self.config.getoption("asgi_strict")
        )
        if not gated:
            pytest.xfail(f"{self.check.strength.value} rule not kept ({what})")
        raise CheckFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed):
            result: Result = excinfo.value.args[0]
            lines = [
                f"{self.check.id} [{self.check.strength.value}] {result.status.value}: "
                f"{result.detail}",
                f"rule: {self.check.title}",
                f"source: {self.check.source}",
            ]
            if result.evidence:
                lines += ["", result.evidence]
            return "\n".join(lines)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"[{self.check.strength.value}] {self.check.id}"
