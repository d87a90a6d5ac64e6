"""Sizes in bytes as people write them on a command line: ``67108864``, ``64M``, ``1g``."""

from __future__ import annotations

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_byte_size(value: str | int | None, option: str) -> int | None:
    """Bytes for ``value`` (``None`` or 0: off). A bad value raises ``ValueError`` naming
    ``option``."""
    if value is None:
        return None
    if isinstance(value, int):
        size = value
    else:
        text = value.strip().upper().removesuffix("IB").removesuffix("B")
        number, unit = text, ""
        if text and text[-1] in _UNITS:
            number, unit = text[:-1], text[-1]
        try:
            size = int(float(number) * _UNITS[unit])
        except ValueError:
            size = -1
    if size < 0:
        raise ValueError(f"{option} {value!r}: expected a size in bytes such as 64M or 1G")
    return size or None
