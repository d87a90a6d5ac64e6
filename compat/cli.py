"""``python -m compat``: run the suite against one or more servers and print a report."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from compat.checks import REGISTRY
from compat.checks.base import GROUPS, Status, select
from compat.harness.servers import PROFILES, ServerProfile, custom_profile
from compat.report import as_json, as_markdown, as_text, failing_strict, headline
from compat.runner import Result, run_server


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
        "--only",
        type=comma_list,
        default=[],
        help=f"comma list of groups ({', '.join(GROUPS)}) or check-id prefixes",
    )
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.add_argument("--output", type=Path, help="write the report here instead of stdout")
    p.add_argument("--bin-dir", type=Path, help="where the servers' executables are")
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
        help="exit 1 if any MUST or SHOULD check fails, errors or crashes",
    )
    return p


def profiles_from(args: argparse.Namespace) -> list[ServerProfile]:
    unknown = [s for s in args.server if s not in PROFILES]
    if unknown:
        raise SystemExit(f"unknown server(s) {unknown}; known: {', '.join(PROFILES)}")
    chosen = [PROFILES[s] for s in args.server]
    if args.cmd:
        chosen.append(custom_profile(args.cmd, args.name))
    if not chosen:
        raise SystemExit("name a --server or give a --cmd")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    checks = select(REGISTRY, args.only)
    if args.list:
        for c in checks:
            print(f"{c.id:<50} {c.strength.value:<8} {c.source}")
        return 0
    if not checks:
        raise SystemExit(f"--only {args.only} selects no check")
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
        report = run_server(
            profile, checks, bin_dir=args.bin_dir, workroot=workroot, progress=progress
        )
        if not args.quiet:
            print(f"{profile.name}: {headline(report)}", file=sys.stderr, flush=True)
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
    if args.strict and any(failing_strict(r) for r in reports):
        return 1
    return 0


__all__ = ["Status", "comma_list", "main", "parser"]
