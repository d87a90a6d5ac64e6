"""The tagged encoding keeps the Python types a conformance check compares."""

from __future__ import annotations

import json
import math

from compat.probe.encoding import Opaque, decode, encode


def roundtrip(value: object) -> object:
    return decode(json.loads(json.dumps(encode(value))))


def test_types_survive_the_trip() -> None:
    value = {
        "type": "http",
        "client": ("127.0.0.1", 5000),
        "server": ["/tmp/s.sock", None],
        "headers": [(b"host", b"\xe9t\xe9")],
        "flag": True,
        "n": 3,
        "x": 1.5,
    }
    back = roundtrip(value)
    assert back == value
    assert type(back["client"]) is tuple and type(back["server"]) is list
    assert type(back["flag"]) is bool and type(back["n"]) is int
    assert back["headers"][0][1] == b"\xe9t\xe9"


def test_str_port_stays_a_str() -> None:
    # The kind of deviation the suite exists to catch (granian reports ports as str).
    assert roundtrip(("127.0.0.1", "5000")) == ("127.0.0.1", "5000")


def test_non_finite_floats_and_unknown_types() -> None:
    assert math.isnan(roundtrip(float("nan")))
    back = roundtrip(object())
    assert isinstance(back, Opaque) and back.type_name == "object"


def test_non_str_dict_keys_are_kept() -> None:
    assert roundtrip({b"k": 1, 2: "two"}) == {b"k": 1, 2: "two"}
