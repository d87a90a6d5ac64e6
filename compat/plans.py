"""Building plans for the probe app (see ``compat.probe.plan``) from the harness side."""

from __future__ import annotations

from typing import Any

from compat.probe.encoding import encode

Step = list[Any]
TEXT_PLAIN = ((b"content-type", b"text/plain"),)


def send(event: dict[str, Any]) -> Step:
    """Send ``event`` exactly as given (wrong types included)."""
    return ["send", encode(event)]


def send_raw(event: dict[str, Any]) -> Step:
    """Send ``event`` and let any exception escape the app."""
    return ["send_raw", encode(event)]


def start(status: Any = 200, headers: Any = TEXT_PLAIN, **extra: Any) -> Step:
    return send(
        {"type": "http.response.start", "status": status, "headers": list(headers), **extra}
    )


def body(data: Any = b"", more: bool = False, **extra: Any) -> Step:
    return send({"type": "http.response.body", "body": data, "more_body": more, **extra})


def respond(data: bytes = b"ok", status: int = 200, headers: Any = TEXT_PLAIN) -> list[Step]:
    """A complete response in one start and one body message."""
    return [start(status, headers), body(data)]


def drain(timeout: float = 5.0) -> Step:
    return ["drain", timeout]


# The HTTP/2 checks' apps wait less for the request body: a server that never delivers
# http.request for a bodyless stream still gets its response out (late) within the
# check's own wait, so one fault does not read as "no answer" everywhere.
H2_DRAIN = 3.0


def h2_drain() -> Step:
    return drain(H2_DRAIN)


def receive(timeout: float = 5.0) -> Step:
    return ["receive", timeout]


def until(event_type: str, timeout: float = 5.0) -> Step:
    return ["until", event_type, timeout]


def sleep(seconds: float) -> Step:
    return ["sleep", seconds]


def mark(name: str) -> Step:
    return ["mark", name]


def wait_file(path: str, timeout: float = 5.0) -> Step:
    return ["wait_file", path, timeout]


def fail() -> Step:
    """Raise ``ProbeFailure`` out of the app."""
    return ["raise"]


def return_value(value: Any) -> Step:
    return ["return", encode(value)]


def mutate(marker: str) -> Step:
    return ["mutate", marker]


def zerocopy(path: str, more: bool = False) -> Step:
    return ["zerocopy", path, more]


def if_extension(name: str, then: list[Step], otherwise: list[Step]) -> Step:
    """Run ``then`` if the scope advertises extension ``name``, else ``otherwise`` (their
    steps are recorded from index ``100 * (i + 1)`` for this step's index ``i``)."""
    return ["if_ext", name, then, otherwise]
