"""``Server``: runs one Sandman server process on an asyncio loop, as ``uvicorn.Server`` does.

Lifecycle: lifespan startup -> listen -> tick every 0.1 s until told to exit -> stop
accepting, close idle connections, let in-flight requests finish (bounded by
``timeout_graceful_shutdown``) -> lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Generator
from types import FrameType
from typing import Any

import click

from sandman_asgi._core import CoreServer, check_tls, start_server
from sandman_asgi.access_log import AccessLog
from sandman_asgi.config import HTTP1_ONLY, STARTUP_FAILURE, Config
from sandman_asgi.core_settings import CoreSettings, TlsSettings
from sandman_asgi.cycle import run_http, run_websocket
from sandman_asgi.eager_task import app_coroutine, request_task_hooks
from sandman_asgi.lifespan import LifespanOff, LifespanOn
from sandman_asgi.metrics import MetricsEndpoint, ProcessMetrics, SharedMetrics
from sandman_asgi.sockets import BindError, bind_socket, log_running

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)

MALLOC_TUNING_ENV = "SANDMAN_MALLOC_TUNING"
"""``1``: the core tunes glibc's malloc for the whole process (see docs/differences.md).
The ``sandman`` command sets it unless it is already set; embedded servers (``run()``,
``Server``, the gunicorn worker) leave malloc alone unless it is ``1``."""

logger = logging.getLogger("uvicorn.error")
access_logger = logging.getLogger("uvicorn.access")


_APP_RUNNERS = frozenset({run_http.__code__, run_websocket.__code__})


class ServerState:
    """State shared with request handling: counters, running tasks, default headers."""

    def __init__(self) -> None:
        self.total_requests = 0
        self.connections: set[Any] = set()
        self.default_headers: list[tuple[bytes, bytes]] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        """The request and WebSocket tasks still running (as uvicorn's ``tasks``).

        Computed when asked instead of maintained per request: the Rust core holds each
        running task strongly, so the hot path pays for no set and no done-callback.
        """
        if self.loop is None:
            return set()
        running = asyncio.all_tasks(self.loop)  # safe from other threads too
        return {
            t
            for t in running
            if getattr(app_coroutine(t.get_coro()), "cr_code", None) in _APP_RUNNERS
        }


class Listeners:
    """What ``Server.servers`` holds: the listening sockets (``.sockets``), like asyncio's
    ``Server`` objects that uvicorn keeps there. Use it to find the port when ``port=0``."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.sockets = sockets

    def close(self) -> None:
        """Close the listening sockets so the kernel refuses new connections."""
        for sock in self.sockets:
            sock.close()


class Server:
    """One server process. ``Server(config).run()`` blocks until the server stops."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server_state = ServerState()
        self.started = False
        self.should_exit = False
        self.force_exit = False
        self.last_notified = 0.0
        self.servers: list[Listeners] = []
        self.lifespan: LifespanOn | LifespanOff | None = None
        self.core: CoreServer | None = None
        self._access_log: AccessLog | None = None
        self._captured_signals: list[int] = []
        self._own_sockets: list[socket.socket] = []
        # --metrics-port: the group's segment (a supervisor sets it for its workers; a lone
        # server makes its own), this process's slot, and the listener if this serves it.
        self.metrics: SharedMetrics | None = None
        self._process_metrics: ProcessMetrics | None = None
        self._metrics_endpoint: MetricsEndpoint | None = None

    # -- running -----------------------------------------------------------------------

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Run ``serve()`` on a fresh event loop (uvloop when available)."""
        loop_factory = self.config.get_loop_factory()
        if sys.version_info >= (3, 12):
            asyncio.run(self.serve(sockets=sockets), loop_factory=loop_factory)
        elif sys.version_info >= (3, 11):
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(self.serve(sockets=sockets))
        else:  # 3.10: no asyncio.Runner, so asyncio.run's steps on a loop of our choosing
            loop = (loop_factory or asyncio.new_event_loop)()
            try:
                asyncio.set_event_loop(loop)
                loop.run_until_complete(self.serve(sockets=sockets))
            finally:
                try:
                    _cancel_remaining_tasks(loop)
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
                finally:
                    asyncio.set_event_loop(None)
                    loop.close()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Run the server in the current event loop until it is told to stop."""
        with self.capture_signals():
            await self._serve(sockets)

    async def _serve(self, sockets: list[socket.socket] | None = None) -> None:
        process_id = os.getpid()
        config = self.config
        if not config.loaded:
            config.load()
        self.lifespan = LifespanOn(config) if config.lifespan != "off" else LifespanOff(config)

        message = "Started server process [%d]"
        color_message = "Started server process [" + click.style("%d", fg="cyan") + "]"
        logger.info(message, process_id, extra={"color_message": color_message})

        self._start_metrics()
        try:
            await self.startup(sockets=sockets)
            if not self.should_exit:
                await self.main_loop()
            # A stop requested during startup (a signal while lifespan startup ran) still
            # gets a full shutdown, lifespan shutdown included, once the server did start.
            if not self.started:
                return
            await self.shutdown(sockets=sockets)
        finally:
            self._stop_metrics()

        message = "Finished server process [%d]"
        color_message = "Finished server process [" + click.style("%d", fg="cyan") + "]"
        logger.info(message, process_id, extra={"color_message": color_message})

    def _start_metrics(self) -> None:
        """``--metrics-port``: claim this process's slot (serving the port unless a
        supervisor does) and start the event loop's heartbeat. Exits 3 if the port cannot
        be bound."""
        if self.config.metrics_port is None:
            return
        if self.metrics is None:
            self.metrics = SharedMetrics.create(1)
            try:
                self._metrics_endpoint = MetricsEndpoint(self.config, self.metrics)
            except OSError as exc:
                logger.error("%s", exc)
                sys.exit(STARTUP_FAILURE)
        self._process_metrics = ProcessMetrics(self.metrics)
        self._process_metrics.start_heartbeat()

    def _stop_metrics(self) -> None:
        if self._process_metrics is not None:
            self._process_metrics.stop_heartbeat()
        if self._metrics_endpoint is not None:
            self._metrics_endpoint.close()
            self._metrics_endpoint = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Lifespan startup, then start the core and listen. Exits with status 3 if any of
        them fails; a TLS setting that cannot work fails before the app's startup runs."""
        assert self.lifespan is not None
        config = self.config
        try:
            tls = _tls_settings(config)
            if tls is not None:
                check_tls(tls)
        except ValueError as exc:
            logger.error("%s", exc)
            sys.exit(STARTUP_FAILURE)

        await self.lifespan.startup()
        if self.lifespan.should_exit:
            self.should_exit = True
            return

        # After the app's startup: a task factory it installs decides how requests start.
        loop = asyncio.get_running_loop()
        access_on = config.access_log and access_logger.hasHandlers()
        self.server_state.loop = loop
        # Lines of one loop turn are written together at the start of the next.
        self._access_log = AccessLog(access_logger, loop.call_soon) if access_on else None
        try:
            self.core = start_server(self._core_settings(config, loop, tls))
        except ValueError as exc:
            logger.error("%s", exc)
            await self.lifespan.shutdown()
            sys.exit(STARTUP_FAILURE)
        loop.add_reader(self.core.wake_fd, self.core.drain)
        await self._listen(config, sockets)
        if self._process_metrics is not None and not self.should_exit:
            self._process_metrics.ready()

    def _core_settings(
        self, config: Config, loop: asyncio.AbstractEventLoop, tls: TlsSettings | None
    ) -> CoreSettings:
        assert self.lifespan is not None
        task_kwargs = _task_kwargs(loop)
        return CoreSettings(
            event_loop=loop,
            on_request=functools.partial(run_http, config.loaded_app),
            on_websocket=(
                functools.partial(run_websocket, config.loaded_app) if config.ws != "none" else None
            ),
            on_log=_on_core_log,
            access_log=self._access_log.write if self._access_log is not None else None,
            ws_log=_log_websocket,
            create_future=loop.create_future,
            call_soon=loop.call_soon,
            create_task=asyncio.Task if task_kwargs is not None else loop.create_task,
            task_kwargs=task_kwargs,
            fresh_context=config.reset_contextvars,
            request_task=request_task_hooks(loop),
            state=self.lifespan.state,
            root_path=config.root_path,
            asgi_version=config.asgi_version,
            server_header=config.server_header,
            date_header=config.date_header,
            headers=config.encoded_headers,
            limit_concurrency=config.limit_concurrency,
            timeout_keep_alive=float(config.timeout_keep_alive),
            header_read_timeout=float(config.header_read_timeout),
            max_head_bytes=config.h11_max_incomplete_event_size or 64 * 1024,
            max_target=config.limit_request_line,
            max_headers=config.limit_request_fields,
            max_body=config.limit_request_body,
            body_read_timeout=config.timeout_request_body or None,
            body_min_rate=config.limit_request_body_rate or None,
            body_rate_grace=float(config.limit_request_body_rate_grace),
            max_connections=config.limit_connections,
            io_threads=config.io_threads,
            ws_max_size=config.ws_max_size,
            ws_max_queue=config.ws_max_queue,
            ws_ping_interval=config.ws_ping_interval,
            ws_ping_timeout=config.ws_ping_timeout,
            ws_per_message_deflate=config.ws_per_message_deflate,
            ws_deflate_window_bits=config.ws_deflate_window_bits,
            ws_deflate_context_takeover=config.ws_deflate_context_takeover,
            forwarded_allow_ips=config.forwarded_allow_ips if config.proxy_headers else None,
            http2=config.http not in HTTP1_ONLY,
            h2_max_concurrent_streams=config.h2_max_concurrent_streams,
            tls=tls,
            tune_malloc=os.environ.get(MALLOC_TUNING_ENV) == "1",
            static_mounts=config.static_mounts,
            cache_bytes=config.cache_bytes,
            metrics=(
                self._process_metrics.core_setting() if self._process_metrics is not None else None
            ),
        )

    async def _listen(self, config: Config, sockets: list[socket.socket] | None) -> None:
        assert self.core is not None and self.lifespan is not None
        loop = asyncio.get_running_loop()
        if sockets is not None:
            listening = list(sockets)
        else:
            try:
                sock = bind_socket(config)
            except (BindError, OSError) as exc:
                logger.error("%s", exc)
                await self.lifespan.shutdown()
                self._close_core(loop)
                sys.exit(STARTUP_FAILURE)
            listening = [sock]
            self._own_sockets = [sock]
        for sock in listening:
            self.core.listen(sock.fileno())
        self.servers = [Listeners(listening)]
        if sockets is None:
            log_running(config, listening[0])
        self.started = True

    async def main_loop(self) -> None:
        """Tick every 0.1 s until ``on_tick`` says stop."""
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.1)
            should_exit = await self.on_tick(counter)

    @property
    def limit_max_requests(self) -> int | None:
        """``limit_max_requests`` plus a once-per-process random jitter."""
        if not hasattr(self, "_limit_max_requests"):
            limit = self.config.limit_max_requests
            if limit is not None and self.config.limit_max_requests_jitter > 0:
                limit += random.randint(0, self.config.limit_max_requests_jitter)
            self._limit_max_requests = limit
        return self._limit_max_requests

    async def on_tick(self, counter: int) -> bool:
        """Once a tick: refresh counters, notify, and decide whether to stop."""
        if self.core is not None:
            self.server_state.total_requests = self.core.total_requests
        if counter % 10 == 0:
            current_time = time.time()
            if self.config.callback_notify is not None:
                if current_time - self.last_notified > self.config.timeout_notify:
                    self.last_notified = current_time
                    await self.config.callback_notify()
        if self.should_exit:
            return True
        max_requests = self.limit_max_requests
        if max_requests is not None and self.server_state.total_requests >= max_requests:
            logger.info("Maximum request limit of %d exceeded. Terminating process.", max_requests)
            return True
        return False

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Graceful stop: refuse new connections, drain, then lifespan shutdown."""
        logger.info("Shutting down")
        if self._process_metrics is not None:
            self._process_metrics.draining()
        loop = asyncio.get_running_loop()
        if self.core is not None:
            self.core.shutdown()
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()

        try:
            await asyncio.wait_for(
                self._wait_tasks_to_complete(), timeout=self.config.timeout_graceful_shutdown
            )
        except asyncio.TimeoutError:
            logger.error(
                "Cancel %s running task(s), timeout graceful shutdown exceeded",
                len(self.server_state.tasks),
            )
            running = self.server_state.tasks
            for task in running:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
            if running:
                await asyncio.wait(running, timeout=1.0)

        self._close_core(loop)
        if not self.force_exit and self.lifespan is not None:
            await self.lifespan.shutdown()

    def _close_core(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.core is None:
            return
        with contextlib.suppress(Exception):
            loop.remove_reader(self.core.wake_fd)
        # Drain to the end so log records from the IO threads are not lost (a drain stops
        # after a time slice and says whether events are left).
        while self.core.drain():
            pass
        self.core.close()
        if self._access_log is not None:
            self._access_log.flush()

    async def _wait_tasks_to_complete(self) -> None:
        assert self.core is not None
        await asyncio.sleep(0.1)
        if self.core.connections and not self.force_exit:
            logger.info("Waiting for connections to close. (CTRL+C to force quit)")
            while self.core.connections and not self.force_exit:
                await asyncio.sleep(0.1)
        if self.server_state.tasks and not self.force_exit:
            logger.info("Waiting for background tasks to complete. (CTRL+C to force quit)")
            while self.server_state.tasks and not self.force_exit:
                await asyncio.sleep(0.1)

    # -- signals -----------------------------------------------------------------------

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Handle SIGINT/SIGTERM while serving; afterwards restore the previous handlers and
        re-deliver the captured signals so the process ends the way the signal intends
        (SIGINT -> exit 0 via KeyboardInterrupt in ``run()``, SIGTERM -> killed by 15)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        for captured in reversed(self._captured_signals):
            signal.raise_signal(captured)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: graceful exit. A second SIGINT: skip the waiting."""
        self._captured_signals.append(sig)
        # Not ready from this moment, before the main loop notices (/readyz).
        if self._process_metrics is not None:
            self._process_metrics.draining()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def _cancel_remaining_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still pending and let them end, as ``asyncio.run`` does before it
    closes its loop: a task left pending (a lifespan the app never finished, say) would
    otherwise be destroyed later, logging into whatever runs then."""
    pending = asyncio.all_tasks(loop)
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during Server.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


def _task_kwargs(loop: asyncio.AbstractEventLoop) -> dict[str, Any] | None:
    """How the core starts each app task: keyword arguments for ``asyncio.Task``, or None
    to call ``loop.create_task`` instead.

    Python 3.12+ starts tasks eagerly: the app runs up to its first real suspension inside
    the drain that received the request, instead of one loop iteration later, and a request
    that never suspends finishes without being scheduled at all. ``asyncio.current_task()``,
    contextvars and cancellation behave as for any task (it is a real ``asyncio.Task``).

    The task is built by calling ``asyncio.Task`` itself: ``loop.create_task`` only adds a
    wrapper call and keyword parsing on uvloop. The loop is always passed: without it the
    Task looks the running loop up, and on 3.11 that lookup makes a ``getpid()`` system
    call (its fork check) on every request. The core passes this one dict on every call, so
    nothing is merged per request as ``functools.partial`` would. A task factory installed
    on the loop (by the app's lifespan, say) is honoured.
    """
    if loop.get_task_factory() is not None:
        return None
    if sys.version_info >= (3, 12):
        return {"loop": loop, "eager_start": True}
    return {"loop": loop}


def _tls_settings(config: Config) -> TlsSettings | None:
    """The ``--ssl-*`` options for the Rust core (rustls), or None without TLS."""
    if config.ssl_context_factory is not None:
        raise ValueError(
            "ssl_context_factory is not supported: Sandman terminates TLS in Rust (rustls) "
            "and cannot use a Python SSLContext; pass ssl_certfile/ssl_keyfile instead"
        )
    if not config.ssl_certfile:
        if config.ssl_keyfile:
            raise ValueError("--ssl-keyfile needs --ssl-certfile")
        return None
    return TlsSettings(
        certfile=os.fspath(config.ssl_certfile),
        keyfile=os.fspath(config.ssl_keyfile) if config.ssl_keyfile else None,
        password=config.ssl_keyfile_password,
        ca_certs=config.ssl_ca_certs,
        cert_reqs=int(config.ssl_cert_reqs),
        version=int(config.ssl_version),
        ciphers=config.ssl_ciphers,
    )


def _log_websocket(client: str, path: str, status: int | None) -> None:
    # WebSocket handshake lines go to uvicorn.error, not the access log (uvicorn §4.3).
    if status is None:
        logger.info('%s - "WebSocket %s" [accepted]', client, path)
    else:
        logger.info('%s - "WebSocket %s" %d', client, path, status)


def _on_core_log(level: int, message: str) -> None:
    logger.log(level, message)
