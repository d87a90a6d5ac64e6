"""Running checks against one server: one process per target, every check bounded in time,
a crash reported against the check that caused it and the server restarted for the next."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import ssl
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from compat.checks.base import MAIN, Check, Outcome, Status, Target
from compat.context import CheckContext
from compat.harness.endpoint import Endpoint
from compat.harness.launch import Launcher, NotConfigurable, RunningServer, ServerStartError
from compat.harness.servers import ServerProfile, version_of
from compat.harness.wire import WireError

# Extra seconds a check gets past its own timeout before it is abandoned.
GRACE = 3.0
EVIDENCE_LIMIT = 700
PLAN_HEADER = re.compile(r"(X-Compat-Plan: \S{24})\S*")


@dataclass
class Result:
    check: Check
    status: Status
    detail: str = ""
    evidence: str = ""
    seconds: float = 0.0


@dataclass
class RunReport:
    server: str
    version: str
    command: str
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0
    # Targets (server set-ups) the server could not be started for at all.
    not_started: list[str] = field(default_factory=list)

    @property
    def could_not_start(self) -> bool:
        """The server never ran its plain set-up: nothing it does was checked."""
        return MAIN.name in self.not_started


Progress = Callable[[str, Result], None]


def run_server(
    profile: ServerProfile,
    checks: list[Check],
    bin_dir: Path | None = None,
    workroot: Path | None = None,
    progress: Progress | None = None,
    startup_timeout: float = 20.0,
) -> RunReport:
    """Run ``checks`` against ``profile`` and report every one of them. Server logs and
    records live under ``workroot`` (kept), or in a temporary directory removed after."""
    began = time.monotonic()
    root = workroot or Path(tempfile.mkdtemp(prefix="compat-run-"))
    launcher = Launcher(profile, bin_dir, root / profile.name)
    launcher.startup_timeout = startup_timeout
    try:
        command = shlex.join(_shown(launcher.argv("APP", _placeholder_endpoint(), None)))
    except (FileNotFoundError, NotConfigurable) as exc:
        command = f"({exc})"
    report = RunReport(profile.name, version_of(profile, bin_dir), command)
    scenarios: dict[str, object] = {}
    try:
        for target, group in _by_target(checks):
            for result in _run_target(target, group, launcher, scenarios, root, report):
                report.results.append(result)
                if progress:
                    progress(profile.name, result)
    finally:
        launcher.close()
        if workroot is None:
            shutil.rmtree(root, ignore_errors=True)
    order = {c.id: i for i, c in enumerate(checks)}
    report.results.sort(key=lambda r: order[r.check.id])
    report.seconds = time.monotonic() - began
    return report


def _shown(argv: list[str]) -> list[str]:
    """The command as a reader can rerun it: paths below the working directory relative."""
    here = os.getcwd() + os.sep
    return [a[len(here) :] if a.startswith(here) else a for a in argv]


def _placeholder_endpoint() -> Endpoint:
    # Only for showing the command line in the report.
    return Endpoint(port=0)


def _by_target(checks: list[Check]) -> list[tuple[Target, list[Check]]]:
    groups: dict[Target, list[Check]] = {}
    for c in checks:
        groups.setdefault(c.target, []).append(c)
    return list(groups.items())


def _run_target(
    target: Target,
    checks: list[Check],
    launcher: Launcher,
    scenarios: dict[str, object],
    root: Path,
    report: RunReport,
) -> list[Result]:
    results: list[Result] = []
    if target.own:
        for c in checks:
            ctx = CheckContext(None, launcher, {}, scenarios, root)
            results.append(_execute(c, ctx))
        return results
    server: RunningServer | None = None
    shared: dict[str, object] = {}
    cannot_start: Result | None = None  # once a start failed, the rest of the target fails alike
    try:
        for c in checks:
            if cannot_start is not None:
                results.append(
                    Result(c, cannot_start.status, cannot_start.detail, cannot_start.evidence)
                )
                continue
            if server is None or not server.process.alive():
                shared = {}
                try:
                    server = launcher.start(
                        app=target.app,
                        uds=target.uds,
                        root_path=target.root_path,
                        tls=target.tls,
                        http2=target.http2,
                    )
                except NotConfigurable as exc:
                    cannot_start = Result(c, Status.NOT_APPLICABLE, str(exc))
                    results.append(cannot_start)
                    server = None
                    continue
                except (ServerStartError, FileNotFoundError) as exc:
                    tail = getattr(exc, "log_tail", "")
                    detail = f"server did not start: {exc}"
                    cannot_start = Result(c, Status.CRASH, detail, tail[-EVIDENCE_LIMIT:])
                    results.append(cannot_start)
                    report.not_started.append(target.name)
                    server = None
                    continue
            ctx = CheckContext(server, launcher, shared, scenarios, root)
            result = _execute(c, ctx)
            if result.status is not Status.PASS:
                # A server that just died may not be reaped yet: give it a moment, so a
                # crash is reported as a crash and not as the failure it caused.
                server.process.wait(0.3)
            if not server.process.alive():
                code = server.process.returncode
                result = Result(
                    c,
                    Status.CRASH,
                    f"server exited with status {code} during this check",
                    server.process.log_tail()[-EVIDENCE_LIMIT:],
                    result.seconds,
                )
                server.stop(grace=1.0)
            elif result.status is Status.ERROR and "exceeded" in result.detail:
                # A check that overran may have left the server in any state: start afresh.
                server.stop(grace=2.0)
                server = None
            results.append(result)
    finally:
        if server is not None:
            server.stop()
    return results


def _execute(c: Check, ctx: CheckContext) -> Result:
    """Run one check in a thread so a hung check cannot hang the run."""
    box: dict[str, Result] = {}
    began = time.monotonic()

    def body() -> None:
        try:
            detail = c.func(ctx)
            box["r"] = Result(c, Status.PASS, detail or "")
        except Outcome as o:
            box["r"] = Result(c, o.status, o.detail, o.evidence or _evidence(ctx, o.status))
        except WireError as exc:
            raw = exc.raw.decode("latin-1")[-EVIDENCE_LIMIT:]
            if ctx.exchanges and not raw:
                raw = _evidence(ctx, Status.FAIL)
            box["r"] = Result(c, Status.FAIL, f"invalid HTTP from the server: {exc}", raw)
        except ssl.SSLError as exc:
            detail = f"TLS failed: {type(exc).__name__}: {exc}"
            box["r"] = Result(c, Status.FAIL, detail, _evidence(ctx, Status.FAIL))
        except (TimeoutError, ConnectionError) as exc:
            detail = f"no answer from the server: {type(exc).__name__}: {exc}"
            box["r"] = Result(c, Status.FAIL, detail, _evidence(ctx, Status.FAIL))
        except Exception as exc:  # a broken check is reported, not fatal
            where = traceback.extract_tb(exc.__traceback__)[-1]
            detail = f"check error {type(exc).__name__}: {exc} ({where.name}:{where.lineno})"
            box["r"] = Result(c, Status.ERROR, detail, _evidence(ctx, Status.ERROR))
        finally:
            ctx.close()

    thread = threading.Thread(target=body, name=f"check {c.id}", daemon=True)
    thread.start()
    thread.join(c.timeout + GRACE)
    seconds = time.monotonic() - began
    if thread.is_alive():
        ctx.close()
        return Result(c, Status.ERROR, f"check exceeded {c.timeout + GRACE:.0f} s", "", seconds)
    result = box["r"]
    result.seconds = seconds
    return result


def _evidence(ctx: CheckContext, status: Status) -> str:
    """The last request and what came back, for failures."""
    if status not in (Status.FAIL, Status.ERROR) or not ctx.exchanges:
        return ""
    sent, got = ctx.exchanges[-1].evidence()
    # The plan header is long base64 and says nothing a reader needs: shorten it.
    sent = PLAN_HEADER.sub(r"\1...", sent)
    return f">>> {sent[:EVIDENCE_LIMIT]}\n<<< {got[:EVIDENCE_LIMIT]}"
