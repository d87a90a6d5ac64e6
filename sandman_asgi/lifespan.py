"""The ASGI lifespan protocol (asgiref's lifespan.rst) with uvicorn's ``auto|on|off`` modes."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandman_asgi.config import Config

LIFESPAN_SPEC_VERSION = "2.0"

_SEND_TYPES = (
    "lifespan.startup.complete",
    "lifespan.startup.failed",
    "lifespan.shutdown.complete",
    "lifespan.shutdown.failed",
)


class LifespanOff:
    """``--lifespan off``: the app is never called with a lifespan scope."""

    should_exit = False

    def __init__(self, config: Config) -> None:
        self.state: dict[str, Any] = {}

    async def startup(self) -> None:
        """Nothing to start."""

    async def shutdown(self) -> None:
        """Nothing to stop."""


class LifespanOn:
    """Runs the app once with a lifespan scope on the serving loop.

    Startup waits for ``lifespan.startup.complete`` before the server accepts anything.
    ``startup.failed`` (any mode) or an exception under ``--lifespan on`` sets
    ``should_exit`` so the server exits with status 3. Under ``auto`` an exception means the
    app does not speak lifespan: logged at INFO, no further lifespan events are sent.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.logger = logging.getLogger("uvicorn.error")
        self.state: dict[str, Any] = {}
        self._queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.error_occurred = False
        self.startup_failed = False
        self.shutdown_failed = False
        self.should_exit = False

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the app's answer."""
        self.logger.info("Waiting for application startup.")
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._queue.put({"type": "lifespan.startup"})
        await self._started.wait()
        if self.startup_failed or (self.error_occurred and self.config.lifespan == "on"):
            self.logger.error("Application startup failed. Exiting.")
            self.should_exit = True
        else:
            self.logger.info("Application startup complete.")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait, unless the app never spoke lifespan."""
        if self.error_occurred or self._task is None:
            return
        self.logger.info("Waiting for application shutdown.")
        await self._queue.put({"type": "lifespan.shutdown"})
        await self._stopped.wait()
        if self.shutdown_failed or (self.error_occurred and self.config.lifespan == "on"):
            self.logger.error("Application shutdown failed. Exiting.")
            self.should_exit = True
        else:
            self.logger.info("Application shutdown complete.")

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": self.config.asgi_version, "spec_version": LIFESPAN_SPEC_VERSION},
            "state": self.state,
        }
        try:
            await self.config.loaded_app(scope, self._receive, self._send)
        except BaseException as exc:
            self.error_occurred = True
            if not (self.startup_failed or self.shutdown_failed):
                if self.config.lifespan == "auto":
                    self.logger.info("ASGI 'lifespan' protocol appears unsupported.")
                else:
                    self.logger.error("Exception in 'lifespan' protocol\n", exc_info=exc)
        finally:
            # An app that returns without answering (or raised) must not hang the server.
            self._started.set()
            self._stopped.set()

    async def _receive(self) -> dict[str, str]:
        return await self._queue.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in _SEND_TYPES:
            raise RuntimeError(f"Unexpected ASGI lifespan message {kind!r}.")
        if kind.startswith("lifespan.startup."):
            if self._started.is_set():
                raise RuntimeError(f"Unexpected {kind!r}: startup already finished.")
            self.startup_failed = kind.endswith(".failed")
            self._started.set()
        else:
            if not self._started.is_set() or self._stopped.is_set():
                raise RuntimeError(f"Unexpected {kind!r} outside shutdown.")
            self.shutdown_failed = kind.endswith(".failed")
            self._stopped.set()
        if kind.endswith(".failed") and message.get("message"):
            self.logger.error(message["message"])
