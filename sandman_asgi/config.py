"""``Config``: every setting of a Sandman server, with uvicorn's names and defaults."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import logging.config
import os
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from configparser import RawConfigParser
from pathlib import Path
from typing import IO, Any, Literal

from sandman_asgi.byte_size import parse_byte_size
from sandman_asgi.importer import ImportFromStringError, app_frames, import_from_string
from sandman_asgi.logging import LOGGING_CONFIG, TRACE_LOG_LEVEL
from sandman_asgi.loops import loop_factory
from sandman_asgi.middleware.asgi2 import ASGI2Middleware
from sandman_asgi.static_mounts import parse_static_mounts

HTTPProtocolType = Literal["auto", "h11", "httptools", "zttp"]
WSProtocolType = Literal["auto", "none", "websockets", "websockets-sansio", "wsproto"]
LifespanType = Literal["auto", "on", "off"]
LoopFactoryType = Literal["none", "auto", "asyncio", "uvloop", "zuvloop"]
InterfaceType = Literal["auto", "asgi3", "asgi2", "wsgi"]

STARTUP_FAILURE = 3
"""Exit status for any failure before the server is up (uvicorn's value)."""


class InvalidSetting(ValueError):
    """A setting read from the environment makes no sense. The ``sandman`` command reports
    it as a usage error (one line, exit 2), as it does a bad flag."""


LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE_LOG_LEVEL,
}
HTTP_PROTOCOLS = ("auto", "h11", "httptools", "zttp")
# uvicorn's HTTP/1.1-only implementations: naming one keeps a listener HTTP/1.1-only.
HTTP1_ONLY = ("h11", "httptools")
"""``--http`` values accepted for compatibility: Sandman always parses HTTP in its Rust core."""
WS_PROTOCOLS = ("auto", "none", "websockets", "websockets-sansio", "wsproto")
LIFESPAN = ("auto", "on", "off")
LOOP_FACTORIES = ("none", "auto", "asyncio", "uvloop", "zuvloop")
INTERFACES = ("auto", "asgi3", "asgi2", "wsgi")
SSL_PROTOCOL_VERSION: int = ssl.PROTOCOL_TLS_SERVER

logger = logging.getLogger("uvicorn.error")


