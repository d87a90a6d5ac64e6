"""The HTTP connection scope ([WWW] "HTTP Connection Scope"; checklist §1.0-§1.1)."""

from __future__ import annotations

from typing import Any

from compat import plans
from compat.checks.base import (
    ASGI,
    LEGACY,
    ROOT_PATH,
    UDS,
    WWW,
    Fail,
    NotAdvertised,
    Strength,
    check,
    expect,
)
from compat.context import CheckContext

MUST, SHOULD, DE_FACTO = Strength.MUST, Strength.SHOULD, Strength.DE_FACTO

# One request exercises most scope rules: escapes and UTF-8 in the path, a query string
# that must stay encoded, mixed-case and repeated header names, an exact header value.
TARGET = "/compat/caf%C3%A9/a%20b?x=%20y&z=caf%C3%A9&e="
HEADERS: list[tuple[str, str | bytes]] = [
    ("X-Compat-Mixed", b'Value; q="1", \xe9t\xe9'),
    ("x-compat-dup", "one"),
    ("X-Other", "between"),
    ("X-Compat-Dup", "two"),
]
SPEC_VERSIONS = ("2.0", "2.1", "2.2", "2.3", "2.4", "2.5")


def rich_scope(ctx: CheckContext) -> tuple[dict[str, Any], int]:
    """The scope of the rich request above, and the client's local port."""

    def make() -> tuple[dict[str, Any], int]:
        exchange = ctx.http(
            [plans.drain(), *plans.respond()], target=TARGET, headers=HEADERS, keep_open=True
        )
        assert exchange.conn is not None
        local_port = exchange.conn.sock.getsockname()[1]
        scope = ctx.trace(exchange.token).scope
        if not isinstance(scope, dict):
            raise Fail("no scope recorded")
        return scope, local_port

    return ctx.cached("rich-scope", make)


def headers_of(scope: dict[str, Any]) -> list[Any]:
    headers = scope.get("headers")
    expect(headers is not None, "scope has no 'headers'")
    return list(headers)


def named(headers: list[Any], name: bytes) -> list[Any]:
    return [h for h in headers if isinstance(h[0], bytes) and h[0].lower() == name]


@check(
    "http.scope.dict",
    "the scope is a dict whose keys are all str",
    f"{ASGI} Connection Scope; Events",
    MUST,
)
def scope_dict(ctx: CheckContext) -> None:
    scope = ctx.baseline()
    expect(isinstance(scope, dict), f"scope is a {type(scope).__name__}")
    bad = [k for k in scope if not isinstance(k, str)]
    expect(not bad, f"non-str keys {bad!r}")


@check("http.scope.type", "scope['type'] is 'http'", f"{WWW} HTTP Connection Scope", MUST)
def scope_type(ctx: CheckContext) -> None:
    kind = ctx.baseline().get("type")
    expect(kind == "http", f"type is {kind!r}")


@check(
    "http.scope.asgi_version",
    "scope['asgi'] is a dict with version '3.0' (for an ASGI 3 app)",
    f"{ASGI} Connection Scope; Legacy Applications",
    MUST,
)
def asgi_version(ctx: CheckContext) -> str:
    asgi = ctx.baseline().get("asgi")
    expect(isinstance(asgi, dict), f"asgi is {asgi!r}")
    expect(asgi.get("version") == "3.0", f"asgi version is {asgi.get('version')!r}")
    return f"asgi={asgi!r}"


@check(
    "http.scope.spec_version",
    "asgi['spec_version'], if present, is a str naming an HTTP spec version (2.0-2.5)",
    f"{WWW} Spec Versions",
    MUST,
)
def spec_version(ctx: CheckContext) -> str:
    asgi = ctx.baseline().get("asgi") or {}
    if "spec_version" not in asgi:
        return "absent (means 2.0)"
    value = asgi["spec_version"]
    expect(value in SPEC_VERSIONS, f"spec_version is {value!r}")
    return f"spec_version={value}"


