"""Large response bodies: `bytes` are lent to the IO thread, everything else is copied.

A `bytes` object of 16 KiB or more is written straight from its buffer (no copy) and handed
back to the event loop thread to be released when the IO thread is done with it. These
tests pin what that must never change: mutable buffers are copied at `send()`, one object
can back many responses at once, and the memory of a written body is returned without
waiting for more traffic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.apps import SHARED_CHUNK
from tests.hardening.loadgen import rss_kib
from tests.serverproc import ServerProcess, sandman


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with sandman("tests.apps:large_bodies") as server:
        yield server


@pytest.mark.parametrize("kind", ["bytearray", "memoryview"])
def test_mutable_buffers_are_copied_at_send(server: ServerProcess, kind: str) -> None:
    response = httpx.get(f"{server.url}/mutable?kind={kind}", timeout=10)
    assert response.status_code == 200
    mib = 1 << 20
    assert response.content == b"a" * mib + b"b" * mib


def test_one_object_backs_many_responses_at_once(server: ServerProcess) -> None:
    async def one(client: httpx.AsyncClient) -> bytes:
        response = await client.get(f"{server.url}/shared?n=8")
        assert response.status_code == 200
        return response.content

    async def many() -> list[bytes]:
        async with httpx.AsyncClient(timeout=20) as client:
            return await asyncio.gather(*(one(client) for _ in range(32)))

    for body in asyncio.run(many()):
        assert body == SHARED_CHUNK * 8


def test_memory_of_a_written_body_is_returned_without_more_traffic(
    server: ServerProcess,
) -> None:
    pid = server.proc.pid
    assert httpx.get(f"{server.url}/fresh?mib=1", timeout=10).status_code == 200
    before = rss_kib(pid)
    with httpx.Client(timeout=30) as client:
        response = client.get(f"{server.url}/fresh?mib=256")
        assert len(response.content) == 256 << 20
        del response
        # The connection stays open and idle and no request follows: the IO thread's
        # hand-back alone must let the loop free the body.
        deadline = time.monotonic() + 10
        while rss_kib(pid) > before + (64 << 10) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rss_kib(pid) <= before + (64 << 10), (before, rss_kib(pid))


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_large_websocket_messages_arrive_whole(compression: str | None) -> None:
    async def exchange() -> None:
        with sandman("tests.ws_apps:echo") as ws_server:
            url = f"ws://127.0.0.1:{ws_server.port}/"
            async with websockets.connect(url, max_size=None, compression=compression) as ws:
                text = "é€😀" * 20_000  # non-ASCII: the UTF-8 form is not the str's storage
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), 10) == text
                data = bytes(range(256)) * 1024
                await ws.send(data)
                assert await asyncio.wait_for(ws.recv(), 10) == data

    asyncio.run(exchange())
