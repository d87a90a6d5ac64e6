"""Every setting of the server, declared once: its keyword, flag, default, help and
environment spellings.

The ``sandman`` command's options are built from this table (``cli_parameters``);
``run()`` and ``Config.__init__`` spell their keywords out for type checkers and readers,
and ``tests/test_options_table.py`` checks both against the table (names, defaults,
environment variables), so the three cannot drift apart. ``docs/configuration.md`` is
generated from it too.

Entries are in the command's option order, which is uvicorn 0.54's (``--help`` lists them
so, and ``tests/test_cli_surface.py`` compares them with uvicorn's), Sandman's own last.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from sandman_asgi.config import (
    INTERFACES,
    LIFESPAN,
    LOG_LEVELS,
    LOGGING_CONFIG,
    SSL_PROTOCOL_VERSION,
)

REQUIRED: Any = object()
"""The default of a parameter that has none (the app)."""

SAME: Any = object()
"""``cli_default`` when the command line's default is the API's."""

ENV_PREFIXES = ("SANDMAN", "UVICORN")
"""Every setting is read from ``SANDMAN_<NAME>`` and then ``UVICORN_<NAME>``: uvicorn's
spelling keeps existing deployments working, Sandman's wins when both are set."""


@dataclass(frozen=True)
class Option:
    """One setting. ``name`` is its keyword in ``run()``/``Config`` and the name click
    gives the parsed value; ``flag`` its command-line spelling (``--a/--no-a`` for a
    switch pair), ``None`` for a keyword the command line does not offer."""

    name: str
    default: Any
    flag: str | None
    help: str = ""
    type: Any = None
    cli_default: Any = SAME
    show_default: bool | None = None
    multiple: bool = False
    is_flag: bool = False
    in_run: bool = True
    in_config: bool = True
    sandman: bool = False
    old_env: tuple[str, ...] = ()
    argument: bool = False

    @property
    def command_line_default(self) -> Any:
        return self.default if self.cli_default is SAME else self.cli_default

    @property
    def flags(self) -> tuple[str, ...]:
        """The flag's spellings: ``("--access-log/--no-access-log",)`` stays one string,
        as click wants it for a switch pair."""
        return (self.flag,) if self.flag else ()

    @property
    def env(self) -> tuple[str, ...]:
        """Environment variables read for this setting, first set wins. uvicorn's options
        keep uvicorn's spelling (``UVICORN_`` + the parameter name, so ``--reload-dir`` is
        ``UVICORN_RELOAD_DIRS``); Sandman's own follow the flag (``--timeout-request-header``
        is ``SANDMAN_TIMEOUT_REQUEST_HEADER``), then any former spelling."""
        if self.sandman and self.flag:
            key = self.flag.split("/")[0].lstrip("-").replace("-", "_").upper()
        else:
            key = self.name.upper()
        return tuple(f"{prefix}_{key}" for prefix in ENV_PREFIXES) + self.old_env


def _uvicorn(name: str, default: Any, flag: str | None, help: str = "", **kw: Any) -> Option:
    return Option(name, default, flag, help, **kw)


def _sandman(name: str, default: Any, flag: str, help: str, **kw: Any) -> Option:
    return Option(name, default, flag, f"[Sandman] {help}", sandman=True, **kw)


