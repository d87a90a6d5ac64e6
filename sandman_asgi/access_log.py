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

Given ``defer`` (the server passes ``loop.call_soon``), the fast path also batches: the
lines formatted during one turn of the event loop are written with one ``write()`` and one
flush, at the start of the next turn, instead of one system call per line (a third of the
access log's cost per request, docs/performance.md "Access lines, one write per loop turn").
A line taking the ``logging`` path first writes the lines already waiting, so lines keep
their order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from sandman_asgi.logging import ACCESS_FORMAT, AccessFormatter

_MESSAGE = '%s - "%s %s HTTP/%s" %d'

# The default format with its named fields made positional, in the order they appear
# (levelprefix, client_addr, request_line, status_code): filling a tuple costs a third of
# building the fields dict (docs/performance.md). Only for colourless lines, whose level prefix
# is a constant; the fast-path tests check these lines byte for byte against ``logging``.
_PLAIN_FORMAT = re.sub(r"%\(\w+\)s", "%s", ACCESS_FORMAT)
_PLAIN_PREFIX = AccessFormatter(ACCESS_FORMAT, use_colors=False).level_prefix("INFO", logging.INFO)


class AccessLog:
    """``write(client, method, path, http_version, status)`` logs one access line.

    ``defer(callback)`` schedules ``callback`` for later (``loop.call_soon``); without it
    every line is written at once. ``flush()`` writes the waiting lines now.
    """

    def __init__(
        self, logger: logging.Logger, defer: Callable[[Callable[[], None]], Any] | None = None
    ) -> None:
        self.logger = logger
        self._defer = defer
        self._pending: list[str] = []
        self._pending_handler: logging.StreamHandler | None = None
        self._plain_status: dict[int, str] = {}  # "200 OK", without colours

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
            if self._pending:
                self.flush()
            self.logger.info(_MESSAGE, client, method, path, version, status)
            return
        formatter: AccessFormatter = handler.formatter  # type: ignore[assignment]
        # What formatMessage builds, minus the LogRecord: the same fields, the same format.
        if formatter.use_colors:
            fields = formatter.access_fields(client, method, path, version, status)
            fields["levelprefix"] = formatter.level_prefix("INFO", logging.INFO)
            line = ACCESS_FORMAT % fields + handler.terminator
        else:
            code = self._plain_status.get(status)
            if code is None:
                code = self._plain_status[status] = formatter.get_status_code(status)
            request_line = f"{method} {path} HTTP/{version}"
            line = _PLAIN_FORMAT % (_PLAIN_PREFIX, client, request_line, code) + handler.terminator
        if self._defer is None:
            self._emit(handler, line, _MESSAGE, (client, method, path, version, status))
            return
        if self._pending and handler is not self._pending_handler:
            self.flush()  # the handler was replaced while lines waited: theirs first
        if not self._pending:
            self._pending_handler = handler
            self._defer(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        """Write the lines waiting for the end of the loop turn, if any."""
        if not self._pending:
            return
        lines, handler = self._pending, self._pending_handler
        self._pending, self._pending_handler = [], None
        assert handler is not None
        self._emit(handler, "".join(lines), "%d access line(s)", (len(lines),))

    def _emit(self, handler: logging.StreamHandler, text: str, msg: str, args: tuple) -> None:
        """Write and flush under the handler's lock, as ``StreamHandler.emit`` does; a
        failure is reported with a record made of ``msg % args``."""
        try:
            handler.acquire()
            try:
                handler.stream.write(text)
                handler.flush()
            finally:
                handler.release()
        except Exception:  # noqa: BLE001 - reported as logging reports a failed emit
            record = self.logger.makeRecord(
                self.logger.name,
                logging.INFO,
                "(access log)",
                0,
                msg,
                args,
                None,
            )
            handler.handleError(record)
