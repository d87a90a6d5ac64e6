"""Property-based tests of the app-message conversion code (issue #7 "No panic reachable from
the outside").

``sandman_asgi._core.validate_send(protocol, message)`` runs the exact conversion and
validation of ``send()`` without a connection. Whatever dict (or non-dict) an app passes, it
must return the message type or raise ``TypeError``/``ValueError``/``RuntimeError`` — never a
``SystemError``, a Rust panic (``pyo3_runtime.PanicException``), a crash or a hang. On top of
that contract, a few oracles pin the rules that matter on the wire (status range, header
bytes, close codes, subprotocols).

The end-to-end property at the bottom sends hypothesis-generated message sequences through a
real server and checks that the worker answers the next request. Every ``@settings`` has
``database=None``: no ``.hypothesis/`` directory in the work tree.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sandman_asgi._core import validate_send

from tests.serverproc import ServerProcess, raw_exchange, read_response, sandman

ALLOWED = (TypeError, ValueError, RuntimeError)
# Examples for the main property; tests/hardening/run_long.sh raises it for a long run.
EXAMPLES = int(os.environ.get("SANDMAN_HYPOTHESIS_EXAMPLES", "400"))
HTTP_TYPES = ["http.response.start", "http.response.body"]
WS_TYPES = [
    "websocket.accept",
    "websocket.send",
    "websocket.close",
    "websocket.http.response.start",
    "websocket.http.response.body",
]
OTHER_TYPES = ["http.request", "http.response.trailers", "lifespan.startup.complete", "", "x"]
KEYS = ["type", "status", "headers", "body", "more_body", "trailers", "subprotocol"]
KEYS += ["bytes", "text", "code", "reason"]


# -- strategies -----------------------------------------------------------------------------


class Indexable:
    """An int-like object (``__index__``): PyO3 accepts it where an int is expected."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class StrSub(str):
    pass


class BytesSub(bytes):
    pass


class IntSub(int):
    pass


class DictSub(dict):
    pass


# Any text, lone surrogates included (a str that cannot be encoded to UTF-8).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
huge_bytes = st.builds(
    lambda n, b: b * n, st.integers(1, 70_000), st.binary(min_size=1, max_size=2)
)
bytes_like = st.one_of(
    st.binary(max_size=64),
    huge_bytes,
    st.binary(max_size=16).map(bytearray),
    st.binary(max_size=16).map(memoryview),
    st.binary(min_size=2, max_size=16).map(lambda b: memoryview(b)[::2]),  # non-contiguous
    st.binary(max_size=16).map(BytesSub),
)
ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(0, 1100),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
    st.integers(100, 999).map(IntSub),
    st.integers(-5, 5000).map(Indexable),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    any_text.map(StrSub),
    bytes_like,
    st.just(object()),
    st.just(Ellipsis),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(
            st.one_of(any_text, st.integers(), st.binary(max_size=4)), inner, max_size=4
        ),
        st.lists(inner, max_size=4).map(iter),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=12,
)
header_names = st.one_of(
    st.binary(max_size=20),
    st.sampled_from(
        [b"content-length", b"Content-Type", b"x-a", b"sec-websocket-protocol", b"", b"a b"]
    ),
    st.binary(min_size=1, max_size=5).map(lambda b: b * 20_000),
)
header_values = st.one_of(
    st.binary(max_size=40),
    huge_bytes,
    st.sampled_from([b"a\r\nb", b"a\nb", b"\x00", b"\x7f", b"\t x \t", b"\xff\xfe", b"12", b"+12"]),
)
header_items = st.one_of(
    st.tuples(header_names, header_values),
    st.lists(st.one_of(header_names, header_values), max_size=3),
    st.tuples(any_text, any_text),
    junk,
)
headers = st.one_of(
    st.lists(header_items, max_size=6),
    st.lists(header_items, max_size=6).map(tuple),
    st.lists(header_items, max_size=6).map(iter),
    junk,
)
plausible = {
    "type": st.one_of(st.sampled_from(HTTP_TYPES + WS_TYPES + OTHER_TYPES), any_text, junk),
    "status": st.one_of(ints, junk),
    "headers": headers,
    "body": st.one_of(bytes_like, junk),
    "more_body": junk,
    "trailers": junk,
    "subprotocol": st.one_of(any_text, st.sampled_from(["chat", "a b", "a,b", "é", ""]), junk),
    "bytes": st.one_of(bytes_like, junk),
    "text": st.one_of(any_text, junk),
    "code": st.one_of(ints, junk),
    "reason": st.one_of(any_text, st.text(min_size=100, max_size=400), junk),
}


