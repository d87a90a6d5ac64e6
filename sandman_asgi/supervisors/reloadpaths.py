"""What ``--reload`` watches: directories and include/exclude patterns, with uvicorn's rules.

* watched directories: the ``--reload-dir`` ones, plus any directory an include pattern
  names or matches under the current directory; nested ones are dropped (the parent
  covers them) and excluded ones removed; none left means the current directory;
* included files: ``*.py`` (unless excluded explicitly) plus ``--reload-include``;
* excluded files: ``.*``, ``.py[cod]``, ``.sw.*``, ``~*`` (unless included explicitly)
  plus ``--reload-exclude``; an exclude naming a directory drops everything under it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandman_asgi.config import Config

logger = logging.getLogger("uvicorn.error")

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")
_GLOB_CHARS = frozenset("*?[")


def _is_dir(path: Path) -> bool:
    try:
        return path.resolve().is_dir()
    except OSError:
        return False


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def resolve_patterns(patterns: list[str], dirs: list[str]) -> tuple[list[str], list[Path]]:
    """Return ``(patterns, directories)``: ``dirs`` plus the directories the patterns name
    or match under the current directory, resolved, without nested duplicates."""
    found = [Path(d) for d in dirs]
    cwd = Path.cwd()
    for pattern in patterns:
        if pattern == ".*":
            continue  # as a directory glob it would pull in every hidden directory
        if _is_dir(Path(pattern)):
            found.append(Path(pattern))
        else:
            found.extend(match for match in cwd.glob(pattern) if _is_dir(match))
    resolved = {path.resolve() for path in found if _is_dir(path)}
    top = [path for path in resolved if not any(other in path.parents for other in resolved)]
    return _unique(patterns), sorted(top)


def apply_reload_settings(
    config: Config,
    reload_dirs: list[str] | str | None,
    reload_includes: list[str] | str | None,
    reload_excludes: list[str] | str | None,
) -> None:
    """Fill ``config.reload_dirs/_includes/_excludes/_dirs_excludes`` and log the watched
    directories. Called from ``Config.__init__`` when reloading is on."""
    dirs = _as_list(reload_dirs)
    includes, directories = resolve_patterns(_as_list(reload_includes), dirs)
    excludes, excluded_dirs = resolve_patterns(_as_list(reload_excludes), [])
    directories = [
        d for d in directories if not any(x == d or x in d.parents for x in excluded_dirs)
    ]
    includes = [pattern for pattern in includes if pattern not in excludes]
    if not directories:
        if dirs:
            logger.warning(
                "Provided reload directories %s did not contain valid directories, watching "
                "current working directory.",
                dirs,
            )
        directories = [Path.cwd()]
    config.reload_dirs = directories
    config.reload_includes = includes
    config.reload_excludes = excludes
    config.reload_dirs_excludes = excluded_dirs
    logger.info(
        "Will watch for changes in these directories: %s", sorted(str(d) for d in directories)
    )


def _as_list(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class ReloadFilter:
    """``filter(path) -> bool``: does a change to ``path`` warrant a restart?"""

    def __init__(self, config: Config) -> None:
        user_includes = list(config.reload_includes)
        user_excludes = list(config.reload_excludes)
        self.includes = _unique(
            [p for p in DEFAULT_INCLUDES if p not in user_excludes] + user_includes
        )
        self.exclude_dirs = list(config.reload_dirs_excludes)
        named_dirs = {d.name for d in self.exclude_dirs}
        self.excludes = _unique(
            [p for p in DEFAULT_EXCLUDES if p not in user_includes]
            + [p for p in user_excludes if not (_is_dir(Path(p)) or p in named_dirs)]
        )

    def __call__(self, path: Path) -> bool:
        for pattern in self.includes:
            if not path.match(pattern):
                continue
            if not _GLOB_CHARS & set(pattern):
                return True  # a file named outright wins over the default excludes
            if any(d in path.parents for d in self.exclude_dirs):
                return False
            return not any(path.match(p) for p in self.excludes)
        return False
