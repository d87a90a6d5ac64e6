"""Leak soaks against one server.

``--mixed MINUTES`` (issue #28): every kind of client at once for MINUTES (keep-alive,
pipelining, uploads, streams, WebSockets, slow clients and injected abrupt disconnects,
``tests/hardening/mixed_traffic.py``), the server's RSS, open descriptors and threads
sampled every ``--interval`` seconds (60) with the clients paused for the moment of the
sample. Passes when, from the first sample after the warm-up (``--warm`` minutes, 3) to
the last, none grew by more than 5%, and no client saw an error other than the faults it
injected::

    python -m tests.hardening.soak --mixed 30 --json /tmp/soak-mixed.json

The request soak (issue #7 "No leaks"): keep-alive requests and connection open/close cycles
against one server, sampling its RSS (``/proc/PID/status`` VmRSS) and open descriptors
(``/proc/PID/fd``) after a warm-up and at the end. Passes when both end within 10% of the
warm-up figure.

The full run (about 5 minutes here; not for CI)::

    python -m tests.hardening.soak                   # 1,000,000 requests + 100,000 cycles

A short version runs in CI as ``tests/hardening/test_soak.py`` (50,000 requests, 5,000
cycles, ``--loader python``). Load comes from ``wrk`` (``apt-get install wrk``; 2 threads,
32 connections) or, with ``--loader python``, from this process; in slices until each target
count is reached. Every slice adds a sample, so the JSON report (``--json PATH``) has the
whole curve, not just two points.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.hardening.loadgen import (
    fd_count,
    keepalive_latencies,
    new_connection_latencies,
    rss_kib,
)
from tests.serverproc import sandman

WRK = shutil.which("wrk") or "/usr/bin/wrk"
TOLERANCE = 0.10


@dataclass
class Sample:
    phase: str
    done: int  # requests (or cycles) of this phase so far
    rss_kib: int
    fds: int
    at: float  # seconds since the start


@dataclass
class Report:
    requests: int = 0
    cycles: int = 0
    seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    warm: Sample | None = None
    end: Sample | None = None
    rss_growth: float = 0.0
    fd_growth: float = 0.0
    ok: bool = False


def wrk_slice(url: str, seconds: int, connections: int, close: bool) -> int:
    """Run wrk for ``seconds``; the number of completed requests."""
    cmd = [WRK, "-t2", f"-c{connections}", f"-d{seconds}s", url]
    if close:
        # The server closes after each response and wrk reconnects: one TCP connection per
        # request, so every request is an open/close cycle.
        cmd[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise RuntimeError(f"wrk printed no request count:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw error responses:\n{out}")
    return int(m.group(1))


def python_slice(port: int, count: int, close: bool) -> int:
    """The same load from this process (no wrk needed; exact counts, slower)."""
    if close:
        new_connection_latencies(port, count)
    else:
        keepalive_latencies(port, count)
    return count


def settle(seconds: float) -> None:
    """Let closed connections be reaped (and wrk's last ones closed) before sampling."""
    time.sleep(seconds)


def run(
    requests: int,
    cycles: int,
    warm_requests: int,
    warm_cycles: int,
    loader: str = "wrk",
    log: Callable[[str], object] = print,
) -> Report:
    """Soak one server; ``loader`` is "wrk" (2 threads, 32 connections) or "python"."""
    report = Report()
    started = time.monotonic()
    with sandman("tests.apps:hello", "--no-access-log") as server:
        pid = server.proc.pid
        url = server.url + "/"

        def sample(phase: str, done: int, pause: float = 0.3) -> Sample:
            settle(pause)
            s = Sample(phase, done, rss_kib(pid), fd_count(pid), time.monotonic() - started)
            report.samples.append(s)
            log(f"{phase:9s} {done:>9,d}  rss {s.rss_kib:>7,d} KiB  fds {s.fds}")
            return s

        def drive(phase: str, target: int, close: bool) -> int:
            done = 0
            while done < target:
                if loader == "python":
                    done += python_slice(server.port, min(target - done, 50_000), close)
                else:
                    # Slices of 5 s, 1 s when little is left, so the total overshoots the
                    # target by little.
                    done += wrk_slice(url, 5 if target - done > 50_000 else 1, 32, close)
                sample(phase, done)
            return done

        sample("start", 0)
        drive("warm-ka", warm_requests, close=False)
        drive("warm-cyc", warm_cycles, close=True)
        report.warm = sample("warm", 0, pause=1.0)
        report.requests = drive("keepalive", requests, close=False)
        report.cycles = drive("cycles", cycles, close=True)
        report.end = sample("end", 0, pause=1.0)
        if server.proc.poll() is not None:
            raise RuntimeError(f"server died:\n{server.stderr}")
    report.seconds = time.monotonic() - started
    report.rss_growth = report.end.rss_kib / report.warm.rss_kib - 1
    report.fd_growth = report.end.fds / report.warm.fds - 1
    report.ok = abs(report.rss_growth) <= TOLERANCE and abs(report.fd_growth) <= TOLERANCE
    return report


MIXED_TOLERANCE = 0.05


@dataclass
class MixedSample:
    minute: float  # since the start
    rss_kib: int
    fds: int
    threads: int
    traffic: dict[str, dict[str, int]]  # per kind: ok, injected, errors so far


@dataclass
class MixedReport:
    minutes: float = 0.0
    samples: list[MixedSample] = field(default_factory=list)
    warm: MixedSample | None = None
    end: MixedSample | None = None
    growth: dict[str, float] = field(default_factory=dict)
    peak_growth: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    ok: bool = False


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def run_mixed(
    minutes: float,
    interval: float = 60.0,
    warm_minutes: float = 3.0,
    log: Callable[[str], object] = print,
) -> MixedReport:
    """Soak one server with mixed traffic for ``minutes``; see the module docstring."""
    from tests.hardening.mixed_traffic import Traffic

    report = MixedReport()
    started = time.monotonic()
    with sandman("tests.hardening.soak_app:app", "--no-access-log") as server:
        pid = server.proc.pid
        traffic = Traffic(server.port)

        def sample() -> MixedSample:
            traffic.pause()
            settle(1.0)  # connections the clients just closed are reaped
            s = MixedSample(
                (time.monotonic() - started) / 60,
                rss_kib(pid),
                fd_count(pid),
                thread_count(pid),
                traffic.totals(),
            )
            traffic.resume()
            report.samples.append(s)
            done = sum(k["ok"] for k in s.traffic.values())
            injected = s.traffic["abrupt"]["injected"]
            errors = sum(k["errors"] for k in s.traffic.values())
            log(
                f"{s.minute:6.1f} min  rss {s.rss_kib:>7,d} KiB  fds {s.fds:>3d}  threads "
                f"{s.threads:>2d}  ok {done:>9,d}  injected {injected:>6,d}  errors {errors}"
            )
            return s

        sample()
        traffic.start()
        deadline = started + minutes * 60
        next_sample = time.monotonic() + interval
        while True:
            time.sleep(max(0.0, min(next_sample, deadline) - time.monotonic()))
            if time.monotonic() >= deadline:
                break
            if server.proc.poll() is not None:
                raise RuntimeError(f"server died:\n{server.stderr}")
            current = sample()
            if report.warm is None and current.minute >= warm_minutes:
                report.warm = current
            next_sample += interval
        traffic.stop()
        report.end = sample()
        if server.proc.poll() is not None:
            raise RuntimeError(f"server died:\n{server.stderr}")
    report.minutes = (time.monotonic() - started) / 60
    report.warm = report.warm or report.samples[1]
    after = [s for s in report.samples if s.minute >= report.warm.minute]
    for key in ("rss_kib", "fds", "threads"):
        base = getattr(report.warm, key)
        report.growth[key] = getattr(report.end, key) / base - 1
        report.peak_growth[key] = max(getattr(s, key) for s in after) / base - 1
    report.errors = traffic.errors()
    report.ok = not report.errors and all(g <= MIXED_TOLERANCE for g in report.growth.values())
    return report


def mixed_summary(report: MixedReport) -> str:
    totals = report.end.traffic if report.end else {}
    kinds = ", ".join(f"{name} {t['ok'] or t['injected']:,d}" for name, t in totals.items())
    growth = ", ".join(
        f"{key} {report.growth[key]:+.1%} (peak {report.peak_growth[key]:+.1%})"
        for key in report.growth
    )
    return (
        f"{report.minutes:.1f} min of mixed traffic ({kinds}); after warm-up "
        f"({report.warm.minute:.1f} min): {growth}; {len(report.errors)} error(s): "
        f"{'PASS' if report.ok else 'FAIL'} (limit {MIXED_TOLERANCE:.0%})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--warm-requests", type=int, default=100_000)
    parser.add_argument("--warm-cycles", type=int, default=10_000)
    parser.add_argument("--loader", choices=["wrk", "python"], default="wrk")
    parser.add_argument("--json", type=Path, help="write the report (with every sample) here")
    parser.add_argument("--mixed", type=float, metavar="MINUTES", help="the mixed soak")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--warm", type=float, default=3.0, help="warm-up minutes (mixed)")
    args = parser.parse_args(argv)
    if args.mixed:
        mixed = run_mixed(args.mixed, args.interval, args.warm)
        print(mixed_summary(mixed))
        for error in mixed.errors:
            print("ERROR", error)
        if args.json:
            args.json.write_text(json.dumps(asdict(mixed), indent=1))
        return 0 if mixed.ok else 1
    report = run(args.requests, args.cycles, args.warm_requests, args.warm_cycles, args.loader)
    print(
        f"{report.requests:,d} keep-alive requests, {report.cycles:,d} open/close cycles in "
        f"{report.seconds:.0f} s; RSS {report.warm.rss_kib:,d} -> {report.end.rss_kib:,d} KiB "
        f"({report.rss_growth:+.1%}), fds {report.warm.fds} -> {report.end.fds} "
        f"({report.fd_growth:+.1%}): {'PASS' if report.ok else 'FAIL'} (limit 10%)"
    )
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
