"""``--metrics-port``: Prometheus metrics (``/metrics``) and health checks (``/livez``,
``/readyz``) on a listener of their own, served by the Rust core on its own thread.

Every server process records into a slot of one shared memory segment (a ``memfd``); the
process that owns the port (the server itself, or the ``--workers`` supervisor) reads them
all, so one scrape shows the whole process group and never waits on a worker. A supervisor
hands the segment to each worker it spawns as an inherited descriptor, the way the
listening sockets travel (see ``SharedMetrics.__reduce__``). See docs/metrics.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from multiprocessing import reduction
from typing import TYPE_CHECKING, Any

from sandman_asgi._core import MetricsGroup, start_metrics_listener

if TYPE_CHECKING:
    from sandman_asgi.config import Config

logger = logging.getLogger("uvicorn.error")

WORKER_SLOTS = 256
"""Server processes a supervisor's segment can hold at once (rolling restarts and SIGTTIN
included); a worker that finds no free slot serves without metrics and says so."""

HEARTBEAT = 0.1
"""Seconds between the event loop's heartbeats (what ``/livez`` reads)."""


class SharedMetrics:
    """A group's metrics segment, picklable into a spawned worker."""

    def __init__(self, group: MetricsGroup) -> None:
        self.group = group

    @classmethod
    def create(cls, slots: int) -> SharedMetrics:
        return cls(MetricsGroup.create(slots + 1))

    def __reduce__(self) -> tuple[Any, ...]:
        # While a spawned child is being prepared, DupFd adds the descriptor to those the
        # child inherits (multiprocessing pickles sockets the same way).
        return (_attach, (reduction.DupFd(self.group.fd),))


def _attach(dup: Any) -> SharedMetrics:
    fd = dup.detach()
    try:
        return SharedMetrics(MetricsGroup.attach(fd))
    finally:
        os.close(fd)


class MetricsEndpoint:
    """The listener on ``--metrics-host``:``--metrics-port``."""

    def __init__(self, config: Config, metrics: SharedMetrics) -> None:
        host = config.metrics_host or config.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, config.metrics_port))
            sock.listen(128)
            self.port: int = sock.getsockname()[1]
            self._listener = start_metrics_listener(
                sock.fileno(), metrics.group, float(config.health_loop_timeout)
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot serve metrics on {host}:{config.metrics_port}: {exc.strerror or exc}",
            ) from None
        finally:
            sock.close()  # the listener keeps a duplicate
        shown = f"[{host}]" if ":" in host else host
        logger.info("Metrics and health checks on http://%s:%d/metrics", shown, self.port)

    def close(self) -> None:
        self._listener.close()


class ProcessMetrics:
    """One server process's side: its slot, its heartbeat, its readiness."""

    def __init__(self, metrics: SharedMetrics) -> None:
        self.metrics = metrics
        self.slot: int | None = metrics.group.claim(os.getpid())
        self._heartbeat: asyncio.TimerHandle | None = None
        if self.slot is None:
            logger.warning("No free metrics slot: this process's requests are not counted.")

    def core_setting(self) -> tuple[MetricsGroup, int] | None:
        """What the core records into (``CoreSettings.metrics``)."""
        return None if self.slot is None else (self.metrics.group, self.slot)

    def start_heartbeat(self) -> None:
        """Stamp the slot now and every ``HEARTBEAT`` seconds while the loop turns."""
        if self.slot is None:
            return
        self.metrics.group.beat(self.slot)
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.call_later(HEARTBEAT, self.start_heartbeat)

    def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    def ready(self) -> None:
        if self.slot is not None:
            self.metrics.group.set_ready(self.slot)

    def draining(self) -> None:
        if self.slot is not None:
            self.metrics.group.set_draining(self.slot)
