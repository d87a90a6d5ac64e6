"""Run the Autobahn|Testsuite fuzzing client against Sandman and summarise the verdicts.

Autobahn's ``wstest`` runs on Python 2.7 only. Set it up once:

    python2.7 -m virtualenv /tmp/ab27 && /tmp/ab27/bin/pip install autobahntestsuite

then: ``python tests/autobahn/run.py [--wstest /tmp/ab27/bin/wstest] [--cases 1.*,2.*]``.
Exits 1 if any case is FAILED. Reports land in ``tests/autobahn/reports/`` (not committed).
Sections 1-11 take a couple of minutes; 12-13 (compression) much longer.
``--server-args '--ws-deflate-context-takeover --ws-deflate-window-bits 15'`` runs the
cases against other server settings.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wstest", default="/tmp/ab27/bin/wstest")
    parser.add_argument("--cases", default="1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,11.*,12.*,13.*")
    parser.add_argument("--exclude", default="")
    parser.add_argument(
        "--server-args",
        default="",
        help="more flags for the server, e.g. '--ws-deflate-context-takeover'",
    )
    args = parser.parse_args()

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandman_asgi",
            "tests.autobahn.echo_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--ws-max-size",
            str(64 * 1024 * 1024),
            *shlex.split(args.server_args),
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        reports = HERE / "reports"
        spec = {
            "outdir": str(reports),
            "servers": [{"agent": "sandman", "url": f"ws://127.0.0.1:{port}"}],
            "cases": args.cases.split(","),
            "exclude-cases": [c for c in args.exclude.split(",") if c],
            "exclude-agent-cases": {},
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(spec, f)
        subprocess.run(
            [args.wstest, "-m", "fuzzingclient", "-s", f.name],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)

    results = json.loads((reports / "index.json").read_text())["sandman"]
    verdicts = collections.Counter(r["behavior"] for r in results.values())
    closes = collections.Counter(r["behaviorClose"] for r in results.values())
    print("behaviour:", dict(verdicts))
    print("close behaviour:", dict(closes))
    failed = sorted(
        c for c, r in results.items() if r["behavior"] == "FAILED" or r["behaviorClose"] == "FAILED"
    )
    for case in failed:
        print("FAILED", case)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
