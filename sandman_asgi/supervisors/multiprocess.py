"""``--workers N``: a parent that binds once and keeps N server processes healthy.

The parent never serves a request. It spawns the workers, pings each one over a pipe
every half second, replaces any that died or stopped answering within
``--timeout-worker-healthcheck`` seconds, and reacts to signals:

* SIGINT / SIGTERM: SIGTERM every worker, wait for their graceful shutdown, exit 0;
* SIGHUP: rolling restart, one worker at a time, each replacement serving before the old
  one is retired (an unready replacement aborts the roll and keeps the old workers);
* SIGTTIN / SIGTTOU: one worker more / fewer (never fewer than one);
* SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH: ignored (so a stray one does not kill the parent).

A worker that exits with status 3 failed to start (bad app, lifespan startup failure):
respawning it would fail the same way forever, so the parent stops, and exits with 3.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import sys
import time
from collections import deque
from multiprocessing import Pipe
from types import FrameType

import click

from sandman_asgi.config import STARTUP_FAILURE, Config
from sandman_asgi.metrics import WORKER_SLOTS, MetricsEndpoint, SharedMetrics
from sandman_asgi.supervisors.spawn import Target, spawn_process
from sandman_asgi.supervisors.stopflag import StopFlag

logger = logging.getLogger("uvicorn.error")

SIGNAL_NAMES: dict[int, str] = {
    getattr(signal, f"SIG{name}"): name
    for name in ("INT", "TERM", "HUP", "QUIT", "TTIN", "TTOU", "USR1", "USR2", "WINCH")
    if hasattr(signal, f"SIG{name}")
}
TICK = 0.5
"""Seconds between health checks: a dead worker is replaced within about one tick."""


def _log_pid(template: str, pid: int | None) -> None:
    # The pid is cyan (and bold) when colours are on, as in uvicorn's lines.
    logger.info(
        template.format(pid),
        extra={"color_message": template.format(click.style(str(pid), fg="cyan", bold=True))},
    )


class Worker:
    """One worker process and the parent's end of its health-check pipe."""

    def __init__(
        self,
        config: Config,
        target: Target,
        sockets: list[socket.socket],
        metrics: SharedMetrics | None = None,
    ) -> None:
        self._conn, child_conn = Pipe()
        self._child_conn = child_conn
        self._metrics = metrics
        self.process = spawn_process(config, target, sockets, health=child_conn, metrics=metrics)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def start(self) -> None:
        self.process.start()
        # The child has its own copy now; dropping ours lets the child see EOF if we die.
        self._child_conn.close()

    def _ask(self, timeout: float) -> bool | None:
        """Ping; the worker's ``started`` flag, or None if it did not answer in time."""
        try:
            self._conn.send(b"ping")
            if self._conn.poll(timeout):
                return bool(self._conn.recv())
        except (OSError, EOFError, pickle.UnpicklingError):
            pass
        return None

    def is_alive(self, timeout: float) -> bool:
        """Running and answering pings within ``timeout`` seconds."""
        return self.process.is_alive() and self._ask(timeout) is not None

    def wait_until_ready(self, timeout: float, stop: StopFlag) -> bool:
        """Wait until the worker's server is serving; False on exit, stop, or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop.is_set():
            if not self.process.is_alive():
                return False
            if self._ask(min(1.0, max(0.0, deadline - time.monotonic()))) is True:
                return True
            stop.wait(0.1)
        return False

    def terminate(self) -> None:
        """Ask the worker to shut down gracefully (SIGTERM)."""
        if self.process.exitcode is None and self.pid is not None:
            os.kill(self.pid, signal.SIGTERM)
            _log_pid("Terminated child process [{}]", self.pid)

    def kill(self) -> None:
        """SIGKILL: for a worker that stopped answering."""
        self.process.kill()

    def join(self) -> None:
        _log_pid("Waiting for child process [{}]", self.pid)
        self.process.join()
        self._conn.close()
        if self._metrics is not None and self.pid is not None:
            # Gone: its counts stay in the group's totals, its slot is free again.
            self._metrics.group.release(self.pid)


class Multiprocess:
    """The ``--workers`` supervisor: ``Multiprocess(config, sockets=[sock]).run()``.

    ``target`` defaults to ``Server(config).run``; pass another callable taking
    ``sockets=`` to run something else in each worker.
    """

    def __init__(
        self,
        config: Config,
        sockets: list[socket.socket],
        target: Target | None = None,
    ) -> None:
        if target is None:
            from sandman_asgi.server import Server

            target = Server(config=config).run
        self.config = config
        self.sockets = sockets
        self.target = target
        self.processes_num = config.workers
        self.processes: list[Worker] = []
        self.should_exit = StopFlag()
        self.startup_failed = False
        self._signals: deque[int] = deque()
        self._previous_handlers: dict[int, object] = {}
        # --metrics-port: the group's segment and the listener this process serves it on.
        self.metrics: SharedMetrics | None = None
        self._metrics_endpoint: MetricsEndpoint | None = None

    # -- signals ------------------------------------------------------------------------

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        # Runs between bytecodes of the main thread: queue it, handle it in the loop.
        self._signals.append(sig)
        self.should_exit.poke()

    def _install_signal_handlers(self) -> None:
        for sig in SIGNAL_NAMES:
            self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _exit_requested(self) -> bool:
        return self.should_exit.is_set() or any(
            sig in (signal.SIGINT, signal.SIGTERM) for sig in self._signals
        )

    def handle_signals(self) -> None:
        """Act on every queued signal, oldest first."""
        while self._signals:
            sig = self._signals.popleft()
            handler = getattr(self, f"handle_{SIGNAL_NAMES[sig].lower()}", None)
            if handler is not None:
                handler()
            else:
                logger.debug("Received signal %s, ignoring it.", SIGNAL_NAMES[sig])

    def handle_int(self) -> None:
        logger.info("Received SIGINT, exiting.")
        self._draining()
        self.should_exit.set()

    def handle_term(self) -> None:
        logger.info("Received SIGTERM, exiting.")
        self._draining()
        self.should_exit.set()

    def _draining(self) -> None:
        # /readyz fails from now on, before any worker has even been told.
        if self.metrics is not None:
            self.metrics.group.set_group_draining()

    def handle_hup(self) -> None:
        logger.info("Received SIGHUP, restarting processes.")
        self.restart_all()

    def handle_ttin(self) -> None:
        logger.info("Received SIGTTIN, increasing the number of processes.")
        self.processes_num += 1
        self.processes.append(self._start_worker())

    def handle_ttou(self) -> None:
        logger.info("Received SIGTTOU, decreasing number of processes.")
        if self.processes_num <= 1:
            logger.info(
                "Already reached one process, cannot decrease the number of processes anymore."
            )
            return
        self.processes_num -= 1
        worker = self.processes.pop()
        worker.terminate()
        worker.join()

    # -- workers ------------------------------------------------------------------------

    def _start_worker(self) -> Worker:
        worker = Worker(self.config, self.target, self.sockets, self.metrics)
        worker.start()
        return worker

    def _count_restart(self) -> None:
        if self.metrics is not None:
            self.metrics.group.worker_restarted()

    def keep_subprocess_alive(self) -> None:
        """Replace every worker that died or missed its health check."""
        timeout = self.config.timeout_worker_healthcheck
        for index, worker in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            if worker.is_alive(timeout=timeout):
                continue
            worker.kill()  # no-op if it is already dead; ends it if it is wedged
            worker.join()
            if worker.exitcode == STARTUP_FAILURE:
                logger.error(
                    "Child process [%s] failed to start, stopping the parent process.", worker.pid
                )
                self.startup_failed = True
                self.should_exit.set()
                return
            logger.info("Child process [%s] died", worker.pid)
            self.processes[index] = self._start_worker()
            self._count_restart()

    def restart_all(self) -> None:
        """SIGHUP: replace the workers one by one, never dropping below the worker count."""
        for index, old in enumerate(list(self.processes)):
            if self._exit_requested():
                return
            new = self._start_worker()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self._exit_requested():
                    logger.error(
                        "New child process [%s] was not ready in time; keeping worker [%s] "
                        "and aborting the restart.",
                        new.pid,
                        old.pid,
                    )
                return
            old.terminate()
            old.join()
            self.processes[index] = new
            self._count_restart()

    # -- lifecycle ----------------------------------------------------------------------

    def _start_metrics(self) -> None:
        """``--metrics-port``: one segment for the group and the listener on it, here in the
        parent, so a scrape shows every worker and a probe never waits on one."""
        if self.config.metrics_port is None:
            return
        self.metrics = SharedMetrics.create(WORKER_SLOTS)
        try:
            self._metrics_endpoint = MetricsEndpoint(self.config, self.metrics)
        except OSError as exc:
            logger.error("%s", exc)
            self.startup_failed = True
            self.should_exit.set()

    def run(self) -> None:
        """Supervise until SIGINT/SIGTERM (or a worker fails to start: exit status 3)."""
        self._install_signal_handlers()
        try:
            _log_pid("Started parent process [{}]", os.getpid())
            self._start_metrics()
            for _ in range(self.processes_num if not self.startup_failed else 0):
                self.processes.append(self._start_worker())
            while not self.should_exit.wait(TICK):
                self.handle_signals()
                self.keep_subprocess_alive()
            for worker in self.processes:
                worker.terminate()
            for worker in self.processes:
                worker.join()
            _log_pid("Stopping parent process [{}]", os.getpid())
        finally:
            self._restore_signal_handlers()
            self.should_exit.close()
            if self._metrics_endpoint is not None:
                self._metrics_endpoint.close()
        if self.startup_failed:
            sys.exit(STARTUP_FAILURE)
