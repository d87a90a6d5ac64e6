"""Finding the app behind ``sandman dev PATH`` / ``sandman run PATH``, by fastapi-cli's rules.

PATH is a Python file or a package directory. The module to import is named after the file
and every enclosing directory that has an ``__init__.py`` (so relative imports inside a
package work); the folder above the outermost package goes on ``sys.path``. The app is the
object named by ``--app``, else one called ``app`` or ``api``, else the first (in ``dir()``
order) that is a FastAPI or Starlette application.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Tried in this order when no PATH is given (fastapi-cli's list).
DEFAULT_PATHS = ("main.py", "app.py", "api.py", "app/main.py", "app/app.py", "app/api.py")
PREFERRED_NAMES = ("app", "api")


class DiscoveryError(Exception):
    """The app cannot be found; the message is one line for the user."""


@dataclass(frozen=True)
class ModuleSource:
    """Where a module comes from: its dotted name, the folder that must be on ``sys.path``
    to import it under that name, and the path the user gave (resolved)."""

    name: str
    import_root: Path
    path: Path


@dataclass(frozen=True)
class Discovered:
    """The outcome: the import string uvicorn's machinery runs, and what it names."""

    import_string: str
    import_root: Path
    app: Any
    how: str  # "--app", "by name", "by type" or "--entrypoint"/"pyproject.toml"

    @property
    def kind(self) -> str:
        """``FastAPI``, ``Starlette`` or the class name of any other ASGI callable."""
        return framework_of(self.app) or type(self.app).__name__


def default_path(cwd: Path) -> Path:
    """The first of fastapi-cli's default file names that exists under ``cwd``."""
    for candidate in DEFAULT_PATHS:
        if (cwd / candidate).is_file():
            return cwd / candidate
    raise DiscoveryError(
        "no PATH given and none of " + ", ".join(DEFAULT_PATHS) + " exists here; name the file"
    )


def module_source(path: Path) -> ModuleSource:
    """The dotted module name for a file or package directory, and its import root."""
    resolved = path.resolve()
    if not resolved.exists():
        raise DiscoveryError(f"path {str(path)!r} does not exist")
    if resolved.is_dir():
        if not (resolved / "__init__.py").is_file():
            raise DiscoveryError(
                f"{str(path)!r} is a directory without __init__.py: give the .py file that "
                "holds the app, or make the directory a package"
            )
        module = resolved
    elif resolved.suffix != ".py":
        raise DiscoveryError(f"{str(path)!r} is not a Python file")
    elif resolved.name == "__init__.py":
        module = resolved.parent
    else:
        module = resolved
    parts = [module.stem if module.is_file() else module.name]
    root = module.parent
    # Climb while the enclosing folder is a package, so pkg/sub/mod.py imports as pkg.sub.mod.
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    for part in parts:
        if not part.isidentifier():
            raise DiscoveryError(
                f"{part!r} (in {str(path)!r}) is not a valid Python module name; rename it"
            )
    return ModuleSource(".".join(parts), root, resolved)


def framework_of(obj: Any) -> str | None:
    """``"FastAPI"`` or ``"Starlette"`` when ``obj`` is such an application, else None.
    Neither framework is required: a missing one simply never matches."""
    fastapi = sys.modules.get("fastapi")
    if fastapi is not None and isinstance(obj, getattr(fastapi, "FastAPI", ())):
        return "FastAPI"
    starlette = sys.modules.get("starlette.applications")
    if starlette is not None and isinstance(obj, getattr(starlette, "Starlette", ())):
        return "Starlette"
    return None


def looks_like_asgi(obj: Any) -> bool:
    """An async callable (ASGI 3: function, or object with an async ``__call__``) or a
    class (ASGI 2); what ``--app`` may name besides a FastAPI or Starlette app."""
    if inspect.isclass(obj):
        return True
    call = obj if inspect.isroutine(obj) else getattr(obj, "__call__", None)  # noqa: B004
    return call is not None and inspect.iscoroutinefunction(call)


class ModuleImportFailed(DiscoveryError):
    """The module raised while being imported (``error``: the exception it raised)."""

    def __init__(self, module: str, error: BaseException) -> None:
        super().__init__(f'Importing module "{module}" raised {type(error).__name__}.')
        self.error = error


def import_module(source: ModuleSource) -> Any:
    """Import the module with its import root first on ``sys.path`` (as the server will).
    A syntax error is one line at its file (``DiscoveryError``); any other exception raised
    by the module is a ``ModuleImportFailed`` carrying it."""
    from sandman_asgi.importer import describe_syntax_error

    root = str(source.import_root)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return importlib.import_module(source.name)
    except SyntaxError as exc:
        raise DiscoveryError(describe_syntax_error(exc)) from None
    except Exception as exc:
        raise ModuleImportFailed(source.name, exc) from None


def choose_app(module: Any, module_name: str, app_name: str | None) -> tuple[str, Any, str]:
    """``(name, object, how)`` of the app in ``module``."""
    if app_name is not None:
        if not hasattr(module, app_name):
            raise DiscoveryError(f"module {module_name!r} has no attribute {app_name!r} (--app)")
        obj = getattr(module, app_name)
        if not framework_of(obj) and not looks_like_asgi(obj):
            raise DiscoveryError(
                f"{module_name}:{app_name} is a {type(obj).__name__}, not an ASGI application"
            )
        return app_name, obj, "--app"
    for name in PREFERRED_NAMES:
        obj = getattr(module, name, None)
        if framework_of(obj):
            return name, obj, "by name"
    for name in dir(module):
        obj = getattr(module, name)
        if framework_of(obj):
            return name, obj, "by type"
    if "fastapi" not in sys.modules and "starlette.applications" not in sys.modules:
        raise DiscoveryError(
            f"module {module_name!r} imports neither FastAPI nor Starlette; "
            "name its ASGI app with --app NAME"
        )
    raise DiscoveryError(
        f"no FastAPI or Starlette app found in module {module_name!r}; name it with --app NAME"
    )


def discover(path: Path | None, app_name: str | None, cwd: Path | None = None) -> Discovered:
    """The app for ``sandman dev|run [PATH] [--app NAME]``."""
    cwd = cwd or Path(os.getcwd())
    source = module_source(path if path is not None else default_path(cwd))
    module = import_module(source)
    name, obj, how = choose_app(module, source.name, app_name)
    return Discovered(f"{source.name}:{name}", source.import_root, obj, how)


def from_import_string(import_string: str, cwd: Path, how: str) -> Discovered:
    """The app for ``--entrypoint module:attr`` (or pyproject's), imported from ``cwd``."""
    from sandman_asgi.importer import ImportFromStringError, import_from_string

    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    try:
        obj = import_from_string(import_string)
    except ImportFromStringError as exc:
        raise DiscoveryError(f"{exc} ({how})") from None
    return Discovered(import_string, cwd, obj, how)


def pyproject_entrypoint(cwd: Path) -> str | None:
    """``[tool.fastapi] entrypoint`` from ``cwd/pyproject.toml``, if set (as fastapi-cli
    reads it, so a project configured for ``fastapi run`` needs no change)."""
    pyproject = cwd / "pyproject.toml"
    if not pyproject.is_file():
        return None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(pyproject, "rb") as file:
            data = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise DiscoveryError(f"pyproject.toml is not valid TOML: {exc}") from None
    entry = data.get("tool", {}).get("fastapi", {}).get("entrypoint")
    if entry is not None and not isinstance(entry, str):
        raise DiscoveryError("[tool.fastapi] entrypoint in pyproject.toml must be a string")
    return entry
