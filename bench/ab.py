"""A/B two builds of ``sandman_asgi._core`` on one workload, interleaved to cancel drift.

Usage: python bench/ab.py OLD.so NEW.so [--app apps:hello] [--rounds 3] [--duration 5]
       [--post-kib 64] [--env-a KEY=VALUE] [--env-b KEY=VALUE]
Each round runs A then B (server on CPU 0, wrk on CPU 1, 128 connections) by swapping the
extension file in place; prints req/s per run and the median ratio B/A. Restores the
original file at the end. Used for the before/after figures in docs/performance.md.

With --together, each round runs A and B at the same time instead (both servers on CPU 0,
each with its own wrk on CPU 1) and compares their CPU per request over the same window:
whatever the host's other tenants do then hits both alike. On this shared machine the same
build's req/s moves by 20% from one run to the next, which sequential rounds cannot cancel.
The two servers share a core and its caches, so absolute figures are not those of a server
alone; the ratio is the point.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from run import free_port, post_script, server_command

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def start_sandman(
    app: str, extra: list[str] | tuple[str, ...] = (), env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, int]:
    """``python -m sandman_asgi APP`` on CPU 0 and a free port, once it accepts (10 s)."""
    port = free_port()
    # The same command line bench/run.py uses (peer_bin and io_threads are for the peers).
    command = server_command("sandman", app, port, peer_bin=ROOT, io_threads=1)
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *command, *extra],
        cwd=HERE,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    stop_sandman(proc)
    raise RuntimeError(f"sandman {app} did not start accepting on port {port}")


def stop_sandman(proc: subprocess.Popen) -> None:
    """SIGINT (a graceful stop), then SIGKILL after 5 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


def cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU per thread name (and "total"), clock ticks -> seconds."""

    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        out[name] = out.get(name, 0.0) + used
        out["total"] = out.get("total", 0.0) + used
    return out


def wrk_command(conns: int, script: Path | None) -> list[str]:
    """wrk on CPU 1, one thread, `conns` connections (and a Lua script when given)."""
    wrk = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}"]
    return wrk + ["-s", str(script)] if script is not None else wrk


def wrk_result(out: str) -> tuple[float, int]:
    """Requests/s and requests completed from wrk's report (zeros when it has none)."""
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    return (float(m.group(1)) if m else 0.0, int(done.group(1)) if done else 0)


def one_run(
    app: str,
    duration: int,
    conns: int,
    path: str,
    extra: list[str],
    env: dict[str, str] | None = None,
    script: Path | None = None,
) -> tuple[float, float]:
    """Requests/s and server CPU microseconds per request (robust to a noisy machine:
    other processes steal wall time, not the server's CPU time per request)."""
    proc, port = start_sandman(app, extra, env)
    try:
        url = f"http://127.0.0.1:{port}{path}"
        wrk = wrk_command(conns, script)
        subprocess.run([*wrk, "-d1s", url], capture_output=True, timeout=60)
        cpu0 = cpu_seconds(proc.pid)
        out = subprocess.run(
            [*wrk, f"-d{duration}s", url], capture_output=True, text=True, timeout=120
        ).stdout
        cpu1 = cpu_seconds(proc.pid)
        cpu = cpu1["total"] - cpu0["total"]
        io = cpu1.get("sandman-io", 0.0) - cpu0.get("sandman-io", 0.0)
        rps, n = wrk_result(out)
        per_req = cpu / n * 1e6 if n else 0.0
        if n:
            print(
                f"    CPU/request: {per_req:.1f} us total, {io / n * 1e6:.1f} us on IO threads",
                flush=True,
            )
        return rps, per_req
    finally:
        stop_sandman(proc)


