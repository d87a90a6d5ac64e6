"""What the Rust core is started with: one typed object, read field by field by
``sandman_core/src/asgi/convert/settings.rs`` (a wrong type is a ``TypeError`` naming the
field). ``Server`` builds it from a ``Config``; nothing else needs to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TlsSettings:
    """The ``--ssl-*`` options, checked and loaded by rustls in the core."""

    certfile: str
    keyfile: str | None
    password: str | None
    ca_certs: str | None
    cert_reqs: int
    version: int
    ciphers: str | None


@dataclass(frozen=True)
class StaticMount:
    """One ``--static PREFIX=DIRECTORY`` mount, served by the core without the app."""

    prefix: str
    directory: str
    max_age: int | None
    index: bool


@dataclass(frozen=True)
class RequestTaskHooks:
    """What the core needs from asyncio to start HTTP apps as eager ``RequestTask``s on
    Python 3.11 (see ``sandman_asgi.eager_task``)."""

    enter: Callable[..., Any]
    leave: Callable[..., Any]
    hand_over: Callable[..., Any]
    cancelled_error: type[BaseException]
    invalid_state: type[BaseException]
    name_counter: Any
    weakref_count: Callable[[Any], int]


@dataclass(frozen=True)
class CoreSettings:
    """Everything ``sandman_asgi._core.start_server`` takes."""

    # The event loop and the callables the core calls on it.
    event_loop: asyncio.AbstractEventLoop
    on_request: Callable[..., Any]
    on_websocket: Callable[..., Any] | None
    on_log: Callable[[int, str], None]
    access_log: Callable[..., None] | None
    ws_log: Callable[..., None] | None
    create_future: Callable[[], asyncio.Future[Any]]
    call_soon: Callable[..., Any]
    create_task: Callable[..., Any]
    task_kwargs: dict[str, Any] | None
    fresh_context: bool
    request_task: RequestTaskHooks | None
    # Scopes.
    state: dict[str, Any]
    root_path: str
    asgi_version: str
    # Responses.
    server_header: bool
    date_header: bool
    headers: list[tuple[bytes, bytes]]
    # Limits and timeouts (seconds).
    limit_concurrency: int | None
    timeout_keep_alive: float
    header_read_timeout: float
    max_head_bytes: int
    max_target: int
    max_headers: int
    max_body: int | None
    body_read_timeout: float | None
    body_min_rate: float | None
    body_rate_grace: float
    max_connections: int | None
    io_threads: int
    # WebSockets.
    ws_max_size: int
    ws_max_queue: int
    ws_ping_interval: float | None
    ws_ping_timeout: float | None
    ws_per_message_deflate: bool
    ws_deflate_window_bits: int
    ws_deflate_context_takeover: bool
    # HTTP/2 (by ALPN under TLS, by its preface on plain connections) and its stream limit.
    http2: bool
    h2_max_concurrent_streams: int
    # Proxies and TLS.
    forwarded_allow_ips: list[str] | None
    tls: TlsSettings | None
    # Process-wide malloc tuning (only when the ``sandman`` command owns the process).
    tune_malloc: bool
    # Answered by the core without the app: static mounts, and the response cache's bound.
    static_mounts: list[StaticMount]
    cache_bytes: int | None
    # Where this process records its metrics (``--metrics-port``): the group's segment and
    # this process's slot in it.
    metrics: tuple[Any, int] | None
