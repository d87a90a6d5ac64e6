"""Faults under load (issue #7 "Faults"): app exceptions, SIGTERM with requests in flight,
a worker killed with SIGKILL, a lifespan that fails in every worker.

What already exists is not repeated: one app exception -> 500 (tests/test_app_errors.py), a
single in-flight request over SIGINT (tests/test_process.py), a dead worker replaced within
1.5 s and a failing worker stopping the parent with 3 (tests/test_supervisors.py). These add
load: many requests at once, and a client that keeps going while the fault happens.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.serverproc import read_response, sandman
from tests.test_supervisors import (
    pid_alive,
    ready_count,
    started_workers,
    supervised,
    wait_until,
)


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        status, _, body = read_response(sock, timeout=timeout)
    return int(status.split()[1]), body


def test_app_exceptions_under_concurrent_load_are_500_and_the_rest_is_served():
    with sandman("tests.apps:errors", "--no-access-log") as server:
        paths = ["/raise-before", "/"] * 150
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda p: (p, get(server.port, p)), paths))
        for path, (status, body) in results:
            if path == "/raise-before":
                assert (status, body) == (500, b"Internal Server Error")
            else:
                assert (status, body) == (200, b"fine")
        assert server.stderr.count("RuntimeError: boom before start") == 150
        assert get(server.port, "/") == (200, b"fine")


class InFlight:
    """``count`` slow requests (``tests.apps:slow`` answers after ``seconds``), started
    together on their own connections; ``results`` fills as they finish."""

    def __init__(self, port: int, count: int, seconds: float) -> None:
        self.results: list[tuple[int, bytes] | BaseException] = []
        self.started = threading.Barrier(count + 1)
        self.threads = [
            threading.Thread(target=self._one, args=(port, seconds)) for _ in range(count)
        ]
        for t in self.threads:
            t.start()
        self.started.wait(timeout=10)

    def _one(self, port: int, seconds: float) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=20)
            with sock:
                sock.sendall(f"GET /?s={seconds} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                self.started.wait(timeout=10)
                status, _, body = read_response(sock, timeout=20)
                self.results.append((int(status.split()[1]), body))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.results.append(exc)

    def join(self) -> list[tuple[int, bytes] | BaseException]:
        for t in self.threads:
            t.join(timeout=30)
        return self.results


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError as exc:
        return exc.errno == errno.ECONNREFUSED
    return False


@pytest.mark.parametrize(
    ("flags", "exit_status"),
    [((), -signal.SIGTERM), (("--workers", "2"), 0)],
    ids=["single-process-dies-by-sigterm", "workers-parent-exits-0"],
)
def test_sigterm_under_load_finishes_in_flight_and_refuses_new(flags, exit_status):
    # Single process: uvicorn's behaviour, the signal is re-raised after the graceful stop
    # (exit by signal 15). Under --workers the parent stops its workers and exits 0.
    with supervised(
        "tests.apps:slow", *flags, "--timeout-graceful-shutdown", "10", ready=2 if flags else 0
    ) as server:
        time.sleep(0.3)
        load = InFlight(server.port, count=24, seconds=2.0)
        time.sleep(0.5)  # every request is in the app, mid-response
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        wait_until(lambda: refused(server.port), 3, "the listener to close")
        results = load.join()
        finished = time.monotonic() - signalled
        rc = server.wait(timeout=15)
    print(f"FIGURE SIGTERM {flags}: 24 in-flight done {finished:.2f} s after the signal, rc {rc}")
    assert results == [(200, b"start;end")] * 24
    assert finished < 10, "within the graceful timeout"
    assert rc == exit_status
    assert "Cancel" not in server.stderr, "nothing had to be cancelled"


def test_sigkill_of_one_worker_while_a_client_keeps_going():
    flags = ("--workers", "2", "--no-access-log")
    with supervised("tests.supervised_apps:pid", *flags, ready=2) as server:
        victim, survivor = started_workers(server)
        served: list[tuple[float, int]] = []
        failures: list[tuple[float, BaseException]] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                started = time.monotonic()  # when it was sent: a reply read after the kill
                try:  # may still come from the victim, if it answered just before dying
                    status, body = get(server.port, "/", timeout=5)
                    assert status == 200
                    served.append((started, int(body)))
                except (OSError, AssertionError) as exc:
                    failures.append((started, exc))

        thread = threading.Thread(target=client)
        thread.start()
        try:
            wait_until(lambda: {pid for _, pid in served} == {victim, survivor}, 10, "both")
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_until(lambda: ready_count(server) == 3, 5, "a replacement to be ready")
            replaced_after = time.monotonic() - killed_at
            (replacement,) = set(started_workers(server)) - {victim, survivor}
            wait_until(lambda: any(pid == replacement for _, pid in served), 10, "it to serve")
        finally:
            stop.set()
            thread.join(10)
        print(
            f"FIGURE kill -9: replacement ready after {replaced_after:.2f} s,"
            f" {len(failures)} request(s) failed"
        )
        assert replaced_after < 2.0, f"replacement ready {replaced_after:.2f}s after the kill"
        # Requests sent after the kill (a few ms for SIGKILL to land) until the replacement.
        window = [pid for t, pid in served if killed_at + 0.05 < t < killed_at + replaced_after]
        assert window and set(window) <= {survivor, replacement}, "the other kept serving"
        # At most the request that the killed worker held at that moment fails.
        assert len(failures) <= 1, failures
        assert not pid_alive(victim)


def test_lifespan_failure_in_workers_exits_3_without_respawning():
    # tests/test_supervisors.py checks the exit status and log lines; this checks that no
    # worker is started after the first failure and that the parent is quick about it.
    start = time.monotonic()
    with supervised("tests.apps:lifespan_failed", "--workers", "2") as server:
        rc = server.wait(timeout=20)
    assert rc == 3
    assert time.monotonic() - start < 10
    assert len(started_workers(server)) <= 2, server.stderr
    assert server.stderr.count("Application startup failed. Exiting.") <= 2
