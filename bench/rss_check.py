"""RSS of one Sandman server under a long wrk load: after a warm-up and at the end.

Usage: python bench/rss_check.py [--app apps:echo] [--post-kib 64] [--requests 700000]
Server on CPU 0, wrk on CPU 1 (128 connections, 5 s slices until ``--requests`` is reached).
Prints RSS after each slice and the end/warm-up ratio. tests/hardening/soak.py is the
hello-world soak with descriptors and connection cycles; this one checks that bodies
(lent to the IO thread from 16 KiB up) leave nothing behind.
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.ab import free_port  # noqa: E402
from tests.hardening.loadgen import rss_kib  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", default="apps:echo")
    parser.add_argument("--post-kib", type=int, default=64)
    parser.add_argument("--requests", type=int, default=700_000)
    parser.add_argument("--warm-requests", type=int, default=100_000)
    args = parser.parse_args()
    port = free_port()
    wrk = ["taskset", "-c", "1", "wrk", "-t1", "-c128", "-d5s"]
    if args.post_kib:
        script = HERE / ".rss-post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f'wrk.body = string.rep("x", {args.post_kib * 1024})\n'
            'wrk.headers["Content-Type"] = "application/octet-stream"\n'
        )
        wrk += ["-s", str(script)]
    server = [sys.executable, "-m", "sandman_asgi", args.app, "--port", str(port)]
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *server, "--no-access-log", "--log-level", "warning"],
        cwd=HERE,
        start_new_session=True,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    print("the server exited")
                    return 1
                time.sleep(0.1)
        done, warm = 0, None
        while done < args.requests:
            out = subprocess.run(
                [*wrk, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=60
            ).stdout
            m = re.search(r"(\d+) requests in", out)
            if m is None or "Non-2xx" in out:
                print(f"wrk failed:\n{out}")
                return 1
            done += int(m.group(1))
            rss = rss_kib(proc.pid)
            if warm is None and done >= args.warm_requests:
                warm = rss
            print(f"{done:>9,} requests  RSS {rss:,} KiB", flush=True)
        assert warm is not None
        print(f"after warm-up {warm:,} KiB, after {done:,} requests {rss:,} KiB: {rss / warm:.3f}x")
        return 0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
