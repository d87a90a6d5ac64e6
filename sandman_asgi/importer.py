"""Import an ASGI app from a ``"module:attribute"`` string, with uvicorn's error messages."""

from __future__ import annotations

import importlib
import os
from types import TracebackType
from typing import Any

# Frames of these are the machinery between the command line and the app's module.
_MACHINERY = (os.path.dirname(__file__), os.path.dirname(importlib.__file__), "<frozen ")


class ImportFromStringError(Exception):
    """The import string is malformed, or names a module or attribute that does not exist."""


def import_from_string(import_str: Any) -> Any:
    """Return the object named by ``"package.module:attr.sub_attr"`` (objects pass through)."""
    if not isinstance(import_str, str):
        return import_str

    module_str, sep, attrs_str = import_str.partition(":")
    if not sep or not module_str or not attrs_str:
        raise ImportFromStringError(
            f'Import string "{import_str}" must be in format "<module>:<attribute>".'
        )

    try:
        module = importlib.import_module(module_str)
    except SyntaxError as exc:
        # The app's file and line are what the user needs, not a traceback through
        # importlib and the command line's frames.
        raise ImportFromStringError(describe_syntax_error(exc)) from None
    except ModuleNotFoundError as exc:
        # Only a missing *target* module is a loading error; an ImportError raised from
        # inside the module is the app's own bug and keeps its traceback.
        if exc.name != module_str and not module_str.startswith(f"{exc.name}."):
            raise
        raise ImportFromStringError(f'Could not import module "{module_str}".') from None

    instance: Any = module
    try:
        for attr in attrs_str.split("."):
            instance = getattr(instance, attr)
    except AttributeError:
        raise ImportFromStringError(
            f'Attribute "{attrs_str}" not found in module "{module_str}".'
        ) from None
    return instance


def describe_syntax_error(exc: SyntaxError) -> str:
    """One line in a traceback's own words: ``File "app.py", line 3: SyntaxError: ...``."""
    where = f'File "{exc.filename}", line {exc.lineno}' if exc.filename else "In the app"
    return f"{where}: {type(exc).__name__}: {exc.msg}"


def app_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without its leading frames in Sandman and importlib: from the app's own code
    on (the whole of ``tb`` if no frame is the app's)."""
    start = tb
    while start is not None and start.tb_frame.f_code.co_filename.startswith(_MACHINERY):
        start = start.tb_next
    return start or tb
