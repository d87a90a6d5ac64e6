"""``--static``, ``--static-max-age`` and ``--static-index``: the mounts the Rust core
serves by itself (``sandman_core/src/http/static_files/``), checked before it starts."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from sandman_asgi.core_settings import StaticMount


class StaticMountError(ValueError):
    """A ``--static`` or ``--static-max-age`` value that cannot work."""


def _prefix(text: str, what: str) -> str:
    prefix = text.strip()
    if not prefix.startswith("/"):
        raise StaticMountError(f"{what}: the URL prefix {prefix!r} must start with '/'")
    return "/" + prefix.strip("/") if prefix.strip("/") else "/"


def _split(item: str | tuple[str, str], option: str) -> tuple[str, str]:
    if isinstance(item, tuple):
        return item
    prefix, sep, value = item.partition("=")
    if not sep or not prefix or not value:
        raise StaticMountError(f"{option} {item!r}: expected PREFIX=VALUE")
    return prefix, value


def _max_ages(values: Iterable[str | int] | None) -> tuple[int | None, dict[str, int]]:
    """``--static-max-age``: a default for every mount and one per prefix."""
    default: int | None = None
    by_prefix: dict[str, int] = {}
    for value in values or ():
        text = str(value)
        prefix, seconds = ("", text) if "=" not in text else _split(text, "--static-max-age")
        try:
            age = int(seconds)
        except ValueError:
            age = -1
        if age < 0:
            raise StaticMountError(
                f"--static-max-age {text!r}: expected SECONDS or PREFIX=SECONDS (0 or more)"
            )
        if prefix:
            by_prefix[_prefix(prefix, "--static-max-age")] = age
        else:
            default = age
    return default, by_prefix


def parse_static_mounts(
    mounts: Sequence[str | tuple[str, str]] | None,
    max_age: Sequence[str | int] | None = None,
    index: bool = False,
) -> list[StaticMount]:
    """The mounts to serve, each directory checked to exist. Raises ``StaticMountError``
    naming the value at fault."""
    default_age, ages = _max_ages(max_age)
    out: list[StaticMount] = []
    for item in mounts or ():
        raw_prefix, directory = _split(item, "--static")
        prefix = _prefix(raw_prefix, f"--static {raw_prefix}={directory}")
        path = os.path.abspath(os.path.expanduser(directory))
        if not os.path.isdir(path):
            raise StaticMountError(
                f"--static {raw_prefix}={directory}: {path!r} is not a directory"
            )
        out.append(StaticMount(prefix, path, ages.get(prefix, default_age), index))
    unknown = set(ages) - {m.prefix for m in out}
    if unknown:
        raise StaticMountError(
            f"--static-max-age names {', '.join(sorted(unknown))}, which is not a --static mount"
        )
    return out
