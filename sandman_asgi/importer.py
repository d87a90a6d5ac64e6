"""Import an ASGI app from a ``"module:attribute"`` string, with uvicorn's error messages."""

from __future__ import annotations

import importlib
from typing import Any


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
