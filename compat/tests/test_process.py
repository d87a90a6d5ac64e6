"""Server processes: output captured, stopped by PID, whole process group killed."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from compat.harness.endpoint import Endpoint, free_port, wait_accepting
from compat.harness.process import ServerProcess

# A parent that forks a child which ignores SIGINT, then itself ignores SIGINT: only the
# process-group kill can end both.
STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is as good as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def test_stop_kills_the_process_group(tmp_path: Path) -> None:
    proc = ServerProcess([sys.executable, "-c", STUBBORN], tmp_path / "log")
    deadline = time.monotonic() + 5
    while not proc.log_text().strip() and time.monotonic() < deadline:
        time.sleep(0.02)
    child = int(proc.log_text().split()[0])
    began = time.monotonic()
    code = proc.stop(signal.SIGINT, grace=0.5)
    assert code == -signal.SIGKILL
    assert time.monotonic() - began < 5
    deadline = time.monotonic() + 3
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(child)


def test_exit_status_and_output(tmp_path: Path) -> None:
    proc = ServerProcess(
        [sys.executable, "-c", "import sys; print('hello'); sys.exit(3)"], tmp_path / "log"
    )
    assert proc.wait(5) == 3
    assert not proc.alive()
    assert "hello" in proc.log_tail()
    proc.stop()


def test_readiness_gives_up_when_the_process_dies(tmp_path: Path) -> None:
    proc = ServerProcess([sys.executable, "-c", "pass"], tmp_path / "log")
    began = time.monotonic()
    assert not wait_accepting(Endpoint(port=free_port()), 10.0, proc.alive)
    assert time.monotonic() - began < 5
    proc.stop()


def test_readiness_times_out() -> None:
    began = time.monotonic()
    assert not wait_accepting(Endpoint(port=free_port()), 0.3)
    assert time.monotonic() - began < 2


def test_free_ports_stay_out_of_the_ephemeral_range() -> None:
    from compat.harness.endpoint import ephemeral_range

    low, high = ephemeral_range()
    ports = {free_port() for _ in range(20)}
    assert all(p < low or p > high for p in ports)
