"""The training load for a profile-guided build (.ci/pgo-profile).

Serves each of bench/apps.py's apps with the interpreter running this script (whose Sandman is
the instrumented build) and drives it with real clients: HTTP/1.1 requests small and large,
request bodies, a streamed response, WebSocket messages and HTTP/2 (h2c) requests. The
profile only needs the paths' relative counts, so a few thousand requests each are enough;
what matters is that every path users run hot is in it, or the optimiser treats it as cold.

    python bench/pgo_train.py [--no-h2c]      (needs curl: bench/run.py's readiness check)

--no-h2c leaves out the HTTP/2 load, for a build that has no HTTP/2 (the build before issue
23, when both are profiled to compare them: docs/performance.md, "Profile-guided builds").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
from websockets.asyncio.client import connect

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import HERE, free_port, wait_ready  # noqa: E402

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


async def many(count: int, tasks: int, one: Callable[[], Awaitable[None]]) -> None:
    """Run `one` exactly `count` times over `tasks` concurrent workers."""

    async def worker(share: int) -> None:
        for _ in range(share):
            await one()

    # The first `count % tasks` workers take one call more, so none is dropped.
    shares = [count // tasks + (i < count % tasks) for i in range(tasks)]
    await asyncio.gather(*(worker(share) for share in shares))


async def http1_gets(url: str, count: int) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as client:

        async def one() -> None:
            (await client.get(url)).raise_for_status()

        await many(count, 32, one)


async def http1_posts(url: str, count: int) -> None:
    body = b"x" * 64 * 1024
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=8)) as client:

        async def one() -> None:
            response = await client.post(url, content=body)
            response.raise_for_status()
            assert len(response.content) == len(body)

        await many(count, 8, one)


async def h2c_gets(url: str, count: int) -> None:
    async with httpx.AsyncClient(http1=False, http2=True) as client:

        async def one() -> None:
            response = await client.get(url)
            response.raise_for_status()
            assert response.http_version == "HTTP/2"

        await many(count, 16, one)


async def websocket_echoes(url: str, count: int) -> None:
    async def conversation() -> None:
        async with connect(url, max_size=None) as ws:
            for i in range(count // 8):
                message = b"m" * (64 * 1024 if i % 4 == 0 else 16)
                await ws.send(message)
                assert await ws.recv() == message

    await asyncio.gather(*(conversation() for _ in range(8)))


def h2c_load(port: int) -> Awaitable[None]:
    return h2c_gets(f"http://127.0.0.1:{port}/", 3000)


# (app, what drives it): the workloads of bench/run.py's HTTP/1.1 and HTTP/2 tables.
LOADS: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
    ("apps:hello", lambda port: http1_gets(f"http://127.0.0.1:{port}/", 2000)),
    ("apps:hello", h2c_load),
    ("apps:fortunes", lambda port: http1_gets(f"http://127.0.0.1:{port}/", 2000)),
    ("apps:echo", lambda port: http1_posts(f"http://127.0.0.1:{port}/", 800)),
    ("apps:stream", lambda port: http1_gets(f"http://127.0.0.1:{port}/", 64)),
    ("apps:ws_echo", lambda port: websocket_echoes(f"ws://127.0.0.1:{port}/", 4000)),
]


def serve(app: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "sandman_asgi", app, "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(command, cwd=HERE)
    if wait_ready(port, "/", server, timeout=START_TIMEOUT) is not None:
        return server
    if server.poll() is not None:
        raise SystemExit(f"pgo_train: {app} exited with {server.returncode}")
    server.kill()
    raise SystemExit(f"pgo_train: {app} did not start in {START_TIMEOUT:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description="The training load for a profile-guided build.")
    parser.add_argument("--no-h2c", action="store_true", help="leave out the HTTP/2 load")
    loads = LOADS
    if parser.parse_args().no_h2c:
        loads = [(app, load) for app, load in LOADS if load is not h2c_load]
    for app, load in loads:
        port = free_port()
        server = serve(app, port)
        try:
            started = time.monotonic()
            asyncio.run(load(port))
            print(f"pgo_train: {app} {time.monotonic() - started:.1f} s", flush=True)
        finally:
            # A clean exit: the instrumented build writes its profile when the process ends.
            server.send_signal(signal.SIGINT)
            try:
                server.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                server.kill()
                message = f"pgo_train: {app} did not stop in {STOP_TIMEOUT:.0f} s"
                raise SystemExit(message) from None
        if server.returncode != 0:
            raise SystemExit(f"pgo_train: {app} exited with {server.returncode}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
