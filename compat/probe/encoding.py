"""Tagged JSON for Python values crossing between the probe app and the harness.

Conformance depends on exact Python types (``bytes`` vs ``str``, an ``int`` port vs a
``str`` one, ``list`` vs ``tuple``), which plain JSON erases; so every value travels as
``[tag, payload]`` and comes back as the same type on the other side.
"""

from __future__ import annotations

import math
from typing import Any


class Opaque:
    """A value of a type the encoding does not know (for example a file object)."""

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name = type_name
        self.text = text

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.text}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Opaque)
            and other.type_name == self.type_name
            and other.text == self.text
        )

    def __hash__(self) -> int:
        return hash((self.type_name, self.text))


def encode(value: Any) -> list:
    """Encode ``value`` as a JSON-able ``[tag, payload]``."""
    # bool before int: bool is an int subclass and must stay distinguishable.
    if value is None:
        return ["none"]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", value]
    if isinstance(value, float):
        return ["float", repr(value) if not math.isfinite(value) else value]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        # latin-1 maps every byte to one code point, so the text is exact and readable.
        return ["bytes", bytes(value).decode("latin-1")]
    if isinstance(value, tuple):
        return ["tuple", [encode(v) for v in value]]
    if isinstance(value, list):
        return ["list", [encode(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", [[encode(k), encode(v)] for k, v in value.items()]]
    return ["other", type(value).__name__, repr(value)[:200]]


def decode(data: list) -> Any:
    """Rebuild the value ``encode`` produced (unknown types become ``Opaque``)."""
    tag = data[0]
    if tag == "none":
        return None
    if tag in ("bool", "int", "str"):
        return data[1]
    if tag == "float":
        return float(data[1])
    if tag == "bytes":
        return data[1].encode("latin-1")
    if tag == "tuple":
        return tuple(decode(v) for v in data[1])
    if tag == "list":
        return [decode(v) for v in data[1]]
    if tag == "dict":
        return {_hashable(decode(k)): decode(v) for k, v in data[1]}
    if tag == "other":
        return Opaque(data[1], data[2])
    raise ValueError(f"unknown tag {tag!r}")


def _hashable(key: Any) -> Any:
    # A server could (wrongly) use a list as a key; keep it visible instead of crashing.
    return tuple(key) if isinstance(key, list) else key
