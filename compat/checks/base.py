"""What a check is: a rule, its source and strength, and the function that tests it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compat.context import CheckContext

GROUPS = ("http", "http2", "websocket", "lifespan", "extensions")

# What a check talks to the server: HTTP/1.x on a plain connection, HTTP/1.1 over TLS (ALPN
# "http/1.1"), HTTP/2 by prior knowledge on a plain connection (RFC 9113 §3.3), or HTTP/2
# over TLS chosen by ALPN "h2" (RFC 9113 §3.2).
HTTP11 = "http/1.1"
HTTP11_TLS = "http/1.1+tls"
H2C = "h2c"
H2 = "h2"
PROTOCOLS = (HTTP11, HTTP11_TLS, H2C, H2)

# Spec files of django/asgiref's specs/ folder, as the check sources name them
# (compat/README.md).
ASGI = "asgi.rst"
WWW = "www.rst"
LS = "lifespan.rst"
EXT = "extensions.rst"
TLS = "tls.rst"
RFC9113 = "RFC 9113"  # HTTP/2
RFC8441 = "RFC 8441"  # WebSockets over HTTP/2 (extended CONNECT)


class Strength(str, Enum):
    MUST = "MUST"
    SHOULD = "SHOULD"
    DE_FACTO = "de facto"


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_ADVERTISED = "not advertised"  # an extension or spec version the server does not claim
    UNSUPPORTED = "unsupported"  # the whole protocol is missing (no WebSocket, no lifespan)
    NOT_APPLICABLE = "n/a"  # cannot be run for this server (e.g. no unix-socket flag known)
    ERROR = "error"  # the check itself timed out or broke
    CRASH = "crash"  # the server process died


@dataclass(frozen=True)
class Target:
    """The server set-up a check needs. Checks with the same target share one process."""

    name: str
    app: str = "compat.probe.app:app"
    root_path: str | None = None
    uds: bool = False
    own: bool = False  # the check starts and stops its own servers (lifespan scenarios)
    tls: bool = False  # the server listens with TLS (a certificate made for the run)
    http2: bool = False  # started with the profile's options that turn HTTP/2 on


MAIN = Target("main")
ROOT_PATH = Target("root-path", root_path="/mnt")
UDS = Target("unix-socket", uds=True)
LEGACY = Target("asgi2", app="compat.probe.app:legacy_app")
LIFECYCLE = Target("lifecycle", own=True)
H2C_TARGET = Target("h2c", http2=True)
TLS_TARGET = Target("tls", tls=True, http2=True)  # serves both ALPN protocols

# Where a check runs unless it names its own target.
DEFAULT_TARGET = {HTTP11: MAIN, HTTP11_TLS: TLS_TARGET, H2C: H2C_TARGET, H2: TLS_TARGET}


class Outcome(Exception):
    """Raised by a check to end with a status other than pass."""

    status = Status.FAIL

    def __init__(self, detail: str, evidence: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.evidence = evidence


class Fail(Outcome):
    status = Status.FAIL


class NotAdvertised(Outcome):
    status = Status.NOT_ADVERTISED


class Unsupported(Outcome):
    status = Status.UNSUPPORTED


class NotApplicable(Outcome):
    status = Status.NOT_APPLICABLE


@dataclass(frozen=True)
class Check:
    id: str
    group: str
    title: str
    source: str
    strength: Strength
    target: Target
    timeout: float
    func: Callable[[CheckContext], str | None] = field(compare=False, repr=False)
    protocol: str = HTTP11  # what the check talks to the server (PROTOCOLS)


REGISTRY: list[Check] = []


def check(
    id: str,
    title: str,
    source: str,
    strength: Strength,
    target: Target | None = None,
    timeout: float = 10.0,
    protocol: str = HTTP11,
) -> Callable[[Callable[[CheckContext], str | None]], Callable[[CheckContext], str | None]]:
    """Register a check. The function returns an optional detail string on success and
    raises an ``Outcome`` (or anything else, which counts as an error) otherwise. Without a
    ``target`` the check runs on the server set up for its ``protocol``."""
    group = id.split(".", 1)[0]
    if group not in GROUPS:
        raise ValueError(f"check id {id!r} must start with one of {GROUPS}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"check {id!r}: protocol {protocol!r} is not one of {PROTOCOLS}")
    where = target if target is not None else DEFAULT_TARGET[protocol]

    def register(func: Callable[[CheckContext], str | None]) -> Callable[..., Any]:
        if any(c.id == id for c in REGISTRY):
            raise ValueError(f"duplicate check id {id!r}")
        REGISTRY.append(Check(id, group, title, source, strength, where, timeout, func, protocol))
        return func

    return register


def expect(condition: object, detail: str) -> None:
    """Fail the check with ``detail`` unless ``condition`` holds."""
    if not condition:
        raise Fail(detail)


def select(
    checks: list[Check], only: list[str] | None, protocols: list[str] | None = None
) -> list[Check]:
    """The checks in the given groups (all when ``only`` is empty); also accepts ids or id
    prefixes such as ``http.scope``. ``protocols`` keeps the checks run over those only."""
    chosen = list(checks)
    if only:
        # A group name is a group ("http" is not "http2"); anything else an id prefix.
        chosen = [
            c
            for c in chosen
            if any(c.group == o if o in GROUPS else c.id.startswith(o) for o in only)
        ]
    if protocols:
        chosen = [c for c in chosen if c.protocol in protocols]
    return chosen
