"""The response queue's depth: how much a streamed response may queue before `send()` waits.

Streams share one per-server budget (`sandman_core/src/common/queue_budget.rs`): each may
queue 128 MiB divided by the streams in progress or the open connections (whichever is more),
at least 64 KiB and at most 256 KiB. `tests.apps:queue_probe` reports the first of its
64 KiB sends that suspended once N streams are open.
"""

from __future__ import annotations

import asyncio
import re
import time

from tests.serverproc import sandman

STREAMS = 700  # 128 MiB / 700 = 187 KiB per stream: the third 64 KiB send waits


async def _probe(port: int, key: str, streams: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /?key={key}&streams={streams} HTTP/1.1\r\nHost: x\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    found = re.search(rb"suspended-at=(\d)\r\n0\r\n\r\n$", raw)
    assert found, raw[-200:]
    return int(found.group(1))


async def _probes(port: int, key: str, streams: int) -> list[int]:
    return await asyncio.wait_for(
        asyncio.gather(*(_probe(port, key, streams) for _ in range(streams))), 60
    )


def test_one_stream_queues_256_kib_and_many_share_the_budget():
    with sandman("tests.apps:queue_probe") as server:
        # Alone, a stream queues four 64 KiB chunks (256 KiB); the fifth send waits. The
        # probe's sends all run in one task step, before the IO thread can take any.
        assert asyncio.run(_probes(server.port, "alone", 1)) == [5]
        # With 700 open, each gets 187 KiB: the third send waits. The IO thread may take a
        # queue while a probe is still sending (only ever making it wait later), so the
        # check is on the typical probe, which a fixed 256 KiB queue (5) would fail.
        many = sorted(asyncio.run(_probes(server.port, "many", STREAMS)))
        assert many[0] == 3, many
        assert many[len(many) // 2] <= 4, many
        # The budget is given back as streams end and connections close: alone again,
        # 256 KiB again (once the IO thread has seen the 700 connections go).
        deadline = time.monotonic() + 10
        round_ = 0
        while (alone := asyncio.run(_probes(server.port, f"after{round_}", 1))) != [5]:
            assert time.monotonic() < deadline, alone
            round_ += 1
            time.sleep(0.1)
