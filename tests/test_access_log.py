"""The access-line fast path (``sandman_asgi/access_log.py``) writes exactly what the
``logging`` path would, and steps aside whenever the set-up is not the default one."""

from __future__ import annotations

import io
import itertools
import logging

import pytest

from sandman_asgi.access_log import AccessLog
from sandman_asgi.logging import ACCESS_FORMAT, AccessFormatter

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
