"""Log formatting that matches uvicorn line for line.

Sandman logs under uvicorn's logger names (``uvicorn``, ``uvicorn.error``, ``uvicorn.access``,
``uvicorn.asgi``) so that log configs, filters and handlers written for uvicorn keep working.
The formatter classes can be named in a log config as ``sandman_asgi.logging.DefaultFormatter``
and ``sandman_asgi.logging.AccessFormatter``.
"""

from __future__ import annotations

import functools
import http
import logging
import sys
from copy import copy
from typing import Any, Literal

import click

TRACE_LOG_LEVEL = 5
"""The ``trace`` level below DEBUG, as uvicorn defines it."""

logging.addLevelName(TRACE_LOG_LEVEL, "TRACE")

_LEVEL_COLOURS = {
    TRACE_LOG_LEVEL: lambda name: click.style(str(name), fg="blue"),
    logging.DEBUG: lambda name: click.style(str(name), fg="cyan"),
    logging.INFO: lambda name: click.style(str(name), fg="green"),
    logging.WARNING: lambda name: click.style(str(name), fg="yellow"),
    logging.ERROR: lambda name: click.style(str(name), fg="red"),
    logging.CRITICAL: lambda name: click.style(str(name), fg="bright_red"),
}


class ColourizedFormatter(logging.Formatter):
    """Adds ``levelprefix`` (level name and colon padded to 9 columns) to each record.

    With colours on, the level name is coloured and a record's ``color_message`` extra (a
    variant of the message with ANSI styling) replaces the plain message.
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        if use_colors in (True, False):
            self.use_colors = bool(use_colors)
        else:
            self.use_colors = sys.stdout.isatty()
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def color_level_name(self, level_name: str, level_no: int) -> str:
        """Colour a level name by its level."""
        colour = _LEVEL_COLOURS.get(level_no)
        return colour(level_name) if colour else level_name

    def should_use_colors(self) -> bool:
        """Whether this formatter emits ANSI colours."""
        return True

    def level_prefix(self, level_name: str, level_no: int) -> str:
        """The level name and a colon, padded to 9 columns; coloured when colours are on."""
        padding = " " * max(0, 8 - len(level_name))
        if self.use_colors:
            level_name = self.color_level_name(level_name, level_no)
        return level_name + ":" + padding

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - stdlib name
        record = copy(record)
        if self.use_colors and "color_message" in record.__dict__:
            record.msg = record.__dict__["color_message"]
            record.__dict__["message"] = record.getMessage()
        record.__dict__["levelprefix"] = self.level_prefix(record.levelname, record.levelno)
        return super().formatMessage(record)


class DefaultFormatter(ColourizedFormatter):
    """Formatter for server messages; colours only when stderr is a terminal."""

    def should_use_colors(self) -> bool:
        return sys.stderr.isatty()


@functools.cache
def _status_phrase(status_code: int) -> str:
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return ""


class AccessFormatter(ColourizedFormatter):
    """Formatter for access lines.

    The record's ``args`` are ``(client_addr, method, path_with_query, http_version,
    status_code)`` exactly as uvicorn emits them, so formatters and filters written against
    uvicorn's access records work unchanged.
    """

    def get_status_code(self, status_code: int) -> str:
        """``"200 OK"``, coloured by status class when colours are on."""
        phrase = _status_phrase(status_code)
        text = f"{status_code} {phrase}"
        if self.use_colors:
            if status_code < 200:
                return click.style(text, fg="white")
            if status_code < 300:
                return click.style(text, fg="green")
            if status_code < 400:
                return click.style(text, fg="yellow")
            if status_code < 500:
                return click.style(text, fg="red")
            return click.style(text, fg="bright_red")
        return text

    def access_fields(
        self, client_addr: str, method: str, full_path: str, http_version: str, status_code: int
    ) -> dict[str, str]:
        """The fields an access format names besides ``levelprefix``: ``client_addr``,
        ``request_line`` and ``status_code``, coloured when colours are on."""
        request_line = f"{method} {full_path} HTTP/{http_version}"
        if self.use_colors:
            request_line = click.style(request_line, bold=True)
        return {
            "client_addr": client_addr,
            "request_line": request_line,
            "status_code": self.get_status_code(int(status_code)),
        }

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - stdlib name
        record = copy(record)
        args: Any = record.args
        record.__dict__.update(self.access_fields(*args))
        return super().formatMessage(record)


ACCESS_FORMAT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
"""The default access line format (uvicorn's)."""

LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "sandman_asgi.logging.DefaultFormatter",
            "fmt": "%(levelprefix)s %(message)s",
            "use_colors": None,
        },
        "access": {
            "()": "sandman_asgi.logging.AccessFormatter",
            "fmt": ACCESS_FORMAT,
        },
    },
    "handlers": {
        "default": {
            "formatter": "default",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "formatter": "access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
"""The default ``dictConfig``; copy and edit it as with ``uvicorn.config.LOGGING_CONFIG``."""
