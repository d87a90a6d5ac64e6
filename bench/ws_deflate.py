"""WebSocket echo throughput with permessage-deflate: Sandman against uvicorn (and others).

bench/wsbench (tokio-tungstenite) cannot compress, so this drives the echo with the Python
``websockets`` client, which offers permessage-deflate as browsers do (with
``client_max_window_bits``) and takes whatever terms the server answers. Each round starts
every server at once on the server CPU (as ``bench/run.py --together``) and loads each with
its own client process on the client CPU: ``--conns`` connections per server, each sending a
JSON-like text message and waiting for its echo, for ``--duration`` seconds after a
``--warmup``. Prints messages/s per server and round, and Sandman's ratio to each peer.

Usage: python bench/ws_deflate.py [--servers sandman,uvicorn] [--conns 32] [--duration 8]
       [--rounds 3] [--size 1024] [--baseline-python PATH]
The client may set the pace: its CPU share is printed too. Peers come from bench/run.py's
virtualenv (installed on first use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import ensure_venv, free_port, server_command, stop, wait_ready  # noqa: E402


def message(size: int) -> str:
    """A compressible text message of about ``size`` bytes, as a JSON feed sends."""
    item = '{"id": %d, "symbol": "ACME", "price": %d.25, "currency": "EUR"}'
    parts, n = [], 0
    while n < size:
        parts.append(item % (n, 100 + n % 97))
        n += len(parts[-1]) + 2
    return ("[" + ", ".join(parts) + "]")[:size]


async def _client(url: str, conns: int, warmup: float, duration: float, size: int) -> dict:
    import websockets  # the client library; offers permessage-deflate by default

    text = message(size)
    counts = [0] * conns
    start = time.monotonic()
    measure_from, end = start + warmup, start + warmup + duration

    async def one(i: int) -> None:
        async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
            while (now := time.monotonic()) < end:
                await ws.send(text)
                if await ws.recv() != text:
                    raise RuntimeError("bad echo")
                if now >= measure_from:
                    counts[i] += 1

    results = await asyncio.gather(*(one(i) for i in range(conns)), return_exceptions=True)
    errors = sum(isinstance(r, BaseException) for r in results)
    cpu = time.process_time()
    return {"messages_per_sec": sum(counts) / duration, "errors": errors, "cpu_s": cpu}


def client_main(argv: list[str]) -> None:
    url, conns, warmup, duration, size = argv
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out = asyncio.run(_client(url, int(conns), float(warmup), float(duration), int(size)))
    print(json.dumps(out), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="sandman,uvicorn")
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--venv", default=os.environ.get("BENCH_VENV", str(HERE / ".bench-venv")))
    parser.add_argument("--baseline-python")
    args = parser.parse_args()
    servers = args.servers.split(",")
    peer_bin = ensure_venv(Path(args.venv))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    rates: dict[str, list[float]] = {s: [] for s in servers}
    for k in range(args.rounds):
        procs, clients = {}, {}
        try:
            for server in servers:
                port = free_port()
                python = args.baseline_python if server == "baseline" else sys.executable
                cmd = server_command(
                    server, "apps:ws_echo", port, peer_bin, 1, ws=True, python=python
                )
                proc = subprocess.Popen(
                    ["taskset", "-c", args.server_cpu, *cmd],
                    cwd=HERE,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                procs[server] = (proc, port)
                if wait_ready(port, "/", proc) is None:
                    raise RuntimeError(f"{server} did not start")
            for server, (_, port) in procs.items():
                clients[server] = subprocess.Popen(
                    [
                        "taskset",
                        "-c",
                        args.client_cpu,
                        sys.executable,
                        __file__,
                        "--client",
                        f"ws://127.0.0.1:{port}/",
                        str(args.conns),
                        str(args.warmup),
                        str(args.duration),
                        str(args.size),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            for server, client in clients.items():
                out = client.communicate(timeout=args.duration + args.warmup + 120)[0]
                result = json.loads(out.strip().splitlines()[-1])
                rates[server].append(result["messages_per_sec"])
                print(
                    f"round {k + 1} {server:<9} {result['messages_per_sec']:>9,.0f} msg/s"
                    f"  errors {result['errors']}  client CPU {result['cpu_s']:.1f} s",
                    flush=True,
                )
        finally:
            for proc, _ in procs.values():
                stop(proc)
    print()
    for server in servers:
        print(f"{server:<9} median {statistics.median(rates[server]):>9,.0f} msg/s")
    if "sandman" in servers:
        for peer in servers:
            if peer != "sandman":
                ratios = [a / b for a, b in zip(rates["sandman"], rates[peer], strict=True) if b]
                shown = ", ".join(f"{r:.2f}" for r in ratios)
                print(f"sandman/{peer}: {shown} (median {statistics.median(ratios):.2f}x)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
    else:
        sys.exit(main())
