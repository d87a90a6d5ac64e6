"""The ``tls`` scope extension ([TLS] tls.rst) and the scope over TLS, on a server that
serves a certificate made for the run: over HTTP/1.1 (ALPN "http/1.1") and over h2 (ALPN
"h2"). No client certificate is sent (so the client-certificate keys have their empty
values); servers whose TLS options the suite does not know report "n/a"."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

from compat import plans
from compat.checks.base import H2, HTTP11_TLS, TLS, WWW, NotAdvertised, Strength, check, expect
from compat.context import CheckContext
from compat.harness.certs import pem_to_der

MUST = Strength.MUST

# TLS versions as the extension reports them (the protocol's own numbers).
TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
MANDATORY = ("server_cert", "tls_version", "cipher_suite")


def cipher_number(name: str) -> int | None:
    """The 16-bit IANA number of an OpenSSL cipher name (``None`` if unknown here)."""
    for cipher in ssl.create_default_context().get_ciphers():
        if cipher["name"] == name:
            return int(cipher["id"]) & 0xFFFF
    return None


def tls_session(ctx: CheckContext, h2: bool) -> dict[str, Any]:
    """A request over TLS: its scope and what the client saw of the TLS session."""

    def make() -> dict[str, Any]:
        plan = [plans.h2_drain(), *plans.respond()]
        if h2:
            exchange = ctx.http2(plan, tls=True)
            sock = exchange.client.sock
        else:
            exchange = ctx.http(plan, tls=True, keep_open=True)
            sock = exchange.conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        scope = ctx.trace(exchange.token).scope
        expect(isinstance(scope, dict), "no scope recorded")
        cipher = sock.cipher()
        return {
            "scope": scope,
            "version": TLS_VERSIONS.get(sock.version() or ""),
            "cipher": cipher_number(cipher[0]) if cipher else None,
            "cert": sock.getpeercert(binary_form=True),
            "alpn": sock.selected_alpn_protocol(),
        }

    return ctx.cached(f"tls-session:{h2}", make)


def tls_extension(ctx: CheckContext, h2: bool) -> dict[str, Any]:
    scope = tls_session(ctx, h2)["scope"]
    extensions = ctx.extensions(scope)
    if "tls" not in extensions:
        raise NotAdvertised(f"tls not in extensions {sorted(extensions)} on a TLS connection")
    value = extensions["tls"]
    expect(isinstance(value, dict), f"tls is {value!r}")
    return value


def optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def optional_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def keys_and_types(ctx: CheckContext, h2: bool) -> str:
    tls = tls_extension(ctx, h2)
    missing = [k for k in MANDATORY if k not in tls]
    expect(not missing, f"mandatory keys missing: {missing} (tls is {sorted(tls)})")
    expect(optional_str(tls["server_cert"]), f"server_cert is {type(tls['server_cert'])}")
    for key in ("tls_version", "cipher_suite"):
        expect(optional_int(tls[key]), f"{key} is {tls[key]!r}")
    suite = tls["cipher_suite"]
    expect(suite is None or 0 <= suite <= 0xFFFF, f"cipher_suite {suite} is not 16-bit")
    chain = tls.get("client_cert_chain", [])
    expect(
        isinstance(chain, Iterable) and not isinstance(chain, (str, bytes)),
        f"client_cert_chain is {chain!r}",
    )
    expect(all(isinstance(c, str) for c in chain), f"client_cert_chain holds {chain!r}")
    for key in ("client_cert_name", "client_cert_error"):
        expect(optional_str(tls.get(key)), f"{key} is {tls.get(key)!r}")
    return f"keys {sorted(tls)}"


def values_match(ctx: CheckContext, h2: bool) -> str:
    session = tls_session(ctx, h2)
    tls = tls_extension(ctx, h2)
    cert = tls.get("server_cert")
    if cert is not None:
        try:
            same = pem_to_der(cert) == session["cert"]
        except ValueError as exc:
            same = False
            cert = f"unreadable PEM ({exc})"
        expect(same, "server_cert is not the certificate the server presented")
    version = tls.get("tls_version")
    expect(
        version is None or version == session["version"],
        f"tls_version {version!r}, negotiated {session['version']!r}",
    )
    suite = tls.get("cipher_suite")
    expect(
        suite is None or session["cipher"] is None or suite == session["cipher"],
        f"cipher_suite {suite!r}, negotiated {session['cipher']!r}",
    )
    chain = list(tls.get("client_cert_chain", []))
    expect(chain == [], f"client_cert_chain {chain!r} with no client certificate")
    for key in ("client_cert_name", "client_cert_error"):
        expect(tls.get(key) is None, f"{key} is {tls.get(key)!r} with no client certificate")
    return f"tls_version {version!r}, cipher_suite {suite!r}"


@check(
    "http.scope.scheme_tls",
    "scheme is 'https' for a request over TLS",
    f"{WWW} HTTP Connection Scope (default 'http' would be wrong)",
    MUST,
    protocol=HTTP11_TLS,
)
def scheme_tls(ctx: CheckContext) -> None:
    scope = tls_session(ctx, h2=False)["scope"]
    expect(scope.get("scheme") == "https", f"scheme is {scope.get('scheme')!r}")
    expect(scope.get("http_version") == "1.1", f"http_version {scope.get('http_version')!r}")


@check(
    "extensions.tls.keys",
    "over TLS (HTTP/1.1), tls has server_cert, tls_version, cipher_suite and the optional "
    "client keys, with the spec's types",
    f"{TLS} TLS Connection Scope",
    MUST,
    protocol=HTTP11_TLS,
)
def keys_http11(ctx: CheckContext) -> str:
    return keys_and_types(ctx, h2=False)


@check(
    "extensions.tls.values",
    "over TLS (HTTP/1.1), tls names the certificate, version and cipher suite in use, and "
    "no client certificate",
    f"{TLS} TLS Connection Scope",
    MUST,
    protocol=HTTP11_TLS,
)
def values_http11(ctx: CheckContext) -> str:
    return values_match(ctx, h2=False)


@check(
    "extensions.h2.tls_keys",
    "over h2 (TLS, ALPN), tls has server_cert, tls_version, cipher_suite and the optional "
    "client keys, with the spec's types",
    f"{TLS} TLS Connection Scope",
    MUST,
    protocol=H2,
)
def keys_h2(ctx: CheckContext) -> str:
    return keys_and_types(ctx, h2=True)


@check(
    "extensions.h2.tls_values",
    "over h2 (TLS, ALPN), tls names the certificate, version and cipher suite in use, and "
    "no client certificate",
    f"{TLS} TLS Connection Scope",
    MUST,
    protocol=H2,
)
def values_h2(ctx: CheckContext) -> str:
    return values_match(ctx, h2=True)
