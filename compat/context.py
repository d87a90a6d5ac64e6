"""What a check function gets: the running server and helpers to talk to it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat.checks.base import Fail, Unsupported
from compat.harness.certs import TLSFiles
from compat.harness.endpoint import Endpoint
from compat.harness.h2wire import H2Client, H2Response, NotHTTP2
from compat.harness.launch import Launcher, RunningServer
from compat.harness.records import RecordStore, Trace
from compat.harness.wire import Connection, Response, build_request
from compat.harness.ws import WebSocket, connect
from compat.harness.ws_h2 import H2WebSocket, offers_extended_connect
from compat.probe.plan import pack_plan

PLAN_SHOWN = 24  # characters of the (long, base64) plan header shown in evidence
# How long an HTTP/2 request waits for its stream to end: longer than the apps' H2_DRAIN.
H2_WAIT = 6.0


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

    def evidence(self) -> tuple[str, str]:
        """What was sent and what came back, as text."""
        got = self.conn.received.decode("latin-1") if self.conn is not None else ""
        return self.request.decode("latin-1"), got


@dataclass
class H2Exchange:
    """One request on an HTTP/2 stream: its token, the header block sent, the stream."""

    token: str
    headers: list[tuple[bytes, bytes]]
    client: H2Client
    stream_id: int

    @property
    def response(self) -> H2Response:
        return self.client.streams[self.stream_id]

    def evidence(self) -> tuple[str, str]:
        sent = []
        for name, value in self.headers:
            shown = value[:PLAN_SHOWN] + b"..." if name == b"x-compat-plan" else value
            sent.append(f"{name.decode('latin-1')}: {shown.decode('latin-1')}")
        return f"stream {self.stream_id}: " + "; ".join(sent), self.client.text(self.stream_id)


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
        self.exchanges: list[Exchange | H2Exchange] = []
        self.connections: list[Connection] = []
        self.h2_clients: list[H2Client] = []

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

    @property
    def tls(self) -> TLSFiles:
        """The certificate the server under test serves (TLS targets only)."""
        assert self.server is not None and self.server.tls is not None, "not a TLS target"
        return self.server.tls

    def connection(self, timeout: float = 5.0, tls: bool = False) -> Connection:
        """A new raw connection (with ``tls``: HTTP/1.1 over TLS, ALPN "http/1.1"), closed
        when the check ends."""
        context = self.tls.client_context(["http/1.1"]) if tls else None
        conn = Connection(self.endpoint, timeout, context)
        self.connections.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        for client in self.h2_clients:
            client.close()

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
        tls: bool = False,
    ) -> Exchange:
        """Send one request on a new connection and read up to its final response."""
        token = self.token()
        raw = self.request_bytes(plan, token, method, target, headers, body, version)
        conn = self.connection(timeout, tls)
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

    # -- HTTP/2 ----------------------------------------------------------------------------

    def h2(self, tls: bool = False, timeout: float = 5.0, enable_push: bool = False) -> H2Client:
        """A new HTTP/2 connection, open (preface and SETTINGS exchanged): h2c by prior
        knowledge, or with ``tls`` h2 chosen by ALPN. ``Unsupported`` when the server does
        not speak it; once it has on this server, a non-HTTP/2 answer fails the check."""
        key = f"h2-spoken:{tls}"
        if self.shared.get(key) is False:
            raise Unsupported(self.shared[key + ":why"])
        context = self.tls.client_context(["h2", "http/1.1"]) if tls else None
        client = H2Client(self.endpoint, timeout, context, enable_push)
        self.h2_clients.append(client)
        try:
            if tls and client.alpn != "h2":
                raise NotHTTP2(f"ALPN chose {client.alpn!r} when offered h2 and http/1.1")
            client.open()
        except NotHTTP2 as exc:
            if self.shared.get(key) is True:
                raise Fail(f"no HTTP/2 on this connection: {exc} {exc.raw[:80]!r}") from None
            how = "over TLS (ALPN h2)" if tls else "by prior knowledge (h2c)"
            self.shared[key] = False
            self.shared[key + ":why"] = f"no HTTP/2 {how}: {exc} {exc.raw[:60]!r}"
            raise Unsupported(self.shared[key + ":why"]) from None
        self.shared[key] = True
        return client

    def h2_request_headers(
        self,
        token: str,
        plan: list[list[Any]] | None,
        method: str = "GET",
        target: str = "/",
        headers: list[tuple[str, str | bytes]] | None = None,
        tls: bool = False,
        authority: str | None = None,
        protocol: str | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """A request's header block: pseudo-headers, then the token, plan and ``headers``."""
        fields: list[tuple[bytes, bytes]] = [(b":method", method.encode())]
        if protocol is not None:
            fields.append((b":protocol", protocol.encode()))
        fields += [
            (b":scheme", b"https" if tls else b"http"),
            (b":authority", (authority or self.endpoint.authority).encode()),
            (b":path", target.encode()),
            (b"x-compat-token", token.encode()),
        ]
        if plan is not None:
            fields.append((b"x-compat-plan", pack_plan(plan)))
        for name, value in headers or []:
            raw = value if isinstance(value, bytes) else value.encode("latin-1")
            fields.append((name.lower().encode("latin-1"), raw))
        return fields

    def http2(
        self,
        plan: list[list[Any]] | None,
        method: str = "GET",
        target: str = "/",
        headers: list[tuple[str, str | bytes]] | None = None,
        body: bytes | None = None,
        tls: bool = False,
        timeout: float = H2_WAIT,
        client: H2Client | None = None,
        authority: str | None = None,
        wait: bool = True,
    ) -> H2Exchange:
        """Send one request on a stream (of ``client``, else of a new connection) and, with
        ``wait``, read until the stream ends."""
        client = client if client is not None else self.h2(tls, timeout)
        token = self.token()
        fields = self.h2_request_headers(
            token, plan, method, target, headers, tls, authority=authority
        )
        stream_id = client.request(fields, body, timeout=timeout)
        exchange = H2Exchange(token, fields, client, stream_id)
        self.exchanges.append(exchange)
        if wait:
            client.wait(stream_id, timeout)
        return exchange

    def websocket_h2(
        self,
        plan: list[list[Any]],
        target: str = "/ws",
        headers: list[tuple[str, str | bytes]] | None = None,
        authority: str | None = None,
        timeout: float = H2_WAIT,
    ) -> tuple[H2Exchange, H2WebSocket | None]:
        """Open a WebSocket over HTTP/2 (an extended CONNECT, RFC 8441 §4) whose app runs
        ``plan``: the exchange and, when the server answered 2xx, the socket.
        ``Unsupported`` when the server's SETTINGS do not allow an extended CONNECT."""
        client = self.h2(timeout=timeout)
        if not offers_extended_connect(client):
            raise Unsupported(
                "no WebSockets over HTTP/2: SETTINGS_ENABLE_CONNECT_PROTOCOL not sent "
                f"(RFC 8441 §3; SETTINGS {client.remote_settings})"
            )
        token = self.token()
        fields = self.h2_request_headers(
            token,
            plan,
            "CONNECT",
            target,
            [("sec-websocket-version", "13"), *(headers or [])],
            authority=authority,
            protocol="websocket",
        )
        stream_id = client.request(fields, end_stream=False, timeout=timeout)
        exchange = H2Exchange(token, fields, client, stream_id)
        self.exchanges.append(exchange)
        response = client.wait_headers(stream_id, timeout)
        status = response.status
        if status is None or not 200 <= status < 300:
            return exchange, None
        return exchange, H2WebSocket(client, stream_id)

    def h2_baseline(self, tls: bool = False) -> dict[str, Any]:
        """The scope of a plain GET over HTTP/2, recorded once per server run."""

        def make() -> dict[str, Any]:
            from compat import plans

            exchange = self.http2([plans.h2_drain(), *plans.respond()], tls=tls)
            scope = self.trace(exchange.token).scope
            if not isinstance(scope, dict):
                raise Fail(f"the probe app recorded no scope (stream {exchange.response!r})")
            return scope

        return self.cached(f"h2-baseline:{tls}", make)

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
