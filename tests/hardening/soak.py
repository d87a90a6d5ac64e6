"""Leak soak (issue #7 "No leaks"): keep-alive requests and connection open/close cycles
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--warm-requests", type=int, default=100_000)
    parser.add_argument("--warm-cycles", type=int, default=10_000)
    parser.add_argument("--loader", choices=["wrk", "python"], default="wrk")
    parser.add_argument("--json", type=Path, help="write the report (with every sample) here")
    args = parser.parse_args(argv)
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