@st.composite
def messages(draw: st.DrawFn) -> Any:
    """A message dict with a drawn subset of the known keys (plausible or junk values) and
    random extra keys; now and then a dict subclass or not a dict at all."""
    chosen = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=len(KEYS)))
    message = {key: draw(plausible[key]) for key in chosen}
    message.update(draw(st.dictionaries(any_text, junk, max_size=3)))
    shape = draw(st.sampled_from(["dict", "dict", "dict", "dict", "subclass", "not-a-dict"]))
    if shape == "subclass":
        return DictSub(message)
    if shape == "not-a-dict":
        return draw(junk)
    return message


protocols = st.one_of(st.sampled_from(["http", "websocket"]), st.sampled_from(["", "HTTP"]))


def check(protocol: str, message: Any) -> str | BaseException:
    """The contract: the type back, or one of the three exceptions."""
    try:
        result = validate_send(protocol, message)
    except ALLOWED as exc:
        return exc
    assert isinstance(result, str)
    assert isinstance(message, dict) and result == message["type"]
    return result


# -- the contract over arbitrary messages ---------------------------------------------------


@settings(
    max_examples=EXAMPLES, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(protocols, messages())
@example("http", {"type": "http.response.start", "status": 2**70})
@example("websocket", {"type": "websocket.accept", "subprotocol": "\udcff"})
@example("websocket", {"type": "websocket.send", "text": "\ud800"})
@example("websocket", {"type": "websocket.close", "reason": "\udcff" * 200})
@example("http", {"type": "http.response.body", "body": memoryview(b"abcd")[::2]})
def test_validate_send_only_returns_the_type_or_raises_the_three(protocol, message):
    check(protocol, message)


# -- oracles ----------------------------------------------------------------------------------

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
TCHAR = set(TCHARS.encode())
tokens = st.text(TCHARS, min_size=1, max_size=30).map(str.encode)


def valid_value(value: bytes) -> bool:
    """What hyper's HeaderValue takes: visible ASCII, obs-text, SP and HTAB; no CTLs."""
    return all(b == 0x09 or (0x20 <= b != 0x7F) for b in value)


@settings(max_examples=400, database=None, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1))
def test_status_range(status):
    result = check("http", {"type": "http.response.start", "status": status})
    if 200 <= status <= 999:
        assert result == "http.response.start"
    else:
        assert isinstance(result, ValueError), result


@pytest.mark.parametrize("status", [True, False, 200.0, "200", b"200", None, [200]])
def test_status_of_the_wrong_type_is_a_type_error(status):
    assert isinstance(check("http", {"type": "http.response.start", "status": status}), TypeError)


def test_huge_int_status_is_a_value_error():
    assert isinstance(check("http", {"type": "http.response.start", "status": 2**64}), ValueError)


@settings(max_examples=400, database=None, deadline=None)
@given(tokens, st.binary(max_size=60))
def test_header_values_with_ctls_are_refused(name, value):
    assume(name.lower() != b"content-length")
    result = check(
        "http", {"type": "http.response.start", "status": 200, "headers": [(name, value)]}
    )
    if valid_value(value):
        assert result == "http.response.start"
    else:
        assert isinstance(result, ValueError), (value, result)


