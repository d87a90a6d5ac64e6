"""Dump ``run()``/``Config()`` parameters and the CLI's options as JSON, for parity tests.

``python tests/signatures.py uvicorn`` (with uvicorn's interpreter) prints the same shape
as ``dump("sandman_asgi")``: ``{"run": [[name, kind, default], ...], "Config": [...],
"cli": [[name, opts, secondary_opts, type, default, multiple, is_flag], ...]}``.
Defaults are normalised so the two packages compare: the built-in logging dict becomes
``"<LOGGING_CONFIG>"``, int enums (``ssl.PROTOCOL_TLS_SERVER``) plain ints.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from typing import Any


def dump(package: str) -> dict[str, list[list[Any]]]:
    module = importlib.import_module(package)
    logging_config = importlib.import_module(f"{package}.config").LOGGING_CONFIG

    def normalise(value: Any) -> Any:
        if value is inspect.Parameter.empty:
            return "<required>"
        if value is logging_config:
            return "<LOGGING_CONFIG>"
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        if value is not None and not isinstance(value, (str, float, bool, list, tuple, dict)):
            return f"<{type(value).__name__}>"  # click's UNSET sentinel and the like
        return value

    out = {}
    for name, func in (("run", module.run), ("Config", module.Config.__init__)):
        params = [p for p in inspect.signature(func).parameters.values() if p.name != "self"]
        out[name] = [[p.name, p.kind.name, normalise(p.default)] for p in params]
    command = importlib.import_module(f"{package}.main").main
    out["cli"] = [
        [
            param.name,
            list(param.opts),
            list(param.secondary_opts),
            param.type.name,
            normalise(param.default),
            param.multiple,
            getattr(param, "is_flag", False),
        ]
        for param in command.params
    ]
    return out


if __name__ == "__main__":
    print(json.dumps(dump(sys.argv[1])))