@check(
    "http.scope.http_version_11",
    "http_version is '1.1' for an HTTP/1.1 request",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def http_version_11(ctx: CheckContext) -> None:
    value = ctx.baseline().get("http_version")
    expect(value == "1.1", f"http_version is {value!r}")


@check(
    "http.scope.http_version_10",
    "http_version is '1.0' for an HTTP/1.0 request",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def http_version_10(ctx: CheckContext) -> None:
    exchange = ctx.http([plans.drain(), *plans.respond()], version="HTTP/1.0")
    scope = ctx.trace(exchange.token).scope or {}
    value = scope.get("http_version")
    expect(value == "1.0", f"http_version is {value!r}")


@check(
    "http.scope.method",
    "method is the request method as a str",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def method(ctx: CheckContext) -> None:
    exchange = ctx.http([plans.drain(), *plans.respond()], method="DELETE")
    value = (ctx.trace(exchange.token).scope or {}).get("method")
    expect(value == "DELETE", f"method is {value!r}")


@check(
    "http.scope.scheme",
    "scheme, if present, is 'http' on a plaintext connection",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def scheme(ctx: CheckContext) -> str:
    scope = ctx.baseline()
    if "scheme" not in scope:
        return "absent (means 'http')"
    expect(scope["scheme"] == "http", f"scheme is {scope['scheme']!r}")
    return ""


@check(
    "http.scope.path",
    "path is percent-decoded and UTF-8 decoded, without the query string",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def path(ctx: CheckContext) -> None:
    value = rich_scope(ctx)[0].get("path")
    expect(value == "/compat/café/a b", f"path is {value!r} for {TARGET!r}")


@check(
    "http.scope.raw_path",
    "raw_path, if present, is the path bytes as received, without the query string",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def raw_path(ctx: CheckContext) -> str:
    scope = rich_scope(ctx)[0]
    if scope.get("raw_path") is None:
        return "absent (optional)"
    value = scope["raw_path"]
    expect(value == b"/compat/caf%C3%A9/a%20b", f"raw_path is {value!r} for {TARGET!r}")
    return ""


@check(
    "http.scope.query_string",
    "query_string is the bytes after '?', still percent-encoded; b'' when there is none",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def query_string(ctx: CheckContext) -> None:
    value = rich_scope(ctx)[0].get("query_string")
    expect(value == b"x=%20y&z=caf%C3%A9&e=", f"query_string is {value!r} for {TARGET!r}")
    empty = ctx.baseline().get("query_string")
    expect(empty == b"", f"query_string is {empty!r} for a request without '?'")


@check(
    "http.scope.root_path_default",
    "root_path, if present, is '' when no root path is configured",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def root_path_default(ctx: CheckContext) -> str:
    scope = ctx.baseline()
    if "root_path" not in scope:
        return "absent (means '')"
    expect(scope["root_path"] == "", f"root_path is {scope['root_path']!r}")
    return ""


@check(
    "http.scope.headers_types",
    "headers is an iterable of [name, value] pairs, both bytes",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def headers_types(ctx: CheckContext) -> None:
    for pair in headers_of(rich_scope(ctx)[0]):
        expect(
            isinstance(pair, (list, tuple)) and len(pair) == 2,
            f"header entry {pair!r} is not a pair",
        )
        expect(
            isinstance(pair[0], bytes) and isinstance(pair[1], bytes),
            f"header {pair!r} is not (bytes, bytes)",
        )


@check(
    "http.scope.headers_values",
    "header values are exactly the bytes the client sent",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def headers_values(ctx: CheckContext) -> None:
    found = named(headers_of(rich_scope(ctx)[0]), b"x-compat-mixed")
    expect(found, "x-compat-mixed header missing")
    value = found[0][1]
    expect(value == HEADERS[0][1], f"value is {value!r}, sent {HEADERS[0][1]!r}")


@check(
    "http.scope.headers_duplicates",
    "repeated header names stay separate entries, in the order received",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def headers_duplicates(ctx: CheckContext) -> None:
    values = [v for _, v in named(headers_of(rich_scope(ctx)[0]), b"x-compat-dup")]
    expect(values == [b"one", b"two"], f"x-compat-dup values are {values!r}")


@check(
    "http.scope.headers_lowercase",
    "header names are lowercased",
    f"{WWW} HTTP Connection Scope (SHOULD; every major server does)",
    SHOULD,
)
def headers_lowercase(ctx: CheckContext) -> None:
    names = [h[0] for h in headers_of(rich_scope(ctx)[0])]
    upper = [n for n in names if isinstance(n, bytes) and n != n.lower()]
    expect(not upper, f"names not lowercased: {upper!r}")


@check(
    "http.scope.client",
    "client is [host: str, port: int] naming the connecting socket",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def client(ctx: CheckContext) -> str:
    scope, local_port = rich_scope(ctx)
    value = scope.get("client")
    if value is None:
        return "absent (optional)"
    expect(isinstance(value, (list, tuple)) and len(value) == 2, f"client is {value!r}")
    host, port = value
    expect(isinstance(host, str), f"client host is {type(host).__name__}: {value!r}")
    expect(isinstance(port, int) and not isinstance(port, bool), f"client port: {port!r}")
    expect(host == "127.0.0.1" and port == local_port, f"client {value!r}, was {local_port}")
    return ""


@check(
    "http.scope.server",
    "server is [host: str, port: int] naming the listening socket",
    f"{WWW} HTTP Connection Scope",
    MUST,
)
def server(ctx: CheckContext) -> str:
    value = ctx.baseline().get("server")
    if value is None:
        return "absent (optional)"
    expect(isinstance(value, (list, tuple)) and len(value) == 2, f"server is {value!r}")
    host, port = value
    expect(isinstance(host, str), f"server host is {type(host).__name__}: {value!r}")
    expect(isinstance(port, int) and not isinstance(port, bool), f"server port: {port!r}")
    expect(port == ctx.endpoint.port, f"server {value!r}, listening on {ctx.endpoint.port}")
    return ""


@check(
    "http.scope.server_unix",
    "on a unix socket, server is [socket path, None] (spec 2.2+)",
    f"{WWW} HTTP Connection Scope; Spec Versions",
    MUST,
    target=UDS,
)
def server_unix(ctx: CheckContext) -> str:
    scope = ctx.baseline()
    value = scope.get("server")
    if value is None:
        return "absent (optional)"
    if ctx.spec_version(scope) < (2, 2):
        raise NotAdvertised(f"spec_version < 2.2; server is {value!r}")
    ok = isinstance(value, (list, tuple)) and list(value) == [ctx.endpoint.uds, None]
    expect(ok, f"server is {value!r}, want [{ctx.endpoint.uds!r}, None]")
    return ""


@check(
    "http.scope.fresh_per_request",
    "a change an app makes to scope['extensions'] or scope['asgi'] is not seen by the next "
    "request (no shared mutable objects between scopes)",
    f"{ASGI} Middleware",
    SHOULD,
)
def fresh_per_request(ctx: CheckContext) -> None:
    first = ctx.http([plans.drain(), plans.mutate("leaked"), *plans.respond()])
    ctx.trace(first.token)
    second = ctx.http([plans.drain(), *plans.respond()])
    scope = ctx.trace(second.token).scope or {}
    leaks = [
        key
        for key in ("extensions", "asgi")
        if isinstance(scope.get(key), dict) and "compat.leak" in scope[key]
    ]
    expect(
        not leaks, f"scope[{leaks[0]!r}] of the next request carries the change" if leaks else ""
    )


@check(
    "http.scope.root_path",
    "a configured root path is reported in root_path",
    f"{WWW} HTTP Connection Scope",
    MUST,
    target=ROOT_PATH,
)
def root_path(ctx: CheckContext) -> None:
    value = ctx.baseline().get("root_path")
    expect(value == "/mnt", f"root_path is {value!r} with root path '/mnt' configured")


@check(
    "http.scope.path_includes_root_path",
    "path includes root_path (request /x under root path /mnt -> path '/mnt/x')",
    f"{WWW} WSGI Compatibility (asgiref #229; a GAP, uvicorn's reading)",
    DE_FACTO,
    target=ROOT_PATH,
)
def path_includes_root(ctx: CheckContext) -> None:
    exchange = ctx.http([plans.drain(), *plans.respond()], target="/x")
    scope = ctx.trace(exchange.token).scope or {}
    value = scope.get("path")
    expect(value == "/mnt/x", f"path is {value!r} (root_path {scope.get('root_path')!r})")


@check(
    "http.legacy_asgi2",
    "a legacy ASGI 2 (double-callable) app is served",
    f"{ASGI} Legacy Applications",
    SHOULD,
    target=LEGACY,
)
def legacy(ctx: CheckContext) -> str:
    exchange = ctx.http([plans.drain(), *plans.respond(b"legacy")])
    response = exchange.response
    expect(
        response.status == 200 and response.body == b"legacy",
        f"got {response.status_line!r} {response.body[:80]!r}",
    )
    scope = ctx.trace(exchange.token).scope or {}
    return f"asgi={scope.get('asgi')!r}"
