"""The ``sandman`` command and ``run()``: uvicorn's CLI and entry point, option for option."""

from __future__ import annotations

import logging
import os
import platform
import ssl
import sys
from collections.abc import Callable
from configparser import RawConfigParser
from typing import IO, Any

import click

from sandman_asgi import __version__
from sandman_asgi.config import (
    INTERFACES,
    LIFESPAN,
    LOG_LEVELS,
    LOGGING_CONFIG,
    SSL_PROTOCOL_VERSION,
    STARTUP_FAILURE,
    WS_PROTOCOLS,
    Config,
    InterfaceType,
    LifespanType,
)
from sandman_asgi.server import Server

logger = logging.getLogger("uvicorn.error")

LEVEL_CHOICES = click.Choice(list(LOG_LEVELS.keys()))
LIFESPAN_CHOICES = click.Choice(list(LIFESPAN))
INTERFACE_CHOICES = click.Choice(list(INTERFACES))


def print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--version``: one line, exit 0."""
    if not value or ctx.resilient_parsing:
        return
    click.echo(
        f"Running sandman {__version__} with {platform.python_implementation()} {platform.python_version()} on {platform.system()}"
    )
    ctx.exit()


def _check_selector(value: str, known: tuple[str, ...], option: str) -> str:
    if value in known or ":" in value:
        return value
    raise click.BadParameter(
        f"{value!r} is not one of {', '.join(map(repr, known))}.", param_hint=option
    )


@click.command(context_settings={"auto_envvar_prefix": "UVICORN"})
@click.argument("app", envvar="UVICORN_APP")
@click.option(
    "--host", type=str, default="127.0.0.1", help="Bind socket to this host.", show_default=True
)
@click.option(
    "--port",
    type=int,
    default=8000,
    help="Bind socket to this port. If 0, an available port will be picked.",
    show_default=True,
)
@click.option("--uds", type=str, default=None, help="Bind to a UNIX domain socket.")
@click.option("--fd", type=int, default=None, help="Bind to socket from this file descriptor.")
@click.option("--reload", is_flag=True, default=False, help="Enable auto-reload.")
@click.option(
    "--reload-dir",
    "reload_dirs",
    multiple=True,
    help="Set reload directories explicitly, instead of using the current working directory.",
    type=click.Path(exists=True),
)
@click.option(
    "--reload-include",
    "reload_includes",
    multiple=True,
    help="Set glob patterns to include while watching for files. Includes '*.py' by default.",
)
@click.option(
    "--reload-exclude",
    "reload_excludes",
    multiple=True,
    help="Set glob patterns to exclude while watching for files. Includes '.*, .py[cod], .sw.*, ~*' by default.",
)
@click.option(
    "--reload-delay",
    type=float,
    default=0.25,
    show_default=True,
    help="Delay between previous and next check if application needs to be. Defaults to 0.25s.",
)
@click.option(
    "--workers",
    default=None,
    type=int,
    help="Number of worker processes. Defaults to the $WEB_CONCURRENCY environment variable if available, or 1. Not valid with --reload.",
)
@click.option(
    "--loop",
    type=str,
    default="auto",
    help="Event loop factory implementation: auto, asyncio, uvloop, or an import string.",
    show_default=True,
)
@click.option(
    "--http",
    type=str,
    default="auto",
    help="HTTP protocol implementation. Sandman always uses its Rust core; accepted for compatibility.",
    show_default=True,
)
@click.option(
    "--http2", is_flag=True, default=False, help="Accepted for compatibility with uvicorn."
)
@click.option(
    "--ws",
    type=str,
    default="auto",
    help="WebSocket protocol implementation; 'none' disables WebSockets.",
    show_default=True,
)
@click.option(
    "--ws-max-size",
    type=int,
    default=16777216,
    help="WebSocket max size message in bytes",
    show_default=True,
)
@click.option(
    "--ws-max-queue",
    type=int,
    default=32,
    help="The maximum length of the WebSocket message queue.",
    show_default=True,
)
@click.option(
    "--ws-ping-interval",
    type=float,
    default=20.0,
    help="WebSocket ping interval in seconds.",
    show_default=True,
)
@click.option(
    "--ws-ping-timeout",
    type=float,
    default=20.0,
    help="WebSocket ping timeout in seconds.",
    show_default=True,
)
@click.option(
    "--ws-per-message-deflate",
    type=bool,
    default=True,
    help="WebSocket per-message-deflate compression",
    show_default=True,
)
@click.option(
    "--lifespan",
    type=LIFESPAN_CHOICES,
    default="auto",
    help="Lifespan implementation.",
    show_default=True,
)
@click.option(
    "--interface",
    type=INTERFACE_CHOICES,
    default="auto",
    help="Select ASGI3, ASGI2, or WSGI as the application interface.",
    show_default=True,
)
@click.option(
    "--env-file",
    type=click.Path(exists=True),
    default=None,
    help="Environment configuration file.",
    show_default=True,
)
@click.option(
    "--log-config",
    type=click.Path(exists=True),
    default=None,
    help="Logging configuration file. Supported formats: .ini, .json, .yaml.",
    show_default=True,
)
@click.option(
    "--log-level",
    type=LEVEL_CHOICES,
    default=None,
    help="Log level. [default: info]",
    show_default=True,
)
@click.option(
    "--access-log/--no-access-log", is_flag=True, default=True, help="Enable/Disable access log."
)
@click.option(
    "--use-colors/--no-use-colors",
    is_flag=True,
    default=None,
    help="Enable/Disable colorized logging.",
)
@click.option(
    "--proxy-headers/--no-proxy-headers",
    is_flag=True,
    default=True,
    help="Enable/Disable X-Forwarded-Proto, X-Forwarded-For to populate url scheme and remote address info.",
)
@click.option(
    "--server-header/--no-server-header",
    is_flag=True,
    default=True,
    help="Enable/Disable default Server header.",
)
@click.option(
    "--date-header/--no-date-header",
    is_flag=True,
    default=True,
    help="Enable/Disable default Date header.",
)
@click.option(
    "--forwarded-allow-ips",
    type=str,
    default=None,
    help="Comma separated list of IP Addresses, IP Networks, or literals (e.g. UNIX Socket path) to trust with proxy headers. Defaults to the $FORWARDED_ALLOW_IPS environment variable if available, or '127.0.0.1,::1'. The literal '*' means trust everything.",
)
@click.option(
    "--root-path",
    type=str,
    default="",
    help="Set the ASGI 'root_path' for applications submounted below a given URL path.",
)
@click.option(
    "--limit-concurrency",
    type=int,
    default=None,
    help="Maximum number of concurrent connections or tasks to allow, before issuing HTTP 503 responses.",
)
@click.option(
    "--backlog", type=int, default=2048, help="Maximum number of connections to hold in backlog"
)
@click.option(
    "--limit-max-requests",
    type=int,
    default=None,
    help="Maximum number of requests to service before terminating the process.",
)
@click.option(
    "--limit-max-requests-jitter",
    type=int,
    default=0,
    help="Maximum jitter to add to limit_max_requests.",
    show_default=True,
)
@click.option(
    "--timeout-keep-alive",
    type=int,
    default=5,
    help="Close Keep-Alive connections if no new data is received within this timeout (in seconds).",
    show_default=True,
)
@click.option(
    "--timeout-graceful-shutdown",
    type=int,
    default=None,
    help="Maximum number of seconds to wait for graceful shutdown.",
)
@click.option(
    "--timeout-worker-healthcheck",
    type=int,
    default=5,
    help="Maximum number of seconds to wait for a worker to respond to a healthcheck.",
    show_default=True,
)
@click.option("--ssl-keyfile", type=str, default=None, help="SSL key file", show_default=True)
@click.option(
    "--ssl-certfile", type=str, default=None, help="SSL certificate file", show_default=True
)
@click.option(
    "--ssl-keyfile-password", type=str, default=None, help="SSL keyfile password", show_default=True
)
@click.option(
    "--ssl-version",
    type=int,
    default=int(SSL_PROTOCOL_VERSION),
    help="SSL version to use (see stdlib ssl module's)",
    show_default=True,
)
@click.option(
    "--ssl-cert-reqs",
    type=int,
    default=int(ssl.CERT_NONE),
    help="Whether client certificate is required (see stdlib ssl module's)",
    show_default=True,
)
@click.option(
    "--ssl-ca-certs", type=str, default=None, help="CA certificates file", show_default=True
)
@click.option(
    "--ssl-ciphers",
    type=str,
    default=None,
    help="Ciphers to use (see stdlib ssl module's)",
    show_default=True,
)
@click.option(
    "--header",
    "headers",
    type=str,
    multiple=True,
    help="Specify custom default HTTP response headers as a Name:Value pair",
)
@click.option(
    "--version",
    is_flag=True,
    callback=print_version,
    expose_value=False,
    is_eager=True,
    help="Display the sandman version and exit.",
)
@click.option(
    "--app-dir",
    default="",
    show_default=True,
    help="Look for APP in the specified directory, by adding this to the PYTHONPATH. Defaults to the current working directory.",
)
@click.option(
    "--h11-max-incomplete-event-size",
    type=int,
    default=None,
    help="Maximum size of the request line plus headers in bytes (431 beyond it). Default 64 KiB.",
)
@click.option(
    "--reset-contextvars",
    is_flag=True,
    default=False,
    help="Run each request in a fresh contextvars.Context.",
)
@click.option(
    "--factory",
    is_flag=True,
    default=False,
    help="Treat APP as an application factory, i.e. a () -> <ASGI app> callable.",
    show_default=True,
)
@click.option(
    "--limit-request-line",
    type=click.IntRange(min=1),
    default=16384,
    show_default=True,
    help="[Sandman] Longest request target (path and query) in bytes; 414 beyond it.",
)
@click.option(
    "--limit-request-fields",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="[Sandman] Most request header lines; 431 beyond it.",
)
@click.option(
    "--limit-request-body",
    type=click.IntRange(min=0),
    default=None,
    help="[Sandman] Largest request body in bytes; 413 beyond it. Default: no limit.",
)
@click.option(
    "--limit-connections",
    type=click.IntRange(min=1),
    default=None,
    help="[Sandman] Most open connections; further clients wait in the listen backlog.",
)
@click.option(
    "--timeout-request-header",
    "header_read_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="[Sandman] Seconds a client may take to send a request head (the keep-alive "
    "timeout applies too, whichever is shorter).",
)
@click.option(
    "--timeout-request-body",
    type=float,
    default=60.0,
    show_default=True,
    help="[Sandman] Seconds a request body may stall between bytes; 408 after. 0 disables.",
)
def main(**kwargs: Any) -> None:
    """Run an ASGI application with Sandman (accepts uvicorn's options)."""
    headers = kwargs.pop("headers")
    kwargs["headers"] = [tuple(h.split(":", 1)) for h in headers]
    for header in headers:
        if ":" not in header:
            raise click.BadParameter(f"{header!r} is not a Name:Value pair.", param_hint="--header")
    _check_selector(kwargs["http"], ("auto", "h11", "httptools", "zttp"), "--http")
    _check_selector(kwargs["ws"], WS_PROTOCOLS, "--ws")
    _check_selector(kwargs["loop"], ("none", "auto", "asyncio", "uvloop", "zuvloop"), "--loop")
    kwargs["reload_dirs"] = list(kwargs["reload_dirs"]) or None
    kwargs["reload_includes"] = list(kwargs["reload_includes"]) or None
    kwargs["reload_excludes"] = list(kwargs["reload_excludes"]) or None
    if kwargs["log_config"] is None:
        kwargs["log_config"] = LOGGING_CONFIG
    run(**kwargs)


def _read_sandman_env_too(command: click.Command) -> None:
    # Every parameter reads SANDMAN_<NAME> first, then uvicorn's UVICORN_<NAME> (the name
    # auto_envvar_prefix would give); the command line beats both. SANDMAN_ wins because
    # it is the more specific spelling: set both, and Sandman does what SANDMAN_ says.
    for param in command.params:
        if param.name:
            name = param.name.upper()
            param.envvar = [f"SANDMAN_{name}", f"UVICORN_{name}"]


_read_sandman_env_too(main)


def _note_ignored_selectors(config: Config) -> None:
    # uvicorn chooses between protocol implementations with these; Sandman has one of each,
    # in its Rust core. Accept uvicorn's values (so command lines keep working) and say so.
    if isinstance(config.http, str) and config.http != "auto":
        logger.info(
            "--http %s has no effect: Sandman always uses its own HTTP/1.1 implementation.",
            config.http,
        )
    if config.http2:
        logger.info("--http2 has no effect: Sandman serves HTTP/1.x.")
    if isinstance(config.ws, str) and config.ws not in ("auto", "none"):
        logger.info(
            "--ws %s has no effect: Sandman always uses its own WebSocket implementation.",
            config.ws,
        )


def run(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    uds: str | None = None,
    fd: int | None = None,
    loop: str = "auto",
    http: str | type = "auto",
    http2: bool = False,
    ws: str | type = "auto",
    ws_max_size: int = 16777216,
    ws_max_queue: int = 32,
    ws_ping_interval: float | None = 20.0,
    ws_ping_timeout: float | None = 20.0,
    ws_per_message_deflate: bool = True,
    lifespan: LifespanType = "auto",
    interface: InterfaceType = "auto",
    reload: bool = False,
    reload_dirs: list[str] | str | None = None,
    reload_includes: list[str] | str | None = None,
    reload_excludes: list[str] | str | None = None,
    reload_delay: float = 0.25,
    workers: int | None = None,
    env_file: str | os.PathLike[str] | None = None,
    log_config: dict[str, Any] | str | os.PathLike[str] | RawConfigParser | IO[Any] | None = (
        LOGGING_CONFIG
    ),
    log_level: str | int | None = None,
    access_log: bool = True,
    proxy_headers: bool = True,
    server_header: bool = True,
    date_header: bool = True,
    forwarded_allow_ips: list[str] | str | None = None,
    root_path: str = "",
    limit_concurrency: int | None = None,
    backlog: int = 2048,
    limit_max_requests: int | None = None,
    limit_max_requests_jitter: int = 0,
    timeout_keep_alive: int = 5,
    timeout_graceful_shutdown: int | None = None,
    timeout_worker_healthcheck: int = 5,
    ssl_keyfile: str | os.PathLike[str] | None = None,
    ssl_certfile: str | os.PathLike[str] | None = None,
    ssl_keyfile_password: str | None = None,
    ssl_version: int = SSL_PROTOCOL_VERSION,
    ssl_cert_reqs: int = ssl.CERT_NONE,
    ssl_ca_certs: str | os.PathLike[str] | None = None,
    ssl_ciphers: str | None = None,
    ssl_context_factory: Callable[..., ssl.SSLContext] | None = None,
    headers: list[tuple[str, str]] | None = None,
    use_colors: bool | None = None,
    app_dir: str | None = None,
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
) -> None:
    """Run ``app`` (an ASGI app or an import string) until it is stopped, as
    ``uvicorn.run()`` does: same keywords, same defaults, same exit statuses. The last two
    keywords are Sandman's own (see ``Config``)."""
    # Every keyword but app/app_dir goes to Config unchanged (locals() is just the arguments).
    settings = {k: v for k, v in locals().items() if k not in ("app", "app_dir")}
    if app_dir is not None:
        sys.path.insert(0, app_dir)

    config = Config(app, **settings)
    _note_ignored_selectors(config)
    if config.reload or config.workers > 1:
        if not isinstance(app, str):
            logger.warning(
                "You must pass the application as an import string to enable 'reload' or 'workers'."
            )
            sys.exit(STARTUP_FAILURE)
    else:
        # Import before any event loop exists, so a bad app path fails fast with status 3.
        config.load_app()
    server = Server(config=config)

    try:
        if config.should_reload:
            from sandman_asgi.supervisors import ChangeReload

            sock = config.bind_socket()
            ChangeReload(config, target=server.run, sockets=[sock]).run()
        elif config.workers > 1:
            from sandman_asgi.supervisors import Multiprocess

            sock = config.bind_socket()
            Multiprocess(config, sockets=[sock], target=server.run).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if config.uds and os.path.exists(config.uds):
            os.remove(config.uds)

    if not server.started and not config.should_reload and config.workers == 1:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
