"""Logging classes named by the log configs in ``test_logging_config.py``."""

from __future__ import annotations

import logging


class ArgsFormatter(logging.Formatter):
    """Shows an access record's ``args`` as uvicorn's custom formatters would see them."""

    def format(self, record: logging.LogRecord) -> str:
        return f"ARGS {record.args!r}"
