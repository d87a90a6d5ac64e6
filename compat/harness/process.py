"""One server process: started in its own session, output to a file, stopped by PID.

The process gets a new session (so its process group id is its pid); stopping sends the
graceful signal to the main process, then SIGKILL to the whole group, so workers a server
forked (granian, hypercorn ``-w``) never outlive a run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class ServerProcess:
    """A started server; ``log_path`` holds its merged stdout and stderr."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # closed in stop()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
            )
        except OSError:
            self._log.close()
            raise
        self.started_at = time.monotonic()
        self.exited_at: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the main process is still running."""
        return self.returncode is None

    @property
    def returncode(self) -> int | None:
        code = self.proc.poll()
        if code is not None and self.exited_at is None:
            self.exited_at = time.monotonic()
        return code

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the main process to exit; its status or None."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the main process (not the group: that is what a terminal's
        Ctrl+C would hit, but a server's own workers must be stopped by the server)."""
        if self.alive():
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig: int = signal.SIGINT, grace: float = 8.0) -> int | None:
        """Stop gracefully with ``sig``; after ``grace`` seconds kill the whole group."""
        self.send_signal(sig)
        code = self.wait(grace)
        self.kill_group()
        if code is None:
            code = self.wait(5.0)
        self._log.close()
        return code

    def kill_group(self) -> None:
        """SIGKILL every process left in the server's process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log_size(self) -> int:
        """Bytes of output so far (an offset for ``log_text``)."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, offset: int = 0) -> str:
        """The output from ``offset`` on."""
        try:
            with open(self.log_path, "rb") as file:
                file.seek(offset)
                return file.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of output, for crash reports."""
        return "\n".join(self.log_text().splitlines()[-lines:])
