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
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ab import start_sandman, stop_sandman  # noqa: E402
from run import post_script  # noqa: E402

from tests.hardening.loadgen import rss_kib  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", default="apps:echo")
    parser.add_argument("--post-kib", type=int, default=64)
    parser.add_argument("--requests", type=int, default=700_000)
    parser.add_argument("--warm-requests", type=int, default=100_000)
    args = parser.parse_args()
    wrk = ["taskset", "-c", "1", "wrk", "-t1", "-c128", "-d5s"]
    if args.post_kib:
        script = HERE / ".rss-post.lua"
        script.write_text(post_script(args.post_kib))
        wrk += ["-s", str(script)]
    proc, port = start_sandman(args.app)
    try:
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
        stop_sandman(proc)


if __name__ == "__main__":
    sys.exit(main())