@settings(max_examples=300, database=None, deadline=None)
@given(st.binary(min_size=0, max_size=30))
def test_header_names_must_be_tokens(name):
    # b"1" is a valid value for every name, content-length included (its value is checked
    # too: with b"v", a generated b"content-length" was rightly refused).
    result = check(
        "http", {"type": "http.response.start", "status": 200, "headers": [(name, b"1")]}
    )
    if name and set(name) <= TCHAR:
        assert result == "http.response.start"
    else:
        assert isinstance(result, ValueError), (name, result)


@pytest.mark.parametrize(
    "make_pair",
    # factories: one iterator object shared by several parametrized runs would be consumed
    # by the first of them
    [lambda: [b"x-a", b"1"], lambda: iter([b"x-a", b"1"])],
    ids=["list", "iterator"],
)
@pytest.mark.parametrize("kind", ["http.response.start", "websocket.accept"])
def test_header_pairs_may_be_lists(kind, make_pair):
    protocol = "http" if kind.startswith("http") else "websocket"
    assert check(protocol, {"type": kind, "status": 200, "headers": [make_pair()]}) == kind


@pytest.mark.parametrize(
    "value",
    [
        b"+12",
        b"-1",
        b"0x10",
        b"1 2",
        b"",
        b"99999999999999999999999",
    ],
)
def test_app_content_length_must_be_digits(value):
    result = check(
        "http",
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", value)]},
    )
    assert isinstance(result, ValueError), result


@settings(max_examples=400, database=None, deadline=None)
@given(st.integers(-(2**40), 2**40))
def test_websocket_close_codes(code):
    result = check("websocket", {"type": "websocket.close", "code": code})
    sendable = 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
    assert result == "websocket.close" if sendable else isinstance(result, ValueError)


@settings(max_examples=300, database=None, deadline=None)
@given(any_text)
def test_websocket_subprotocol_non_ascii_is_refused(subprotocol):
    result = check("websocket", {"type": "websocket.accept", "subprotocol": subprotocol})
    if not subprotocol.isascii() or not subprotocol:
        assert isinstance(result, ALLOWED) and not isinstance(result, str)


@pytest.mark.parametrize("subprotocol", ["a b", "a,b", "a;b", '"a"'])
def test_websocket_subprotocol_must_be_a_token(subprotocol):
    result = check("websocket", {"type": "websocket.accept", "subprotocol": subprotocol})
    assert isinstance(result, ValueError)


@settings(max_examples=200, database=None, deadline=None)
@given(st.text(min_size=0, max_size=300))
def test_close_reason_any_length_is_accepted(reason):
    # A reason over 123 bytes is cut on a char boundary, not refused.
    assert check("websocket", {"type": "websocket.close", "reason": reason}) == "websocket.close"


def test_error_messages_are_bounded():
    result = check(
        "http", {"type": "http.response.start", "status": 200, "headers": [(b"x" * 2**20, b"")]}
    )
    assert isinstance(result, ValueError)
    assert len(str(result)) <= 4096


class Raising:
    """An object whose conversions raise the app's own exception."""

    def __bool__(self) -> bool:
        raise ZeroDivisionError("bool")

    def __index__(self) -> int:
        raise ZeroDivisionError("index")

    def __iter__(self) -> Iterator[Any]:
        raise ZeroDivisionError("iter")

    def __len__(self) -> int:
        raise ZeroDivisionError("len")


@pytest.mark.parametrize(
    "message",
    [
        {"type": "http.response.body", "more_body": Raising()},
        {"type": "http.response.start", "status": 200, "headers": Raising()},
        {"type": "http.response.start", "status": 200, "headers": [Raising()]},
    ],
    ids=["bool", "iter", "pair"],
)
def test_the_apps_own_exceptions_pass_through_unchanged(message):
    # Not one of the three, but the app's own error, unchanged: never a SystemError or panic.
    try:
        validate_send("http", message)
    except ZeroDivisionError:
        pass
    except ALLOWED:
        pass


