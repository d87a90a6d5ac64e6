"""atheris fuzz target for the app-message conversion code (issue #7).

Builds a message (usually a dict, nested junk included) from the fuzzer's bytes and runs
``sandman_asgi._core.validate_send`` on it: the exact conversion and validation of
``send()``. It must return the message type or raise ``TypeError``/``ValueError``/
``RuntimeError``; anything else (another exception, a Rust panic surfacing as
``pyo3_runtime.PanicException``, a crash, a hang) is a finding.

Run for a bounded time (libFuzzer flags pass through)::

    pip install atheris
    python fuzz/fuzz_send.py -max_total_time=60

The Rust extension is not built with sanitizer coverage, so libFuzzer's feedback comes from
the Python side (this builder and the type dispatch); see fuzz/README.md for the
instrumented build.
"""

from __future__ import annotations

import sys
from typing import Any

import atheris

# Imported without instrument_imports(): instrumenting the sandman_asgi package (and the
# asyncio it pulls in) makes libFuzzer die on its first input. Coverage feedback comes from
# the builder functions below, instrumented one by one.
from sandman_asgi._core import validate_send

ALLOWED = (TypeError, ValueError, RuntimeError)
KEYS = [
    "type",
    "status",
    "headers",
    "body",
    "more_body",
    "trailers",
    "subprotocol",
    "bytes",
    "text",
    "code",
    "reason",
]
TYPES = [
    "http.response.start",
    "http.response.body",
    "websocket.accept",
    "websocket.send",
    "websocket.close",
    "websocket.http.response.start",
    "websocket.http.response.body",
    "http.response.trailers",
    "lifespan.startup.complete",
]
NAMES = [b"content-length", b"content-type", b"sec-websocket-protocol", b"x-a", b"Set-Cookie"]


class Indexable:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


@atheris.instrument_func
def value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    """One Python value of a fuzzer-chosen kind; containers nest up to depth 3."""
    kind = fdp.ConsumeIntInRange(0, 19 if depth < 3 else 13)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeIntInRange(-(2**16), 2000)
    if kind == 3:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 12))  # up to 96-bit ints, signed
    if kind == 4:
        return fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else fdp.ConsumeFloat()
    if kind == 5:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 64))  # includes lone surrogates
    if kind == 6:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
    if kind == 7:
        return bytearray(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16)))
    if kind == 8:
        raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16))
        return memoryview(raw)[:: fdp.ConsumeIntInRange(1, 3)]
    if kind == 9:
        return fdp.PickValueInList(TYPES)
    if kind == 10:
        return fdp.PickValueInList(NAMES) * fdp.ConsumeIntInRange(1, 3000)
    if kind == 11:
        return Indexable(fdp.ConsumeIntInRange(-5, 5000))
    if kind == 12:
        return (fdp.PickValueInList(NAMES), fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 32)))
    if kind == 13:
        return object()
    count = fdp.ConsumeIntInRange(0, 4)
    items = [value(fdp, depth + 1) for _ in range(count)]
    if kind in (14, 15):
        return items
    if kind == 16:
        return tuple(items)
    if kind == 17:
        return iter(items)
    if kind == 18:
        return {fdp.PickValueInList(KEYS): v for v in items}
    return {str(i): v for i, v in enumerate(items)}


@atheris.instrument_func
def message(fdp: atheris.FuzzedDataProvider) -> Any:
    if fdp.ConsumeIntInRange(0, 15) == 0:
        return value(fdp)  # not a dict at all, now and then
    msg: dict[Any, Any] = {}
    if fdp.ConsumeIntInRange(0, 7):
        msg["type"] = fdp.PickValueInList(TYPES)
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        key = fdp.PickValueInList(KEYS) if fdp.ConsumeIntInRange(0, 5) else value(fdp, 3)
        try:
            msg[key] = value(fdp)
        except TypeError:
            pass  # an unhashable key: skip it
    return msg


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    protocol = "websocket" if fdp.ConsumeBool() else "http"
    msg = message(fdp)
    try:
        result = validate_send(protocol, msg)
    except ALLOWED:
        return
    if not isinstance(result, str) or not isinstance(msg, dict) or result != msg.get("type"):
        raise AssertionError(f"validate_send returned {result!r} for {msg!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
