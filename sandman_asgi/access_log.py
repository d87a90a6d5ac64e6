"""Access lines, written without a ``LogRecord`` when nothing could tell the difference.

A line through ``logging`` costs ~30 µs here (a ``LogRecord``, a caller lookup, two record
copies in the formatter), more than the rest of a small request. When ``uvicorn.access``
is set up as the default log config leaves it (one plain ``StreamHandler`` with Sandman's
``AccessFormatter`` and the default format, no filters, no propagation, the standard
logger class and record factory), ``AccessLog`` formats the line itself, byte for byte
what that formatter would write, and writes it under the handler's lock as
``StreamHandler.emit`` does. Any other set-up (a filter, another handler or format, a log
config) takes the full ``logging`` path, checked on every call, so a change made while
serving applies to the next line.
"""

from __future__ import annotations

import logging

from sandman_asgi.logging import ACCESS_FORMAT, AccessFormatter

_MESSAGE = '%s - "%s %s HTTP/%s" %d'


class AccessLog:
    """``write(client, method, path, http_version, status)`` logs one access line."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def _plain_handler(self) -> logging.StreamHandler | None:
        """The logger's one handler, if the set-up is the default one; else None."""
        logger = self.logger
        if type(logger) is not logging.Logger:  # a logger class may override handle()
            return None
        if logger.filters or logger.propagate or not logger.isEnabledFor(logging.INFO):
            return None
        if len(logger.handlers) != 1:
            return None
        handler = logger.handlers[0]
        if type(handler) is not logging.StreamHandler or handler.filters:
            return None
        if handler.level > logging.INFO:
            return None
        formatter = handler.formatter
        if type(formatter) is not AccessFormatter or formatter._fmt != ACCESS_FORMAT:
            return None
        if type(formatter._style) is not logging.PercentStyle:
            return None
        if logging.getLogRecordFactory() is not logging.LogRecord:
            return None
        return handler

    def write(self, client: str, method: str, path: str, version: str, status: int) -> None:
        handler = self._plain_handler()
        if handler is None:
            self.logger.info(_MESSAGE, client, method, path, version, status)
            return
        formatter: AccessFormatter = handler.formatter  # type: ignore[assignment]
        # What formatMessage builds, minus the LogRecord: the same fields, the same format.
        fields = formatter.access_fields(client, method, path, version, status)
        fields["levelprefix"] = formatter.level_prefix("INFO", logging.INFO)
        line = ACCESS_FORMAT % fields
        try:
            handler.acquire()
            try:
                handler.stream.write(line + handler.terminator)
                handler.flush()
            finally:
                handler.release()
        except Exception:  # noqa: BLE001 - reported as logging reports a failed emit
            record = self.logger.makeRecord(
                self.logger.name,
                logging.INFO,
                "(access log)",
                0,
                _MESSAGE,
                (client, method, path, version, status),
                None,
            )
            handler.handleError(record)