# -- end to end: generated sequences through a real server ----------------------------------


def encode(value: Any) -> Any:
    """Python message values -> JSON for ``tests.parsing_apps:replay`` (see ``_decode``)."""
    if isinstance(value, (bytes, bytearray)):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"dict": [[k, encode(v)] for k, v in value.items()]}
    return value


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**66), 2**66),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=40),
)
wire_headers = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from([b"content-length", b"content-type", b"x-a", b"connection", b""]),
            st.one_of(st.binary(max_size=20), st.sampled_from([b"0", b"3", b"5", b"a\r\nb"])),
        ),
        st.lists(json_scalars, max_size=3),
    ),
    max_size=4,
)
wire_message = st.fixed_dictionaries(
    {"type": st.sampled_from(HTTP_TYPES + ["http.response.trailers", "websocket.send", "x"])},
    optional={
        "status": st.one_of(st.integers(0, 1200), json_scalars),
        "headers": st.one_of(wire_headers, json_scalars),
        "body": st.one_of(st.binary(max_size=300), json_scalars),
        "more_body": json_scalars,
        "trailers": json_scalars,
    },
)
sequences = st.lists(wire_message, min_size=0, max_size=5)


@pytest.fixture(scope="module")
def replay_server() -> Iterator[ServerProcess]:
    with sandman("tests.parsing_apps:replay", "--timeout-keep-alive", "2") as server:
        yield server


def post(port: int, path: str, body: bytes) -> bytes:
    """One request on a fresh connection; the raw answer up to the server's close (or 3 s)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return raw_exchange(port, head.encode() + body, timeout=3.0)


SEND_OUTCOMES = {"ok", "TypeError", "ValueError", "RuntimeError", "ClientDisconnected"}


@settings(
    max_examples=120,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequences, st.sampled_from(["/swallow", "/let-escape"]))
def test_generated_send_sequences_never_take_the_worker_down(replay_server, messages, path):
    path = f"{path}/{uuid.uuid4().hex}"
    raw = post(replay_server.port, path, json.dumps(encode(messages)).encode())
    if raw:
        # Whatever the app managed to send, the status line is well-formed and in 200..999.
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
        assert m, raw[:200]
        assert 200 <= int(m.group(1)) <= 999
    # Each send() returned or raised one of the allowed exceptions.
    logged = replay_server.wait_for(rf"APP replay {path} (.*)").group(1)
    assert set(json.loads(logged)) <= SEND_OUTCOMES, logged
    # The worker is alive and serves the next request at once.
    ok = json.dumps(
        encode(
            [
                {"type": "http.response.start", "status": 200},
                {"type": "http.response.body", "body": b"alive"},
            ]
        )
    )
    with socket.create_connection(("127.0.0.1", replay_server.port), timeout=5) as sock:
        sock.sendall(
            f"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: {len(ok)}\r\n\r\n{ok}".encode()
        )
        status, _, body = read_response(sock)
    assert (status, body) == (b"HTTP/1.1 200 OK", b"alive")
    assert replay_server.proc.poll() is None
    assert "panicked" not in replay_server.stderr


def test_invalid_app_content_length_never_reaches_the_wire(replay_server):
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"+5")]}
    body = json.dumps(encode([start, {"type": "http.response.body", "body": b"hello"}])).encode()
    raw = post(replay_server.port, f"/plus/{uuid.uuid4().hex}", body)
    assert b"content-length: +5" not in raw.lower(), raw


def test_conflicting_app_content_lengths_are_refused():
    headers = [(b"content-length", b"5"), (b"content-length", b"3")]
    result = check("http", {"type": "http.response.start", "status": 200, "headers": headers})
    assert isinstance(result, ValueError)