class Config:
    """All server settings. Parameters are uvicorn 0.54's, in its order, with its defaults."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 8000,
        uds: str | None = None,
        fd: int | None = None,
        loop: str = "auto",
        http: str | type = "auto",
        http2: bool = False,
        ws: str | type = "auto",
        ws_max_size: int = 16 * 1024 * 1024,
        ws_max_queue: int = 32,
        ws_ping_interval: float | None = 20.0,
        ws_ping_timeout: float | None = 20.0,
        ws_per_message_deflate: bool = True,
        lifespan: LifespanType = "auto",
        env_file: str | os.PathLike[str] | None = None,
        log_config: dict[str, Any] | str | RawConfigParser | IO[Any] | None = LOGGING_CONFIG,
        log_level: str | int | None = None,
        access_log: bool = True,
        use_colors: bool | None = None,
        interface: InterfaceType = "auto",
        reload: bool = False,
        reload_dirs: list[str] | str | None = None,
        reload_delay: float = 0.25,
        reload_includes: list[str] | str | None = None,
        reload_excludes: list[str] | str | None = None,
        workers: int | None = None,
        proxy_headers: bool = True,
        server_header: bool = True,
        date_header: bool = True,
        forwarded_allow_ips: list[str] | str | None = None,
        root_path: str = "",
        limit_concurrency: int | None = None,
        limit_max_requests: int | None = None,
        limit_max_requests_jitter: int = 0,
        backlog: int = 2048,
        timeout_keep_alive: int = 5,
        timeout_notify: int = 30,
        timeout_graceful_shutdown: int | None = None,
        timeout_worker_healthcheck: int = 5,
        callback_notify: Callable[..., Awaitable[None]] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile_password: str | None = None,
        ssl_version: int = SSL_PROTOCOL_VERSION,
        ssl_cert_reqs: int = ssl.CERT_NONE,
        ssl_ca_certs: str | None = None,
        ssl_ciphers: str | None = None,
        ssl_context_factory: Callable[..., ssl.SSLContext] | None = None,
        headers: list[tuple[str, str]] | None = None,
        factory: bool = False,
        h11_max_incomplete_event_size: int | None = None,
        reset_contextvars: bool = False,
        header_read_timeout: float = 30.0,
        io_threads: int = 1,
        limit_request_line: int = 16384,
        limit_request_fields: int = 100,
        limit_request_body: int | None = None,
        limit_connections: int | None = None,
        timeout_request_body: float = 60.0,
        limit_request_body_rate: float = 500.0,
        limit_request_body_rate_grace: float = 20.0,
        h2_max_concurrent_streams: int = 100,
        static: list[str] | None = None,
        static_max_age: list[str] | None = None,
        static_index: bool = False,
        cache_size: str | int | None = None,
        metrics_port: int | None = None,
        metrics_host: str | None = None,
        health_loop_timeout: float = 10.0,
        ws_deflate_window_bits: int = 12,
        ws_deflate_context_takeover: bool = False,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.uds = uds
        self.fd = fd
        self.loop = loop
        self.http = http
        self.http2 = http2
        self.ws = ws
        self.ws_max_size = ws_max_size
        self.ws_max_queue = ws_max_queue
        self.ws_ping_interval = ws_ping_interval
        self.ws_ping_timeout = ws_ping_timeout
        self.ws_per_message_deflate = ws_per_message_deflate
        self.lifespan = lifespan
        self.log_config = log_config
        self.log_level = log_level
        self.access_log = access_log
        self.use_colors = use_colors
        self.interface = interface
        self.reload = reload
        self.reload_delay = reload_delay
        self.workers = workers or 1
        self.proxy_headers = proxy_headers
        self.server_header = server_header
        self.date_header = date_header
        self.root_path = root_path
        self.limit_concurrency = limit_concurrency
        self.limit_max_requests = limit_max_requests
        self.limit_max_requests_jitter = limit_max_requests_jitter
        self.backlog = backlog
        self.timeout_keep_alive = timeout_keep_alive
        self.timeout_notify = timeout_notify
        self.timeout_graceful_shutdown = timeout_graceful_shutdown
        self.timeout_worker_healthcheck = timeout_worker_healthcheck
        self.callback_notify = callback_notify
        self.ssl_keyfile = ssl_keyfile
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile_password = ssl_keyfile_password
        self.ssl_version = ssl_version
        self.ssl_cert_reqs = ssl_cert_reqs
        self.ssl_ca_certs = ssl_ca_certs
        self.ssl_ciphers = ssl_ciphers
        self.ssl_context_factory = ssl_context_factory
        self.headers: list[tuple[str, str]] = headers or []
        self.encoded_headers: list[tuple[bytes, bytes]] = []
        self.factory = factory
        self.h11_max_incomplete_event_size = h11_max_incomplete_event_size
        self.reset_contextvars = reset_contextvars
        self.header_read_timeout = header_read_timeout
        self.io_threads = io_threads
        # Sandman's own limits (docs/hardening.md).
        self.limit_request_line = limit_request_line
        self.limit_request_fields = limit_request_fields
        self.limit_request_body = limit_request_body
        self.limit_connections = limit_connections
        self.timeout_request_body = timeout_request_body
        self.limit_request_body_rate = limit_request_body_rate
        self.limit_request_body_rate_grace = limit_request_body_rate_grace
        self.h2_max_concurrent_streams = h2_max_concurrent_streams
        # Answered by the core without the app (docs/static-files-and-cache.md).
        self.static = static
        self.static_max_age = static_max_age
        self.static_index = static_index
        self.cache_size = cache_size
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.health_loop_timeout = health_loop_timeout
        try:
            self.static_mounts = parse_static_mounts(static, static_max_age, static_index)
            self.cache_bytes = parse_byte_size(cache_size, "--cache-size")
        except ValueError as exc:
            raise InvalidSetting(str(exc)) from None
        self.ws_deflate_window_bits = ws_deflate_window_bits
        self.ws_deflate_context_takeover = ws_deflate_context_takeover

        self.loaded = False
        self.loaded_app: Any = None
        self.configure_logging()

        self.reload_dirs: list[Path] = []
        self.reload_includes: list[str] = []
        self.reload_excludes: list[str] = []
        self.reload_dirs_excludes: list[Path] = []
        if (reload_dirs or reload_includes or reload_excludes) and not self.should_reload:
            logger.warning(
                "Current configuration will not reload as not all conditions are met, "
                "please refer to documentation."
            )
        if self.should_reload:
            # Imported here: the supervisors package imports the server, which imports us.
            from sandman_asgi.supervisors.reloadpaths import apply_reload_settings

            apply_reload_settings(self, reload_dirs, reload_includes, reload_excludes)

        if env_file is not None:
            from dotenv import load_dotenv

            logger.info("Loading environment from '%s'", env_file)
            load_dotenv(dotenv_path=env_file)
        self.env_file = env_file

        if workers is None and "WEB_CONCURRENCY" in os.environ:
            self.workers = _workers_from_environment(os.environ["WEB_CONCURRENCY"])

        if forwarded_allow_ips is None:
            forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
        if isinstance(forwarded_allow_ips, str):
            self.forwarded_allow_ips: list[str] = [
                item.strip() for item in forwarded_allow_ips.split(",") if item.strip()
            ]
        else:
            self.forwarded_allow_ips = list(forwarded_allow_ips)

        if self.reload and self.workers > 1:
            logger.warning('"workers" flag is ignored when reloading is enabled.')

    @property
    def asgi_version(self) -> Literal["2.0", "3.0"]:
        """``"2.0"`` when running a legacy double-callable app, as uvicorn reports it."""
        mapping: dict[str, Literal["2.0", "3.0"]] = {
            "asgi2": "2.0",
            "asgi3": "3.0",
            "wsgi": "3.0",
        }
        return mapping.get(self.interface, "3.0")

    @property
    def is_ssl(self) -> bool:
        """Whether TLS settings were given."""
        return bool(self.ssl_keyfile or self.ssl_certfile or self.ssl_context_factory)

    @property
    def use_subprocess(self) -> bool:
        """Whether the app runs under a supervisor (reload or several workers)."""
        return bool(self.reload or self.workers > 1)

    @property
    def should_reload(self) -> bool:
        """Reload only makes sense with an import string."""
        return isinstance(self.app, str) and self.reload

    def configure_logging(self) -> None:
        """Apply ``log_config`` and ``log_level`` (``log_config=None`` leaves logging alone)."""
        logging.addLevelName(TRACE_LOG_LEVEL, "TRACE")
        if self.log_config is not None:
            if isinstance(self.log_config, os.PathLike):
                self.log_config = os.fspath(self.log_config)
            if isinstance(self.log_config, dict):
                config = self.log_config
                if self.use_colors in (True, False):
                    config = json.loads(json.dumps(config))  # deep copy; never edit the default
                    config["formatters"]["default"]["use_colors"] = self.use_colors
                    config["formatters"]["access"]["use_colors"] = self.use_colors
                logging.config.dictConfig(config)
            elif isinstance(self.log_config, str) and self.log_config.endswith(".json"):
                with open(self.log_config) as file:
                    logging.config.dictConfig(json.load(file))
            elif isinstance(self.log_config, str) and self.log_config.endswith((".yaml", ".yml")):
                import yaml

                with open(self.log_config) as file:
                    logging.config.dictConfig(yaml.safe_load(file))
            else:
                logging.config.fileConfig(self.log_config, disable_existing_loggers=False)

        if self.log_level is not None:
            if isinstance(self.log_level, str):
                level = LOG_LEVELS[self.log_level.lower()]
            else:
                level = self.log_level
            for name in ("uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
                logging.getLogger(name).setLevel(level)
        if not self.access_log:
            access = logging.getLogger("uvicorn.access")
            access.handlers = []
            access.propagate = False

    def load_app(self) -> Any:
        """Import the app named by an import string (objects pass through); exit 3 on
        failure. ``run()`` calls it early so a bad path fails before any loop starts."""
        try:
            return import_from_string(self.app)
        except ImportFromStringError as exc:
            logger.error("Error loading ASGI app. %s", exc)
            sys.exit(STARTUP_FAILURE)
        except Exception as exc:
            # The app's module raised while being imported: a startup failure like any
            # other, its traceback shown from the app's own code on.
            logger.error(
                'Error loading ASGI app. Importing module "%s" raised %s.',
                str(self.app).partition(":")[0],
                type(exc).__name__,
                exc_info=(type(exc), exc, app_frames(exc.__traceback__)),
            )
            sys.exit(STARTUP_FAILURE)

    def get_loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        """The event loop factory ``Server.run`` uses: uvloop for ``auto`` when installed,
        None for ``none`` (asyncio's default), or the factory a ``module:attr`` string names.
        A custom string that does not import exits 3, as in uvicorn."""
        try:
            return loop_factory(self.loop)
        except ImportFromStringError as exc:
            logger.error("Error loading custom loop setup function. %s", exc)
            sys.exit(STARTUP_FAILURE)

    def load(self) -> None:
        """Import and wrap the app, encode default headers. Exits 3 on a loading error."""
        assert not self.loaded
        self.encoded_headers = [
            (key.lower().encode("latin1"), value.encode("latin1")) for key, value in self.headers
        ]
        self.loaded_app = self.load_app()

        made_by_factory = False
        try:
            self.loaded_app = self.loaded_app()
        except TypeError as exc:
            if self.factory:
                logger.error("Error loading ASGI app factory: %s", exc)
                sys.exit(STARTUP_FAILURE)
        else:
            made_by_factory = True
            if not self.factory:
                logger.warning(
                    "ASGI app factory detected. Using it, but please consider setting the "
                    "--factory flag explicitly."
                )

        if not callable(self.loaded_app):
            # Refused here rather than answering every request with a 500.
            name = self.app if isinstance(self.app, str) else repr(self.app)
            what = f'The factory "{name}" returned' if made_by_factory else f'"{name}" is'
            logger.error(
                "Error loading ASGI app. %s %s, not an ASGI application (a callable).",
                what,
                _a_type(self.loaded_app),
            )
            sys.exit(STARTUP_FAILURE)

        if self.interface == "auto":
            if inspect.isclass(self.loaded_app):
                use_asgi_3 = hasattr(self.loaded_app, "__await__")
            elif inspect.isfunction(self.loaded_app):
                use_asgi_3 = asyncio.iscoroutinefunction(self.loaded_app)
            else:
                call = getattr(self.loaded_app, "__call__", None)  # noqa: B004
                use_asgi_3 = asyncio.iscoroutinefunction(call)
            self.interface = "asgi3" if use_asgi_3 else "asgi2"

        if self.interface == "wsgi":
            logger.error(
                "--interface wsgi is not supported by Sandman; wrap the app with a2wsgi "
                "(`from a2wsgi import WSGIMiddleware`) and serve it as ASGI."
            )
            sys.exit(STARTUP_FAILURE)
        if self.interface == "asgi2":
            self.loaded_app = ASGI2Middleware(self.loaded_app)
        if logger.getEffectiveLevel() <= TRACE_LOG_LEVEL:
            from sandman_asgi.middleware.message_logger import MessageLoggerMiddleware

            self.loaded_app = MessageLoggerMiddleware(self.loaded_app)
        self.loaded = True

    def bind_socket(self) -> socket.socket:
        """Bind the listening socket (used by supervisors to share one socket)."""
        from sandman_asgi.sockets import bind_socket, log_running

        try:
            sock = bind_socket(self)
        except OSError as exc:
            # Same outcome as a failed bind in Server.startup: one ERROR line, exit 3.
            logger.error("%s", exc)
            sys.exit(STARTUP_FAILURE)
        log_running(self, sock)
        return sock


def _workers_from_environment(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if workers < 1:
        raise InvalidSetting(
            f"Invalid value for WEB_CONCURRENCY: {value!r} is not a number of worker "
            "processes (a whole number, 1 or more)."
        )
    return workers


def _a_type(value: object) -> str:
    """``an int``, ``a str``: the type of a value, with its article, for messages."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
