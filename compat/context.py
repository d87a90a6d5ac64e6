"""What a check function gets: the running server and helpers to talk to it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat.checks.base import Fail
from compat.harness.endpoint import Endpoint
from compat.harness.launch import Launcher, RunningServer
from compat.harness.records import RecordStore, Trace
from compat.harness.wire import Connection, Response, build_request
from compat.harness.ws import WebSocket, connect
from compat.probe.plan import pack_plan


@dataclass
class Exchange:
    """One request the check made: what went out, what came back, and its token."""

    token: str
    request: bytes
    responses: list[Response] = field(default_factory=list)
    conn: Connection | None = None

    @property
    def response(self) -> Response:
        return self.responses[-1]


class CheckContext:
    """Per-check view of a server run. ``shared`` is a cache kept for the whole target (so
    checks can reuse one recorded baseline request), ``scenarios`` one kept for the profile."""

    def __init__(
        self,
        server: RunningServer | None,
        launcher: Launcher,
        shared: dict[str, Any],
        scenarios: dict[str, Any],
        workdir: Path,
    ) -> None:
        self.server = server
        self.launcher = launcher
        self.shared = shared
        self.scenarios = scenarios
        self.workdir = workdir
        self.exchanges: list[Exchange] = []
        self.connections: list[Connection] = []

    # -- plumbing --------------------------------------------------------------------------

    @property
    def records(self) -> RecordStore:
        assert self.server is not None
        return self.server.records

    @property
    def endpoint(self) -> Endpoint:
        assert self.server is not None
        return self.server.endpoint

    @staticmethod
    def token() -> str:
        return uuid.uuid4().hex[:16]

    def connection(self, timeout: float = 5.0) -> Connection:
        """A new raw connection, closed when the check ends."""
        conn = Connection(self.endpoint, timeout)
        self.connections.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.connections:
            conn.close()

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per server run (failures are cached too, and re-raised)."""
        if key not in self.shared:
            try:
                self.shared[key] = (True, make())
            except Exception as exc:  # replayed to every check that asks
                self.shared[key] = (False, exc)
        ok, value = self.shared[key]
        if not ok:
            raise value
        return value

    def scenario(self, key: str, run: Callable[[], Any]) -> Any:
        """Like ``cached`` but kept across targets: lifespan scenarios start their own
        server once and several checks read the outcome."""
        if key not in self.scenarios:
            try:
                self.scenarios[key] = (True, run())
            except Exception as exc:  # replayed to every check that asks
                self.scenarios[key] = (False, exc)
        ok, value = self.scenarios[key]
        if not ok:
            raise value
        return value

    # -- requests ----------------------------------------------------------------------------

    def request_bytes(
        self,
        plan: list[list[Any]] | None,
        token: str,
        method: str = "GET",
        target: str = "/",
        headers: list[tuple[str, str | bytes]] | None = None,
        body: bytes = b"",
        version: str = "HTTP/1.1",
        host: str | None = "",
        content_length: bool = True,
    ) -> bytes:
        fields: list[tuple[str, str | bytes]] = [("X-Compat-Token", token)]
        if plan is not None:
            fields.append(("X-Compat-Plan", pack_plan(plan)))
        fields += headers or []
        authority = self.endpoint.authority if host == "" else host
        return build_request(method, target, fields, body, version, authority, content_length)

    def http(
        self,
        plan: list[list[Any]],
        method: str = "GET",
        target: str = "/",
        headers: list[tuple[str, str | bytes]] | None = None,
        body: bytes = b"",
        version: str = "HTTP/1.1",
        timeout: float = 5.0,
        keep_open: bool = False,
    ) -> Exchange:
        """Send one request on a new connection and read up to its final response."""
        token = self.token()
        raw = self.request_bytes(plan, token, method, target, headers, body, version)
        conn = self.connection(timeout)
        exchange = Exchange(token, raw, conn=conn)
        self.exchanges.append(exchange)
        conn.send(raw)
        exchange.responses = conn.read_final(method, timeout)
        if not keep_open:
            conn.close()
        return exchange

    def trace(self, token: str, timeout: float = 5.0) -> Trace:
        """The records of ``token`` once the app call has ended (or after ``timeout``)."""
        return self.records.wait_end(token, timeout)

    def websocket(
        self,
        plan: list[list[Any]],
        target: str = "/ws",
        headers: list[tuple[str, str | bytes]] | None = None,
        timeout: float = 5.0,
    ) -> tuple[Exchange, WebSocket | None, float]:
        """Open a WebSocket whose app runs ``plan``: the exchange (with the handshake
        response), the socket when the server answered 101, and the handshake time."""
        token = self.token()
        fields: list[tuple[str, str | bytes]] = [
            ("X-Compat-Token", token),
            ("X-Compat-Plan", pack_plan(plan)),
            *(headers or []),
        ]
        conn = self.connection(timeout)
        exchange = Exchange(token, b"", conn=conn)
        self.exchanges.append(exchange)
        exchange.request, response, ws, elapsed = connect(
            conn, target, self.endpoint.authority, fields
        )
        exchange.responses = [response]
        return exchange, ws, elapsed

    # -- what the server claims ------------------------------------------------------------

    def baseline(self) -> dict[str, Any]:
        """The scope of a plain GET, recorded once per server run."""

        def make() -> dict[str, Any]:
            from compat import plans

            exchange = self.http([plans.drain(), *plans.respond()])
            scope = self.trace(exchange.token).scope
            if not isinstance(scope, dict):
                raise Fail(f"the probe app recorded no scope (response {exchange.response!r})")
            return scope

        return self.cached("baseline", make)

    def spec_version(self, scope: dict[str, Any] | None = None) -> tuple[int, int]:
        """The HTTP/WebSocket spec version the scope advertises ("2.0" when missing)."""
        scope = scope if scope is not None else self.baseline()
        asgi = scope.get("asgi")
        text = asgi.get("spec_version", "2.0") if isinstance(asgi, dict) else "2.0"
        return parse_version(text)

    def extensions(self, scope: dict[str, Any] | None = None) -> dict[str, Any]:
        scope = scope if scope is not None else self.baseline()
        ext = scope.get("extensions")
        return ext if isinstance(ext, dict) else {}


def parse_version(text: Any) -> tuple[int, int]:
    """``"2.4"`` -> ``(2, 4)``; anything unreadable counts as ``(2, 0)``."""
    try:
        major, minor = str(text).split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return 2, 0
