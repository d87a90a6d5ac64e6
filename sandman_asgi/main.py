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
    HTTP1_ONLY,
    HTTP_PROTOCOLS,
    LOGGING_CONFIG,
    LOOP_FACTORIES,
    SSL_PROTOCOL_VERSION,
    STARTUP_FAILURE,
    WS_PROTOCOLS,
    Config,
    InterfaceType,
    InvalidSetting,
    LifespanType,
)
from sandman_asgi.options import cli_parameters
from sandman_asgi.server import MALLOC_TUNING_ENV, Server

logger = logging.getLogger("uvicorn.error")


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
@cli_parameters(
    callbacks={"version": {"callback": print_version, "expose_value": False, "is_eager": True}}
)
def main(**kwargs: Any) -> None:
    """Run an ASGI application with Sandman (accepts uvicorn's options)."""
    headers = kwargs.pop("headers")
    kwargs["headers"] = [tuple(h.split(":", 1)) for h in headers]
    for header in headers:
        if ":" not in header:
            raise click.BadParameter(f"{header!r} is not a Name:Value pair.", param_hint="--header")
    _check_selector(kwargs["http"], HTTP_PROTOCOLS, "--http")
    _check_selector(kwargs["ws"], WS_PROTOCOLS, "--ws")
    _check_selector(kwargs["loop"], LOOP_FACTORIES, "--loop")
    kwargs["reload_dirs"] = list(kwargs["reload_dirs"]) or None
    kwargs["reload_includes"] = list(kwargs["reload_includes"]) or None
    kwargs["reload_excludes"] = list(kwargs["reload_excludes"]) or None
    kwargs["static"] = list(kwargs["static"]) or None
    kwargs["static_max_age"] = list(kwargs["static_max_age"]) or None
    if kwargs["log_config"] is None:
        kwargs["log_config"] = LOGGING_CONFIG
    if kwargs["workers"] is not None and kwargs["workers"] < 1:
        # uvicorn runs one process for 0 or -1; a typo should not pass silently.
        raise click.BadParameter(
            f"{kwargs['workers']} is not a number of worker processes (1 or more).",
            param_hint="'--workers'",
        )
    # The command owns the process (and its workers, which inherit the environment): the
    # core may tune glibc's malloc for it, unless the user said otherwise.
    os.environ.setdefault(MALLOC_TUNING_ENV, "1")
    try:
        run(**kwargs)
    except InvalidSetting as exc:
        # Raised by Config before anything starts (a bad WEB_CONCURRENCY, say).
        raise click.UsageError(str(exc)) from None


def _note_ignored_selectors(config: Config) -> None:
    # uvicorn chooses between protocol implementations with these; Sandman has one of each,
    # in its Rust core. Accept uvicorn's values (so command lines keep working) and say so.
    if config.http in HTTP1_ONLY:
        logger.info(
            "--http %s: Sandman uses its own HTTP/1.1 implementation, with HTTP/2 off.",
            config.http,
        )
        if config.http2:
            logger.warning("--http2 has no effect with --http %s: HTTP/1.1 only.", config.http)
    elif isinstance(config.http, str) and config.http != "auto":
        logger.info(
            "--http %s has no effect: Sandman always uses its own HTTP/1.1 and HTTP/2.",
            config.http,
        )
    elif config.http2:
        logger.info("--http2: HTTP/2 is on by default in Sandman (h2 by ALPN, h2c by preface).")
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
    """Run ``app`` (an ASGI app or an import string) until it is stopped, as
    ``uvicorn.run()`` does: same keywords, same defaults, same exit statuses. The
    keywords from ``header_read_timeout`` on are Sandman's own (see ``Config``)."""
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
