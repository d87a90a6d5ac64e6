"""``python -m compat``: run the suite against one or more servers and print a report.

Exit status: 0 when every server started and kept every MUST rule (and every SHOULD rule
with ``--strict``); 1 when a MUST (or, with ``--strict``, SHOULD) check failed, errored or
crashed the server; 2 for a usage error; 3 when a server could not be started at all.
Checks named by ``--expect-fail`` do not count.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from compat.checks import REGISTRY
from compat.checks.base import GROUPS, PROTOCOLS, Status, select
from compat.harness.servers import PROFILES, ServerProfile, custom_profile, signal_named
from compat.report import as_json, as_markdown, as_text, failing, headline
from compat.runner import Result, RunReport, run_server

CHECKS_FAILED = 1
SERVER_DID_NOT_START = 3


def comma_list(text: str) -> list[str]:
    """``"http, lifespan"`` -> ``["http", "lifespan"]`` (argparse type)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m compat",
        description="Black-box ASGI server conformance suite: starts each server as a "
        "subprocess and checks it over sockets.",
    )
    p.add_argument(
        "--server",
        type=comma_list,
        default=[],
        help=f"comma list of servers: {', '.join(PROFILES)}",
    )
    p.add_argument(
        "--cmd",
        help="another server, as a command template with {app} and {port} "
        "(and optionally {host}), e.g. 'myserver {app} --port {port}'",
    )
    p.add_argument("--name", default="custom", help="column name for --cmd")
    p.add_argument(
        "--stop-signal",
        default="INT",
        help="the signal that stops the --cmd server gracefully (default INT; e.g. TERM)",
    )
    p.add_argument(
        "--only",
        type=comma_list,
        default=[],
        help=f"comma list of groups ({', '.join(GROUPS)}) or check-id prefixes",
    )
    p.add_argument(
        "--protocol",
        type=comma_list,
        default=[],
        help=f"comma list of the protocols to check over ({', '.join(PROTOCOLS)}); default all",
    )
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.add_argument("--output", type=Path, help="write the report here instead of stdout")
    p.add_argument(
        "--bin-dir",
        action="append",
        default=[],
        metavar="[SERVER=]DIR",
        help="where a server's executables (and its python) are, e.g. a virtualenv's bin/; "
        "SERVER=DIR for one server only (repeat the option for each)",
    )
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep each run's server logs and probe records (the path is printed)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if a SHOULD check fails too (MUST failures always do)",
    )
    p.add_argument(
        "--expect-fail",
        type=comma_list,
        default=[],
        metavar="IDS",
        help="comma list of check ids known to fail: they do not change the exit status",
    )
    return p


def bin_dirs_from(values: list[str]) -> dict[str, Path]:
    """``["/v/bin", "uvicorn=/u/bin"]`` -> ``{"": /v/bin, "uvicorn": /u/bin}``."""
    dirs: dict[str, Path] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep:
            name, folder = "", value
        dirs[name] = Path(folder)
    return dirs


def exit_status(reports: list[RunReport], strict: bool, expected: list[str]) -> int:
    """0, ``CHECKS_FAILED`` or ``SERVER_DID_NOT_START`` (see the module docstring)."""
    if any(r.could_not_start for r in reports):
        return SERVER_DID_NOT_START
    for report in reports:
        if any(r.check.id not in expected for r in failing(report, strict)):
            return CHECKS_FAILED
    return 0


def profiles_from(args: argparse.Namespace) -> list[ServerProfile]:
    unknown = [s for s in args.server if s not in PROFILES]
    if unknown:
        parser().error(f"unknown server(s) {unknown}; known: {', '.join(PROFILES)}")
    chosen = [PROFILES[s] for s in args.server]
    if args.cmd:
        try:
            chosen.append(custom_profile(args.cmd, args.name, signal_named(args.stop_signal)))
        except ValueError as exc:
            parser().error(str(exc))
    if not chosen:
        parser().error("name a --server or give a --cmd")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    unknown = [p for p in args.protocol if p not in PROTOCOLS]
    if unknown:
        parser().error(f"unknown protocol(s) {unknown}; known: {', '.join(PROTOCOLS)}")
    checks = select(REGISTRY, args.only, args.protocol)
    if args.list:
        for c in checks:
            print(f"{c.id:<50} {c.protocol:<12} {c.strength.value:<8} {c.source}")
        return 0
    if not checks:
        parser().error(f"--only {args.only} --protocol {args.protocol} selects no check")
    profiles = profiles_from(args)

    def progress(server: str, result: Result) -> None:
        if not args.quiet:
            print(
                f"{server:>10} {result.status.value:<14} {result.check.id} "
                f"({result.seconds:.1f} s)",
                file=sys.stderr,
                flush=True,
            )

    reports = []
    for profile in profiles:
        workroot = None
        if args.keep_workdir:
            workroot = Path(tempfile.mkdtemp(prefix=f"compat-{profile.name}-"))
            print(f"{profile.name}: work directory {workroot}", file=sys.stderr)
        bin_dirs = bin_dirs_from(args.bin_dir)
        bin_dir = bin_dirs.get(profile.name, bin_dirs.get(""))
        report = run_server(profile, checks, bin_dir=bin_dir, workroot=workroot, progress=progress)
        if not args.quiet:
            print(f"{profile.name}: {headline(report)}", file=sys.stderr, flush=True)
        if report.could_not_start:
            print(f"{profile.name}: the server could not be started", file=sys.stderr)
        reports.append(report)

    command = "python -m compat " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.format == "markdown":
        text = as_markdown(reports, command)
    elif args.format == "json":
        text = as_json(reports)
    else:
        text = as_text(reports)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    for report in reports:
        now_passing = [
            r.check.id
            for r in report.results
            if r.check.id in args.expect_fail and r.status is Status.PASS
        ]
        if now_passing:
            print(
                f"{report.server}: expected to fail but passed: {', '.join(now_passing)}",
                file=sys.stderr,
            )
    return exit_status(reports, args.strict, args.expect_fail)


def run() -> None:
    """The ``asgi-conformance`` console script (the same as ``python -m compat``)."""
    raise SystemExit(main())


__all__ = ["Status", "bin_dirs_from", "comma_list", "exit_status", "main", "parser", "run"]
