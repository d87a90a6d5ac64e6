"""``--metrics-port``: Prometheus metrics and health checks on their own listener, end to end
over real sockets (httpx, websockets): what is counted, that the exposition parses, what
``/livez`` and ``/readyz`` answer through start-up, a blocked loop and a graceful shutdown,
and that with ``--workers`` one scrape shows the whole group."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import websockets
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.serverproc import ServerProcess, command, sandman, spawn

APP = "tests.metrics_apps:app"
METRICS_LINE = r"Metrics and health checks on http://[^:]+:(\d+)/metrics"


def metrics_port(server: ServerProcess) -> int:
    return int(server.wait_for(METRICS_LINE).group(1))


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape, by name and labels; the text must parse as OpenMetrics."""
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def probe(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def wait_until(check, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def in_background(url: str) -> Iterator[dict]:
    """GET ``url`` on a thread; the dict gets the response once it comes."""
    out: dict = {}

    def fetch() -> None:
        out["response"] = httpx.get(url, timeout=30)

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        thread.join(timeout=30)


# -- what is counted -------------------------------------------------------------------------


def test_requests_bytes_static_and_lag_are_counted(tmp_path: Path):
    (tmp_path / "f.txt").write_bytes(b"static body")
    flags = ["--metrics-port", "0", "--static", f"/files={tmp_path}"]
    with sandman(APP, *flags) as server:
        port = metrics_port(server)
        with httpx.Client() as client:
            for _ in range(3):
                assert client.get(f"{server.url}/").status_code == 200
            for _ in range(2):
                assert client.post(f"{server.url}/status/404").status_code == 404
            assert client.head(f"{server.url}/").status_code == 200
            assert client.put(f"{server.url}/status/503").status_code == 503
            assert client.get(f"{server.url}/files/f.txt").content == b"static body"
            assert client.request("PURGE", f"{server.url}/").status_code == 200
        # Counted when the response body is done, just after the client has it.
        wait_until(
            lambda: (
                value(scrape(port), "sandman_http_requests_total", method="GET", status="2xx") == 4
            ),
            what="the last request to be counted",
        )
        s = scrape(port)
    assert value(s, "sandman_http_requests_total", method="POST", status="4xx") == 2
    assert value(s, "sandman_http_requests_total", method="HEAD", status="2xx") == 1
    assert value(s, "sandman_http_requests_total", method="PUT", status="5xx") == 1
    assert value(s, "sandman_http_requests_total", method="OTHER", status="2xx") == 1
    assert value(s, "sandman_http_requests_total", method="GET", status="4xx") == 0
    assert value(s, "sandman_http_request_duration_seconds_count") == 9
    assert value(s, "sandman_http_request_duration_seconds_bucket", le="+Inf") == 9
    assert value(s, "sandman_http_requests_in_flight") == 0
    assert value(s, "sandman_static_responses_total") == 1
    assert value(s, "sandman_connections_total", protocol="http1") >= 1
    assert value(s, "sandman_received_bytes_total") > 9 * 30
    assert value(s, "sandman_sent_bytes_total") > 9 * 60
    assert value(s, "sandman_event_loop_lag_seconds_count") > 0
    assert value(s, "sandman_workers", state="ready") == 1
    assert value(s, "sandman_event_loop_heartbeat_age_seconds") < 5


def test_http2_connections_are_counted_as_such():
    with sandman(APP, "--metrics-port", "0") as server:
        port = metrics_port(server)
        with httpx.Client(http1=False, http2=True, timeout=10) as client:
            for _ in range(3):
                assert client.get(f"{server.url}/").text == "ok"
            during = scrape(port)
        assert value(during, "sandman_connections_open", protocol="http2") == 1
        assert value(during, "sandman_connections_total", protocol="http2") == 1
        assert value(during, "sandman_http_requests_total", method="GET", status="2xx") == 3


def test_websocket_connections_and_messages():
    with sandman(APP, "--metrics-port", "0") as server:
        port = metrics_port(server)

        async def talk() -> dict:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                for i in range(3):
                    await ws.send(f"m{i}")
                    assert await ws.recv() == f"m{i}"
                return scrape(port)

        during = asyncio.run(talk())
        assert value(during, "sandman_connections_open", protocol="websocket") == 1
        assert value(during, "sandman_websocket_messages_total", direction="in") == 3
        assert value(during, "sandman_websocket_messages_total", direction="out") == 3
        wait_until(
            lambda: value(scrape(port), "sandman_connections_open", protocol="websocket") == 0,
            what="the socket to be counted closed",
        )
        after = scrape(port)
        assert value(after, "sandman_connections_total", protocol="websocket") == 1


# -- health ----------------------------------------------------------------------------------


def test_readyz_is_503_until_lifespan_startup_completes():
    with sandman(APP, "--metrics-port", "0", env={"STARTUP_SECONDS": "2"}, ready=False) as server:
        port = metrics_port(server)
        r = probe(port, "/readyz")
        assert r.status_code == 503 and r.text == "starting\n"
        assert probe(port, "/livez").status_code == 200
        server.wait_for(r"running on http://[^ ]*:(\d+) ")
        wait_until(lambda: probe(port, "/readyz").status_code == 200, what="ready")
        assert probe(port, "/readyz").text == "ok\n"


def test_readyz_fails_from_the_moment_graceful_shutdown_begins():
    with sandman(APP, "--metrics-port", "0") as server:
        port = metrics_port(server)
        assert probe(port, "/readyz").status_code == 200
        with in_background(f"{server.url}/sleep?3") as slow:
            wait_until(
                lambda: value(scrape(port), "sandman_http_requests_in_flight") == 1,
                what="the slow request to start",
            )
            server.send_signal(signal.SIGTERM)
            wait_until(lambda: probe(port, "/readyz").status_code == 503, timeout=2, what="503")
            assert probe(port, "/readyz").text == "shutting down\n"
            # Draining, still alive: the loop turns while the request finishes.
            assert probe(port, "/livez").status_code == 200
        assert slow["response"].status_code == 200
        assert server.wait(timeout=15) == 0 or server.proc.returncode == -signal.SIGTERM


def test_livez_fails_while_the_event_loop_is_blocked():
    flags = ["--metrics-port", "0", "--health-loop-timeout", "0.5"]
    with sandman(APP, *flags) as server:
        port = metrics_port(server)
        assert probe(port, "/livez").status_code == 200
        with in_background(f"{server.url}/block?2.5") as blocked:
            wait_until(
                lambda: probe(port, "/livez").status_code == 503, timeout=3, what="livez 503"
            )
            r = probe(port, "/livez")
            assert re.fullmatch(
                rf"event loop of process {server.proc.pid} has not turned for \d+\.\d s\n", r.text
            ), r.text
            # The listener has a thread of its own: scrapes still answer.
            assert value(scrape(port), "sandman_event_loop_heartbeat_age_seconds") > 0.5
        assert blocked["response"].text == "blocked"
        wait_until(lambda: probe(port, "/livez").status_code == 200, what="livez to recover")


def test_the_listener_answers_only_its_three_paths():
    with sandman(APP, "--metrics-port", "0") as server:
        port = metrics_port(server)
        assert probe(port, "/").status_code == 404
        r = httpx.post(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


def test_metrics_are_off_by_default():
    with sandman(APP) as server:
        assert httpx.get(server.url).text == "ok"
        server.stop()
    assert "Metrics and health checks" not in server.stderr


def test_a_busy_metrics_port_is_a_startup_failure():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        proc = spawn(command(APP, "--port", "0", "--metrics-port", str(busy)))
        assert proc.wait(timeout=30) == 3
    assert f"cannot serve metrics on 127.0.0.1:{busy}" in proc.stderr


# -- a process group -------------------------------------------------------------------------


def _worker_pids(server: ServerProcess) -> list[int]:
    return [int(p) for p in re.findall(r"Started server process \[(\d+)\]", server.stderr)]


def test_one_scrape_shows_every_worker_and_survives_a_restart():
    with sandman(APP, "--workers", "2", "--metrics-port", "0") as server:
        port = metrics_port(server)
        wait_until(
            lambda: value(scrape(port), "sandman_workers", state="ready") == 2, what="2 ready"
        )
        for _ in range(20):
            with httpx.Client() as client:  # a new connection each: both workers take some
                assert client.get(server.url).text == "ok"

        def total() -> float:
            return value(scrape(port), "sandman_http_requests_total", method="GET", status="2xx")

        wait_until(lambda: total() == 20, what="20 requests counted")
        victim = _worker_pids(server)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: value(scrape(port), "sandman_worker_restarts_total") == 1,
            what="the restart to be counted",
        )
        wait_until(
            lambda: value(scrape(port), "sandman_workers", state="ready") == 2,
            what="the replacement to be ready",
        )
        # The dead worker's requests stay in the totals.
        assert total() == 20
        assert probe(port, "/livez").status_code == 200
        with in_background(f"{server.url}/sleep?3") as slow:
            wait_until(
                lambda: value(scrape(port), "sandman_http_requests_in_flight") == 1,
                what="the slow request to start",
            )
            server.send_signal(signal.SIGTERM)
            wait_until(lambda: probe(port, "/readyz").status_code == 503, timeout=2, what="503")
        assert slow["response"].status_code == 200