OPTIONS: tuple[Option, ...] = (
    Option(
        "app",
        REQUIRED,
        None,
        "The ASGI application as module:attribute (with --factory, a function that returns it).",
        argument=True,
    ),
    _uvicorn(
        "host", "127.0.0.1", "--host", "Bind socket to this host.", type=str, show_default=True
    ),
    _uvicorn(
        "port",
        8000,
        "--port",
        "Bind socket to this port. If 0, an available port will be picked.",
        type=int,
        show_default=True,
    ),
    _uvicorn("uds", None, "--uds", "Bind to a UNIX domain socket.", type=str),
    _uvicorn("fd", None, "--fd", "Bind to socket from this file descriptor.", type=int),
    _uvicorn("reload", False, "--reload", "Enable auto-reload.", is_flag=True),
    _uvicorn(
        "reload_dirs",
        None,
        "--reload-dir",
        "Set reload directories explicitly, instead of using the current working directory.",
        type=click.Path(exists=True),
        multiple=True,
    ),
    _uvicorn(
        "reload_includes",
        None,
        "--reload-include",
        "Set glob patterns to include while watching for files. Includes '*.py' by default.",
        multiple=True,
    ),
    _uvicorn(
        "reload_excludes",
        None,
        "--reload-exclude",
        "Set glob patterns to exclude while watching for files. Includes '.*, .py[cod], .sw.*, ~*' by default.",
        multiple=True,
    ),
    _uvicorn(
        "reload_delay",
        0.25,
        "--reload-delay",
        "Delay between previous and next check if application needs to be. Defaults to 0.25s.",
        type=float,
        show_default=True,
    ),
    _uvicorn(
        "workers",
        None,
        "--workers",
        "Number of worker processes. Defaults to the $WEB_CONCURRENCY environment variable if available, or 1. Not valid with --reload.",
        type=int,
    ),
    _uvicorn(
        "loop",
        "auto",
        "--loop",
        "Event loop factory implementation: auto, asyncio, uvloop, or an import string.",
        type=str,
        show_default=True,
    ),
    _uvicorn(
        "http",
        "auto",
        "--http",
        "HTTP protocol implementation. Sandman always uses its Rust core; h11 or httptools keep the listener HTTP/1.1-only.",
        type=str,
        show_default=True,
    ),
    _uvicorn(
        "http2",
        False,
        "--http2",
        "Accepted for compatibility with uvicorn: HTTP/2 is on unless --http is h11 or httptools.",
        is_flag=True,
    ),
    _uvicorn(
        "ws",
        "auto",
        "--ws",
        "WebSocket protocol implementation; 'none' disables WebSockets.",
        type=str,
        show_default=True,
    ),
    _uvicorn(
        "ws_max_size",
        16777216,
        "--ws-max-size",
        "WebSocket max size message in bytes",
        type=int,
        show_default=True,
    ),
    _uvicorn(
        "ws_max_queue",
        32,
        "--ws-max-queue",
        "The maximum length of the WebSocket message queue.",
        type=int,
        show_default=True,
    ),
    _uvicorn(
        "ws_ping_interval",
        20.0,
        "--ws-ping-interval",
        "WebSocket ping interval in seconds.",
        type=float,
        show_default=True,
    ),
    _uvicorn(
        "ws_ping_timeout",
        20.0,
        "--ws-ping-timeout",
        "WebSocket ping timeout in seconds.",
        type=float,
        show_default=True,
    ),
    _uvicorn(
        "ws_per_message_deflate",
        True,
        "--ws-per-message-deflate",
        "WebSocket per-message-deflate compression",
        type=bool,
        show_default=True,
    ),
    _uvicorn(
        "lifespan",
        "auto",
        "--lifespan",
        "Lifespan implementation.",
        type=click.Choice(list(LIFESPAN)),
        show_default=True,
    ),
    _uvicorn(
        "interface",
        "auto",
        "--interface",
        "Select ASGI3, ASGI2, or WSGI as the application interface.",
        type=click.Choice(list(INTERFACES)),
        show_default=True,
    ),
    _uvicorn(
        "env_file",
        None,
        "--env-file",
        "Environment configuration file.",
        type=click.Path(exists=True),
        show_default=True,
    ),
    _uvicorn(
        "log_config",
        LOGGING_CONFIG,
        "--log-config",
        "Logging configuration file. Supported formats: .ini, .json, .yaml.",
        type=click.Path(exists=True),
        # None on the command line: main() puts the built-in config in when no file is given.
        cli_default=None,
        show_default=True,
    ),
    _uvicorn(
        "log_level",
        None,
        "--log-level",
        "Log level. [default: info]",
        type=click.Choice(list(LOG_LEVELS.keys())),
        show_default=True,
    ),
    _uvicorn(
        "access_log",
        True,
        "--access-log/--no-access-log",
        "Enable/Disable access log.",
        is_flag=True,
    ),
    _uvicorn(
        "use_colors",
        None,
        "--use-colors/--no-use-colors",
        "Enable/Disable colorized logging.",
        is_flag=True,
    ),
    _uvicorn(
        "proxy_headers",
        True,
        "--proxy-headers/--no-proxy-headers",
        "Enable/Disable X-Forwarded-Proto, X-Forwarded-For to populate url scheme and remote address info.",
        is_flag=True,
    ),
    _uvicorn(
        "server_header",
        True,
        "--server-header/--no-server-header",
        "Enable/Disable default Server header.",
        is_flag=True,
    ),
    _uvicorn(
        "date_header",
        True,
        "--date-header/--no-date-header",
        "Enable/Disable default Date header.",
        is_flag=True,
    ),
    _uvicorn(
        "forwarded_allow_ips",
        None,
        "--forwarded-allow-ips",
        "Comma separated list of IP Addresses, IP Networks, or literals (e.g. UNIX Socket path) to trust with proxy headers. Defaults to the $FORWARDED_ALLOW_IPS environment variable if available, or '127.0.0.1,::1'. The literal '*' means trust everything.",
        type=str,
    ),
    _uvicorn(
        "root_path",
        "",
        "--root-path",
        "Set the ASGI 'root_path' for applications submounted below a given URL path.",
        type=str,
    ),
    _uvicorn(
        "limit_concurrency",
        None,
        "--limit-concurrency",
        "Maximum number of concurrent connections or tasks to allow, before issuing HTTP 503 responses.",
        type=int,
    ),
    _uvicorn(
        "backlog",
        2048,
        "--backlog",
        "Maximum number of connections to hold in backlog",
        type=int,
    ),
    _uvicorn(
        "limit_max_requests",
        None,
        "--limit-max-requests",
        "Maximum number of requests to service before terminating the process.",
        type=int,
    ),
    _uvicorn(
        "limit_max_requests_jitter",
        0,
        "--limit-max-requests-jitter",
        "Maximum jitter to add to limit_max_requests.",
        type=int,
        show_default=True,
    ),
    _uvicorn(
        "timeout_keep_alive",
        5,
        "--timeout-keep-alive",
        "Close Keep-Alive connections if no new data is received within this timeout (in seconds).",
        type=int,
        show_default=True,
    ),
    _uvicorn(
        "timeout_graceful_shutdown",
        None,
        "--timeout-graceful-shutdown",
        "Maximum number of seconds to wait for graceful shutdown.",
        type=int,
    ),
    _uvicorn(
        "timeout_worker_healthcheck",
        5,
        "--timeout-worker-healthcheck",
        "Maximum number of seconds to wait for a worker to respond to a healthcheck.",
        type=int,
        show_default=True,
    ),
    _uvicorn("ssl_keyfile", None, "--ssl-keyfile", "SSL key file", type=str, show_default=True),
    _uvicorn(
        "ssl_certfile", None, "--ssl-certfile", "SSL certificate file", type=str, show_default=True
    ),
    _uvicorn(
        "ssl_keyfile_password",
        None,
        "--ssl-keyfile-password",
        "SSL keyfile password",
        type=str,
        show_default=True,
    ),
    _uvicorn(
        "ssl_version",
        SSL_PROTOCOL_VERSION,
        "--ssl-version",
        "SSL version to use (see stdlib ssl module's)",
        type=int,
        cli_default=int(SSL_PROTOCOL_VERSION),
        show_default=True,
    ),
    _uvicorn(
        "ssl_cert_reqs",
        ssl.CERT_NONE,
        "--ssl-cert-reqs",
        "Whether client certificate is required (see stdlib ssl module's)",
        type=int,
        cli_default=int(ssl.CERT_NONE),
        show_default=True,
    ),
    _uvicorn(
        "ssl_ca_certs", None, "--ssl-ca-certs", "CA certificates file", type=str, show_default=True
    ),
    _uvicorn(
        "ssl_ciphers",
        None,
        "--ssl-ciphers",
        "Ciphers to use (see stdlib ssl module's)",
        type=str,
        show_default=True,
    ),
    _uvicorn(
        "headers",
        None,
        "--header",
        "Specify custom default HTTP response headers as a Name:Value pair",
        type=str,
        multiple=True,
    ),
    _uvicorn(
        "version",
        False,
        "--version",
        "Display the sandman version and exit.",
        is_flag=True,
        in_run=False,
        in_config=False,
    ),
    _uvicorn(
        "app_dir",
        None,
        "--app-dir",
        "Look for APP in the specified directory, by adding this to the PYTHONPATH. Defaults to the current working directory.",
        cli_default="",
        show_default=True,
        in_config=False,
    ),
    _uvicorn(
        "h11_max_incomplete_event_size",
        None,
        "--h11-max-incomplete-event-size",
        "Maximum size of the request line plus headers in bytes (431 beyond it). Default 64 KiB.",
        type=int,
    ),
    _uvicorn(
        "reset_contextvars",
        False,
        "--reset-contextvars",
        "Run each request in a fresh contextvars.Context.",
        is_flag=True,
    ),
    _uvicorn(
        "factory",
        False,
        "--factory",
        "Treat APP as an application factory, i.e. a () -> <ASGI app> callable.",
        is_flag=True,
        show_default=True,
    ),
    # Keywords of run() and Config with no flag (uvicorn's, then Sandman's).
    _uvicorn("timeout_notify", 30, None, "Seconds between callback_notify calls.", in_run=False),
    _uvicorn(
        "callback_notify",
        None,
        None,
        "Coroutine function awaited every timeout_notify seconds while serving.",
        in_run=False,
    ),
    _uvicorn(
        "ssl_context_factory",
        None,
        None,
        "uvicorn's hook for a Python SSLContext; refused at startup (TLS is rustls in the core).",
    ),
    Option(
        "io_threads",
        1,
        None,
        "[Sandman] Rust IO threads per process.",
        sandman=True,
    ),
    # Sandman's own hardening options (docs/hardening.md).
    _sandman(
        "limit_request_line",
        16384,
        "--limit-request-line",
        "Longest request target (path and query) in bytes; 414 beyond it.",
        type=click.IntRange(min=1),
        show_default=True,
    ),
    _sandman(
        "limit_request_fields",
        100,
        "--limit-request-fields",
        "Most request header lines; 431 beyond it.",
        type=click.IntRange(min=1),
        show_default=True,
    ),
    _sandman(
        "limit_request_body",
        None,
        "--limit-request-body",
        "Largest request body in bytes; 413 beyond it. Default: no limit.",
        type=click.IntRange(min=0),
    ),
    _sandman(
        "limit_connections",
        None,
        "--limit-connections",
        "Most open connections; further clients wait in the listen backlog.",
        type=click.IntRange(min=1),
    ),
    _sandman(
        "header_read_timeout",
        30.0,
        "--timeout-request-header",
        "Seconds a client may take to send a request head (the keep-alive timeout applies too, whichever is shorter).",
        type=click.FloatRange(min=0, min_open=True),
        show_default=True,
        # The spelling before the environment followed the flag's name.
        old_env=("SANDMAN_HEADER_READ_TIMEOUT", "UVICORN_HEADER_READ_TIMEOUT"),
    ),
    _sandman(
        "timeout_request_body",
        60.0,
        "--timeout-request-body",
        "Seconds a request body may stall between bytes; 408 after. 0 disables.",
        type=float,
        show_default=True,
    ),
    _sandman(
        "limit_request_body_rate",
        500.0,
        "--limit-request-body-rate",
        "Slowest a request body may arrive, in bytes per second, once the grace period has passed (time the app leaves the body unread does not count); 408 below it. 0 disables.",
        type=click.FloatRange(min=0),
        show_default=True,
    ),
    _sandman(
        "limit_request_body_rate_grace",
        20.0,
        "--limit-request-body-rate-grace",
        "Seconds of waiting for a request body before --limit-request-body-rate applies.",
        type=click.FloatRange(min=0),
        show_default=True,
    ),
    _sandman(
        "h2_max_concurrent_streams",
        100,
        "--h2-max-concurrent-streams",
        "HTTP/2 streams one client may have open at once.",
        type=click.IntRange(min=1),
        show_default=True,
    ),
    # Answered by the Rust core without waking Python (docs/static-files-and-cache.md).
    _sandman(
        "static",
        None,
        "--static",
        "Serve the files of DIRECTORY under URL PREFIX from the core, without the app: PREFIX=DIRECTORY. Repeatable; the longest prefix wins.",
        multiple=True,
    ),
    _sandman(
        "static_max_age",
        None,
        "--static-max-age",
        "Cache-Control: public, max-age=SECONDS on static files: SECONDS for every mount, or PREFIX=SECONDS for one. Repeatable.",
        multiple=True,
    ),
    _sandman(
        "static_index",
        False,
        "--static-index",
        "Serve a directory's index.html under static mounts (a directory path without its final slash is redirected to it).",
        is_flag=True,
    ),
    _sandman(
        "cache_size",
        None,
        "--cache-size",
        "Cache GET/HEAD responses the app marks Cache-Control: public with max-age or s-maxage, in the core, up to this many bytes (such as 64M). Default: no cache.",
        type=str,
    ),
    _sandman(
        "metrics_port",
        None,
        "--metrics-port",
        "Serve Prometheus metrics (/metrics) and health checks (/livez, /readyz) on this port. Default: off.",
        type=click.IntRange(min=0, max=65535),
    ),
    _sandman(
        "metrics_host",
        None,
        "--metrics-host",
        "Bind the metrics port to this host. Default: the --host value.",
        type=str,
    ),
    _sandman(
        "health_loop_timeout",
        10.0,
        "--health-loop-timeout",
        "Seconds the event loop may go without turning before /livez fails.",
        type=click.FloatRange(min=0, min_open=True),
        show_default=True,
    ),
    _sandman(
        "ws_deflate_window_bits",
        12,
        "--ws-deflate-window-bits",
        "permessage-deflate window, 2**N bytes each way: 15 compresses best, 12 is "
        "uvicorn's (websockets') choice.",
        type=click.IntRange(min=9, max=15),
        show_default=True,
    ),
    _sandman(
        "ws_deflate_context_takeover",
        False,
        "--ws-deflate-context-takeover/--no-ws-deflate-context-takeover",
        "Keep each WebSocket's compression context between messages: a better ratio on "
        "similar messages for ~300 KiB per socket that is never given back while it lives.",
        is_flag=True,
        show_default=True,
    ),
)

BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}
COMMAND_LINE: tuple[Option, ...] = tuple(o for o in OPTIONS if o.flag or o.argument)
RUN_KEYWORDS: tuple[Option, ...] = tuple(o for o in OPTIONS if o.in_run)
CONFIG_KEYWORDS: tuple[Option, ...] = tuple(o for o in OPTIONS if o.in_config)


def _click_parameter(option: Option, extra: Mapping[str, Any]) -> Callable[[Any], Any]:
    if option.argument:
        return click.argument(option.name, envvar=list(option.env))
    kwargs: dict[str, Any] = {"help": option.help, "envvar": list(option.env)}
    # A repeatable option and --version (an eager callback) take click's own default.
    if not option.multiple and option.name != "version":
        kwargs["default"] = option.command_line_default
    if option.type is not None and not option.is_flag:
        kwargs["type"] = option.type
    if option.is_flag:
        kwargs["is_flag"] = True
    if option.multiple:
        kwargs["multiple"] = True
    if option.show_default is not None:
        kwargs["show_default"] = option.show_default
    kwargs.update(extra)
    return click.option(*option.flags, option.name, **kwargs)


def cli_parameters(
    callbacks: Mapping[str, Mapping[str, Any]] | None = None,
    only: Sequence[Option] = COMMAND_LINE,
) -> Callable[[Any], Any]:
    """A decorator adding the table's argument and options to a click command, in table
    order. ``callbacks`` gives extra click keywords by name (``--version``'s callback)."""
    extras = callbacks or {}

    def decorate(function: Any) -> Any:
        for option in reversed(only):
            function = _click_parameter(option, extras.get(option.name, {}))(function)
        return function

    return decorate
