"""``serve(app)``: a real Sandman server for tests, in the test's own process.

``with serve(app) as server`` runs ``sandman_asgi.Server`` on a thread with its own event
loop; ``async with serve(app) as server`` runs it as a task on the running asyncio loop.
Either way the block starts once lifespan startup is complete and the socket accepts, and
the server is stopped (lifespan shutdown included) when the block ends, failing or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from sandman_asgi.config import Config
from sandman_asgi.server import Server

# Options that make no sense for one in-process server.
_REFUSED = ("uds", "fd", "reload", "workers")

# Sandman's defaults, changed for tests: a free port, no logging set-up (records still go
# to the "uvicorn.*" loggers, so pytest's caplog sees them), and a bounded shutdown so a
# connection a test left open cannot hang the teardown.
TEST_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 0,
    "log_config": None,
    "timeout_graceful_shutdown": 5,
}


class ServerStartupError(RuntimeError):
    """The server stopped before it accepted connections (app import, lifespan startup or
    bind failure); the server's own log records say why."""


class _StartupErrors(logging.Handler):
    """Collects the server's ERROR records while it starts, to put them in the exception."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []
        self._logger = logging.getLogger("uvicorn.error")
        self._logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def close(self) -> None:
        self._logger.removeHandler(self)
        super().close()


class _InProcessServer(Server):
    # The test runner owns SIGINT/SIGTERM: Ctrl-C must stop the test session, not just
    # this server (Server only installs handlers on the main thread, i.e. the async form).
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LiveServer:
    """A Sandman server for one test. Use it as ``with`` or ``async with`` block (or call
    ``start()`` / ``stop()``); read ``url``, ``ws_url``, ``host`` and ``port`` inside."""

    def __init__(
        self, app: Any, *, startup_timeout: float = 30.0, stop_timeout: float = 30.0, **options: Any
    ) -> None:
        for name in _REFUSED:
            if options.get(name):
                raise ValueError(f"serve() runs one in-process server: {name}= is not supported")
        self.app = app
        self.options = {**TEST_DEFAULTS, **options}
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.server: Server | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._exit_status: Any = None
        self._error: BaseException | None = None
        self._startup_errors: _StartupErrors | None = None
        self._port: int | None = None

    # -- where it is ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server is bound to (the free one picked for ``port=0``); still
        readable after the server stopped."""
        if self._port is None:
            raise RuntimeError("the server has not started")
        return self._port

    def _started(self) -> LiveServer:
        # Read while the listening socket is open (it is closed at shutdown).
        assert self.server is not None
        self._port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def host(self) -> str:
        """The address to connect to (loopback when bound to every interface)."""
        host = self.options["host"]
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https`` with ``ssl_certfile``), no trailing slash."""
        scheme = "https" if self.options.get("ssl_certfile") else "http"
        return f"{scheme}://{self._authority}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT`` (``wss`` with ``ssl_certfile``), no trailing slash."""
        scheme = "wss" if self.options.get("ssl_certfile") else "ws"
        return f"{scheme}://{self._authority}"

    @property
    def _authority(self) -> str:
        host = self.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    # -- thread form ------------------------------------------------------------------------

    def start(self) -> LiveServer:
        """Start the server on a background thread; return once it accepts connections."""
        if self.server is not None:
            raise RuntimeError("this server was already started")
        self._startup_errors = _StartupErrors()
        try:
            self.server = _InProcessServer(Config(self.app, **self.options))
            self._thread = threading.Thread(
                target=self._run_on_thread, name="sandman-testing", daemon=True
            )
            self._thread.start()
            deadline = time.monotonic() + self.startup_timeout
            while not self.server.started:
                if not self._thread.is_alive():
                    raise self._startup_error()
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerStartupError(f"not accepting after {self.startup_timeout:.0f} s")
                time.sleep(0.005)
        finally:
            self._startup_errors.close()
        return self._started()

    def _run_on_thread(self) -> None:
        assert self.server is not None
        try:
            self.server.run()
        except SystemExit as exc:  # startup failures exit with status 3, as on the CLI
            self._exit_status = exc.code
        except BaseException as exc:  # reported to the test by start()/stop()
            self._error = exc

    def stop(self) -> None:
        """Stop gracefully (lifespan shutdown included); force after ``stop_timeout``."""
        server, thread = self.server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(self.stop_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
            if thread.is_alive():
                raise RuntimeError("the server thread did not stop")
        self._raise_run_error()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- asyncio form -----------------------------------------------------------------------

    async def __aenter__(self) -> LiveServer:
        """Start the server on the running asyncio loop; return once it accepts."""
        if self.server is not None:
            raise RuntimeError("this server was already started")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "async with serve() needs an asyncio loop; under another async library use "
                "the thread form, with serve(...)"
            ) from None
        self._startup_errors = _StartupErrors()
        try:
            self.server = _InProcessServer(Config(self.app, **self.options))
            self._task = loop.create_task(self._serve_as_task())
            deadline = loop.time() + self.startup_timeout
            while not self.server.started:
                if self._task.done():
                    raise self._startup_error()
                if loop.time() > deadline:
                    await self._stop_task()
                    raise ServerStartupError(f"not accepting after {self.startup_timeout:.0f} s")
                await asyncio.sleep(0.005)
        finally:
            self._startup_errors.close()
        return self._started()

    async def _serve_as_task(self) -> None:
        assert self.server is not None
        try:
            await self.server.serve()
        except SystemExit as exc:  # must not escape the task: it would stop the test's loop
            self._exit_status = exc.code

    async def _stop_task(self) -> None:
        server, task = self.server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=self.stop_timeout)
        if not done:
            server.force_exit = True
            done, _ = await asyncio.wait({task}, timeout=5)
            if not done:
                task.cancel()
                raise RuntimeError("the server task did not stop")
        if not task.cancelled() and task.exception() is not None:
            self._error = task.exception()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop_task()
        self._raise_run_error()

    # -- failures ---------------------------------------------------------------------------

    def _startup_error(self) -> BaseException:
        if self._error is not None:
            return self._error
        status = f" (exit status {self._exit_status})" if self._exit_status is not None else ""
        logged = self._startup_errors.messages if self._startup_errors else []
        why = "; ".join(logged) or "see the 'uvicorn.error' log records"
        return ServerStartupError(f"the server stopped before accepting connections{status}: {why}")

    def _raise_run_error(self) -> None:
        # An exit status at shutdown means lifespan shutdown failed; say so to the test.
        if self._error is not None:
            raise self._error
        if self._exit_status not in (None, 0):
            raise RuntimeError(f"the server exited with status {self._exit_status}")


def serve(app: Any, **options: Any) -> LiveServer:
    """A Sandman server for ``app`` (an ASGI app or an import string) on a free port of
    127.0.0.1, with lifespan. ``options`` are ``sandman_asgi.Config``'s keywords, plus
    ``startup_timeout`` and ``stop_timeout`` in seconds. Use it as a context manager::

        with serve(app) as server:              # in any test (own thread and loop)
            httpx.get(server.url + "/")

        async with serve(app) as server:        # on the test's asyncio loop
            ...
    """
    return LiveServer(app, **options)