def together_round(
    builds: tuple[str, str],
    target: Path,
    app: str,
    duration: int,
    conns: int,
    path: str,
    extra: list[str],
    envs: dict[str, dict[str, str]],
    script: Path | None = None,
) -> list[tuple[float, float]]:
    """A and B served and loaded at the same time: (req/s, server CPU us/request) each."""
    procs: list[tuple[subprocess.Popen, int]] = []
    try:
        for label, so in zip("AB", builds, strict=True):
            # A started server keeps the file it mapped: swap, start, swap again.
            swap_in(so, target)
            procs.append(start_sandman(app, extra, envs[label]))
        urls = [f"http://127.0.0.1:{port}{path}" for _, port in procs]
        wrk = wrk_command(conns, script)
        warm = [subprocess.Popen([*wrk, "-d1s", u], stdout=subprocess.DEVNULL) for u in urls]
        for w in warm:
            w.wait(timeout=60)
        cpu0 = [cpu_seconds(p.pid)["total"] for p, _ in procs]
        loads = [
            subprocess.Popen([*wrk, f"-d{duration}s", u], stdout=subprocess.PIPE, text=True)
            for u in urls
        ]
        outs = [load.communicate(timeout=120)[0] for load in loads]
        cpu1 = [cpu_seconds(p.pid)["total"] for p, _ in procs]
        results = []
        for out, c0, c1 in zip(outs, cpu0, cpu1, strict=True):
            rps, n = wrk_result(out)
            results.append((rps, (c1 - c0) / n * 1e6 if n else 0.0))
        return results
    finally:
        for proc, _ in procs:
            stop_sandman(proc)


def swap_in(source: str | Path, target: Path) -> None:
    """Replace the extension atomically: a process that has the old file mapped keeps its
    inode (copying over it in place would crash every running server with SIGBUS)."""
    tmp = target.with_suffix(".ab-tmp")
    shutil.copy2(source, tmp)
    os.replace(tmp, target)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--app", default="apps:hello")
    parser.add_argument("--path", default="/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--conns", type=int, default=128)
    parser.add_argument("--server-arg", action="append", default=[])
    parser.add_argument("--post-kib", type=int, default=0, help="POST a body of this size")
    parser.add_argument("--env-a", action="append", default=[], help="KEY=VALUE for A only")
    parser.add_argument("--env-b", action="append", default=[], help="KEY=VALUE for B only")
    parser.add_argument(
        "--together", action="store_true", help="run A and B at the same time (see above)"
    )
    args = parser.parse_args()
    envs = {
        "A": dict(kv.split("=", 1) for kv in args.env_a),
        "B": dict(kv.split("=", 1) for kv in args.env_b),
    }
    script = None
    if args.post_kib:
        script = HERE / ".ab-post.lua"
        script.write_text(post_script(args.post_kib))
    import sandman_asgi._core as core

    target = Path(core.__file__)
    backup = target.with_suffix(".ab-backup")
    shutil.copy2(target, backup)
    a, b, ca, cb = [], [], [], []
    try:
        for i in range(args.rounds):
            if args.together:
                (ra, ua), (rb, ub) = together_round(
                    (args.old, args.new),
                    target,
                    args.app,
                    args.duration,
                    args.conns,
                    args.path,
                    args.server_arg,
                    envs,
                    script,
                )
                a.append(ra)
                b.append(rb)
                ca.append(ua)
                cb.append(ub)
                print(
                    f"round {i + 1} together: A {ra:,.0f} req/s {ua:.1f} us CPU/req, "
                    f"B {rb:,.0f} req/s {ub:.1f} us CPU/req, B/A CPU/req {ub / ua:.3f}",
                    flush=True,
                )
                continue
            for label, so, sink, csink in (("A", args.old, a, ca), ("B", args.new, b, cb)):
                swap_in(so, target)
                rps, us = one_run(
                    args.app,
                    args.duration,
                    args.conns,
                    args.path,
                    args.server_arg,
                    envs[label],
                    script,
                )
                sink.append(rps)
                csink.append(us)
                print(f"round {i + 1} {label}: {rps:,.0f} req/s  {us:.1f} us CPU/req", flush=True)
    finally:
        swap_in(backup, target)
        backup.unlink()
    cpu_ratios = [y / x for x, y in zip(ca, cb, strict=True) if x]
    print(
        f"median CPU/request A {statistics.median(ca):.1f} us  B {statistics.median(cb):.1f} us"
        f"  B/A {statistics.median(cb) / statistics.median(ca):.3f}"
        f"  (median of per-round B/A {statistics.median(cpu_ratios):.3f})"
    )
    ratios = [y / x for x, y in zip(a, b, strict=True) if x]
    print(
        f"median A {statistics.median(a):,.0f}  median B {statistics.median(b):,.0f}  "
        f"median B/A {statistics.median(ratios):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
