"""The access-line fast path (``sandman_asgi/access_log.py``) writes exactly what the
``logging`` path would, and steps aside whenever the set-up is not the default one; with
``defer`` it writes a loop turn's lines with one write, in order."""

from __future__ import annotations

import io
import itertools
import logging
import re

import pytest

from sandman_asgi.access_log import AccessLog
from sandman_asgi.logging import ACCESS_FORMAT, AccessFormatter
from tests.serverproc import raw_exchange, sandman

_names = itertools.count()


def _logger(use_colors: bool) -> tuple[logging.Logger, io.StringIO]:
    """A private logger set up as the default config sets up ``uvicorn.access``."""
    logger = logging.getLogger(f"tests.access_log.{next(_names)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter(ACCESS_FORMAT, use_colors=use_colors))
    logger.addHandler(handler)
    return logger, stream


def _drop_nothing(record: logging.LogRecord) -> bool:
    return True


LINES = [
    ("127.0.0.1:5000", "GET", "/", "1.1", 200),
    ("[::1]:6000", "POST", "/items?q=a%20b", "1.0", 404),
    ("10.0.0.1:1", "GET", "/x", "1.1", 101),
    ("10.0.0.1:1", "GET", "/odd", "1.1", 599),  # no reason phrase
]


@pytest.mark.parametrize("use_colors", [False, True])
def test_fast_lines_equal_the_logging_path_lines(use_colors):
    fast_logger, fast = _logger(use_colors)
    slow_logger, slow = _logger(use_colors)
    slow_logger.addFilter(_drop_nothing)  # any filter sends every line through logging
    assert AccessLog(fast_logger)._plain_handler() is not None, "the fast path is not taken"
    assert AccessLog(slow_logger)._plain_handler() is None
    for args in LINES:
        AccessLog(fast_logger).write(*args)
        AccessLog(slow_logger).write(*args)
    assert fast.getvalue() == slow.getvalue()
    assert fast.getvalue().count("\n") == len(LINES)
    if not use_colors:
        first = fast.getvalue().splitlines()[0]
        assert first == 'INFO:     127.0.0.1:5000 - "GET / HTTP/1.1" 200 OK'


def test_a_filter_added_while_serving_applies_to_the_next_line():
    logger, stream = _logger(False)
    log = AccessLog(logger)
    log.write("127.0.0.1:5000", "GET", "/a", "1.1", 200)
    logger.addFilter(lambda record: "/health" not in record.args[2])
    log.write("127.0.0.1:5000", "GET", "/health", "1.1", 200)
    log.write("127.0.0.1:5000", "GET", "/b", "1.1", 200)
    assert [line.split('"')[1] for line in stream.getvalue().splitlines()] == [
        "GET /a HTTP/1.1",
        "GET /b HTTP/1.1",
    ]


def test_levels_and_other_formats_are_honoured():
    logger, stream = _logger(False)
    log = AccessLog(logger)
    logger.handlers[0].setLevel(logging.WARNING)
    log.write("127.0.0.1:5000", "GET", "/quiet", "1.1", 200)
    assert stream.getvalue() == ""
    logger.handlers[0].setLevel(logging.NOTSET)
    logger.handlers[0].setFormatter(AccessFormatter("%(status_code)s|%(request_line)s"))
    log.write("127.0.0.1:5000", "GET", "/own", "1.1", 201)
    assert stream.getvalue() == "201 Created|GET /own HTTP/1.1\n"
    logger.disabled = True
    log.write("127.0.0.1:5000", "GET", "/off", "1.1", 200)
    assert "/off" not in stream.getvalue()


def test_a_failed_write_is_reported_as_logging_reports_it(capsys):
    logger, stream = _logger(False)
    stream.close()  # writes now raise ValueError
    AccessLog(logger).write("127.0.0.1:5000", "GET", "/", "1.1", 200)
    assert "--- Logging error ---" in capsys.readouterr().err


class _CountingStream(io.StringIO):
    """A stream that counts its ``write`` calls (each is a system call on a real file)."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _deferred_logger() -> tuple[logging.Logger, _CountingStream]:
    logger, _ = _logger(False)
    stream = _CountingStream()
    logger.handlers[0].setStream(stream)
    return logger, stream


def test_deferred_lines_are_written_together_at_the_turn_s_end():
    logger, stream = _deferred_logger()
    scheduled: list = []
    log = AccessLog(logger, scheduled.append)
    for args in LINES:
        log.write(*args)
    assert stream.getvalue() == "" and len(scheduled) == 1, "one flush scheduled, none run"
    scheduled.pop()()
    immediate_logger, immediate = _logger(False)
    for args in LINES:
        AccessLog(immediate_logger).write(*args)
    assert stream.getvalue() == immediate.getvalue()
    assert stream.writes == 1
    log.write("127.0.0.1:5000", "GET", "/next", "1.1", 200)
    assert len(scheduled) == 1, "the next turn's first line schedules the next flush"
    log.flush()
    assert stream.getvalue().endswith('"GET /next HTTP/1.1" 200 OK\n')
    scheduled.pop()()  # a flush with nothing waiting writes nothing
    assert stream.writes == 2


def test_a_line_through_logging_writes_the_waiting_lines_first():
    logger, stream = _deferred_logger()
    scheduled: list = []
    log = AccessLog(logger, scheduled.append)
    log.write("127.0.0.1:5000", "GET", "/a", "1.1", 200)
    logger.addFilter(_drop_nothing)  # from here on every line goes through logging
    log.write("127.0.0.1:5000", "GET", "/b", "1.1", 200)
    assert [line.split('"')[1] for line in stream.getvalue().splitlines()] == [
        "GET /a HTTP/1.1",
        "GET /b HTTP/1.1",
    ]
    scheduled.pop()()
    assert stream.getvalue().count("\n") == 2


def test_a_handler_swapped_mid_turn_gets_only_its_own_lines():
    logger, first = _deferred_logger()
    scheduled: list = []
    log = AccessLog(logger, scheduled.append)
    log.write("127.0.0.1:5000", "GET", "/old", "1.1", 200)
    second = io.StringIO()
    logger.handlers[0].setStream(second)
    log.write("127.0.0.1:5000", "GET", "/same-handler", "1.1", 200)
    replacement = logging.StreamHandler(io.StringIO())
    replacement.setFormatter(AccessFormatter(ACCESS_FORMAT, use_colors=False))
    logger.handlers = [replacement]
    log.write("127.0.0.1:5000", "GET", "/new", "1.1", 200)
    for callback in scheduled:
        callback()
    # setStream on the same handler: the waiting lines follow the handler's current stream.
    assert "/old" in second.getvalue() and "/same-handler" in second.getvalue()
    assert first.getvalue() == ""
    assert [line.split('"')[1] for line in replacement.stream.getvalue().splitlines()] == [
        "GET /new HTTP/1.1"
    ]


def test_a_failed_deferred_write_is_reported_as_logging_reports_it(capsys):
    logger, stream = _deferred_logger()
    scheduled: list = []
    log = AccessLog(logger, scheduled.append)
    log.write("127.0.0.1:5000", "GET", "/", "1.1", 200)
    log.write("127.0.0.1:5000", "GET", "/", "1.1", 200)
    stream.close()
    scheduled.pop()()
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err and "access line(s)" in err and "(2,)" in err


def test_pipelined_requests_log_every_line_in_order_while_serving():
    """Sixteen requests in one segment are answered in one loop turn; their lines come out
    in request order without waiting for more traffic or for shutdown."""
    requests = [b"GET /p%d HTTP/1.1\r\nHost: x\r\n" % i for i in range(16)]
    requests[-1] += b"Connection: close\r\n"  # the server closes after the last response
    with sandman("tests.apps:hello") as server:
        raw = raw_exchange(server.port, b"".join(r + b"\r\n" for r in requests))
        assert raw.count(b"HTTP/1.1 200 OK") == 16, raw
        server.wait_for(r'"GET /p15 HTTP/1\.1" 200 OK', timeout=5, stream="stdout")
        paths = re.findall(r'"GET (/p\d+) HTTP/1\.1" 200 OK', server.stdout)
        assert paths == [f"/p{i}" for i in range(16)]
