"""What a check is: a rule, its source and strength, and the function that tests it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compat.context import CheckContext

GROUPS = ("http", "websocket", "lifespan", "extensions")

# Spec files of django/asgiref's specs/ folder, as the check sources name them
# (compat/README.md).
ASGI = "asgi.rst"
WWW = "www.rst"
LS = "lifespan.rst"
EXT = "extensions.rst"
TLS = "tls.rst"


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


MAIN = Target("main")
ROOT_PATH = Target("root-path", root_path="/mnt")
UDS = Target("unix-socket", uds=True)
LEGACY = Target("asgi2", app="compat.probe.app:legacy_app")
LIFECYCLE = Target("lifecycle", own=True)


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


REGISTRY: list[Check] = []


def check(
    id: str,
    title: str,
    source: str,
    strength: Strength,
    target: Target = MAIN,
    timeout: float = 10.0,
) -> Callable[[Callable[[CheckContext], str | None]], Callable[[CheckContext], str | None]]:
    """Register a check. The function returns an optional detail string on success and
    raises an ``Outcome`` (or anything else, which counts as an error) otherwise."""
    group = id.split(".", 1)[0]
    if group not in GROUPS:
        raise ValueError(f"check id {id!r} must start with one of {GROUPS}")

    def register(func: Callable[[CheckContext], str | None]) -> Callable[..., Any]:
        if any(c.id == id for c in REGISTRY):
            raise ValueError(f"duplicate check id {id!r}")
        REGISTRY.append(Check(id, group, title, source, strength, target, timeout, func))
        return func

    return register


def expect(condition: object, detail: str) -> None:
    """Fail the check with ``detail`` unless ``condition`` holds."""
    if not condition:
        raise Fail(detail)


def select(checks: list[Check], only: list[str] | None) -> list[Check]:
    """The checks in the given groups (all when ``only`` is empty); also accepts ids or id
    prefixes such as ``http.scope``."""
    if not only:
        return list(checks)
    return [c for c in checks if any(c.group == o or c.id.startswith(o) for o in only)]
