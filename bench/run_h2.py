"""HTTP/2 side by side with h2load: Sandman, granian and hypercorn, same apps, one core each.

Each server runs one worker pinned to CPU 0; h2load runs pinned to CPU 1 with 16
connections of 8 concurrent streams each (128 streams). Modes: ``h2c`` (prior knowledge on
a plain connection) and ``h2`` (TLS, ALPN). For every workload, mode and round: start the
server, check that the one answering is the one started (its ``server`` header, through
curl), measure, record req/s, p50/p99 (from h2load's per-request log) and the server's CPU
per request, stop it by PID. Rounds rotate the order of the servers.

Usage: python bench/run_h2.py [--servers sandman,granian,hypercorn] [--workloads hello,fortunes]
       [--modes h2c,h2] [--rounds 3] [--duration 8]
Needs: h2load and curl with HTTP/2 (Debian: nghttp2-client curl), taskset; the peers are
installed into bench/run.py's virtualenv.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import HERE, ensure_venv, free_port, group_cpu_seconds, stop

APPS = {"hello": ("apps:hello", "/"), "fortunes": ("apps:fortunes", "/")}
RATIO_PEERS = ("granian", "hypercorn")


def tls_files(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost (trustme, a test dependency)."""
    import trustme  # noqa: PLC0415

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    return cert_path, key_path


def command(server: str, app: str, port: int, peers: Path, tls: tuple[Path, Path] | None):
    cert, key = tls if tls else (None, None)
    if server == "sandman":
        cmd = [sys.executable, "-m", "sandman_asgi", app, "--port", str(port)]
        cmd += ["--log-level", "warning", "--no-access-log"]
        return cmd + (["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)] if tls else [])
    if server == "granian":
        cmd = [str(peers / "granian"), "--interface", "asgi", app, "--port", str(port)]
        cmd += ["--workers", "1", "--runtime-threads", "1", "--no-ws", "--log-level", "warning"]
        if tls:
            return cmd + [
                "--http",
                "auto",
                "--ssl-certificate",
                str(cert),
                "--ssl-keyfile",
                str(key),
            ]
        return cmd + ["--http", "2"]
    if server == "hypercorn":
        cmd = [str(peers / "hypercorn"), app, "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
        return cmd + (["--certfile", str(cert), "--keyfile", str(key)] if tls else [])
    raise ValueError(server)


def server_header(url: str, tls: bool) -> str | None:
    """The ``server`` header of an HTTP/2 response from ``url`` (None if none came)."""
    flags = ["-k", "--http2"] if tls else ["--http2-prior-knowledge"]
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-D", "-", "--max-time", "2", *flags, url],
        capture_output=True,
        text=True,
    ).stdout
    if not out.startswith("HTTP/2"):
        return None
    m = re.search(r"^server:\s*(.+?)\s*$", out, re.M | re.I)
    return m.group(1) if m else ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def run_one(server: str, workload: str, mode: str, args, peers: Path, tls) -> dict | None:
    app, path = APPS[workload]
    port = free_port()
    scheme = "https" if mode == "h2" else "http"
    url = f"{scheme}://127.0.0.1:{port}{path}"
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    proc = subprocess.Popen(
        ["taskset", "-c", args.server_cpu, *command(server, app, port, peers, tls)],
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        answered = None
        while time.monotonic() < deadline and answered is None and proc.poll() is None:
            answered = server_header(url, mode == "h2")
            if answered is None:
                time.sleep(0.2)
        # hypercorn sends no server header over HTTP/2: any answer on its fresh port is its.
        known = server in (answered or "").lower() or (server == "hypercorn" and answered == "")
        if answered is None or not known:
            print(f"  {server} {workload} {mode}: not ready / wrong server ({answered})")
            return None
        h2load = ["taskset", "-c", args.client_cpu, "h2load", "-t1", f"-c{args.clients}"]
        h2load += [f"-m{args.streams}"]
        subprocess.run([*h2load, "-D", str(args.warmup), url], capture_output=True, timeout=120)
        with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
            cpu0 = group_cpu_seconds(proc.pid)
            out = subprocess.run(
                [*h2load, "-D", str(args.duration), "--log-file", log.name, url],
                capture_output=True,
                text=True,
                timeout=args.duration + 120,
            ).stdout
            cpu = group_cpu_seconds(proc.pid) - cpu0
            times = [int(line.split()[2]) / 1000 for line in log if line.count("\t") >= 2]
        rps = float(re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out).group(1))
        failed = re.search(r"requests: .* (\d+) failed", out)
        done = len(times)
        return {
            "rps": rps,
            "p50": percentile(times, 50) if times else None,
            "p99": percentile(times, 99) if times else None,
            "failed": int(failed.group(1)) if failed else -1,
            "cpu_us": cpu / done * 1e6 if done else None,
        }
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="sandman,granian,hypercorn")
    parser.add_argument("--workloads", default="hello,fortunes")
    parser.add_argument("--modes", default="h2c,h2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--streams", type=int, default=8, help="concurrent streams per client")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--venv", default=os.environ.get("BENCH_VENV", str(HERE / ".bench-venv")))
    args = parser.parse_args()
    servers = args.servers.split(",")
    peers = ensure_venv(Path(args.venv)) if set(servers) - {"sandman"} else Path()
    with tempfile.TemporaryDirectory() as folder:
        tls = tls_files(Path(folder))
        rows = []
        for workload in args.workloads.split(","):
            for mode in args.modes.split(","):
                runs: dict[str, list[dict]] = {s: [] for s in servers}
                for k in range(args.rounds):
                    for server in servers[k % len(servers) :] + servers[: k % len(servers)]:
                        r = run_one(
                            server, workload, mode, args, peers, tls if mode == "h2" else None
                        )
                        if r:
                            runs[server].append(r)
                for server in servers:
                    if not runs[server]:
                        continue
                    ordered = sorted(runs[server], key=lambda r: r["rps"])
                    mid = ordered[len(ordered) // 2]
                    p99s = ", ".join(f"{r['p99']:.1f}" for r in runs[server] if r["p99"])
                    print(
                        f"{workload:<9} {mode:<4} {server:<10} {mid['rps']:>10,.0f} req/s"
                        f"  p50 {mid['p50']:.2f} ms  p99 {mid['p99']:.2f} ms (rounds: {p99s})"
                        f"  failed {sum(r['failed'] for r in runs[server])}"
                        f"  cpu {mid['cpu_us']:.1f} us/req",
                        flush=True,
                    )
                    rows.append((workload, mode, server, mid, runs[server]))
                for peer in RATIO_PEERS:
                    if runs.get("sandman") and runs.get(peer):
                        pairs = [
                            a["rps"] / b["rps"]
                            for a, b in zip(runs["sandman"], runs[peer], strict=False)
                        ]
                        print(
                            f"{workload:<9} {mode:<4} sandman/{peer}: per round "
                            + ", ".join(f"{p:.2f}" for p in pairs)
                            + f", median {statistics.median(pairs):.2f}x",
                            flush=True,
                        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
