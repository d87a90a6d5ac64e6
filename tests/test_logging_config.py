"""Logging as uvicorn configures it (D-LOG-1..5 in docs/uvicorn-surface-coverage.md):
``--log-config`` in JSON, YAML and ini, ``--log-level`` on top of it, colours, the access
record's ``args``."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from tests.serverproc import free_port, raw_exchange, sandman

ANSI = re.compile(r"\x1b\[[0-9;]*m")

DICT_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "CUSTOM %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "err": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn.error": {"handlers": ["err"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["err"], "level": "INFO", "propagate": False},
    },
}

INI_CONFIG = """
[loggers]
keys=root,error,access

[handlers]
keys=err

[formatters]
keys=plain

[logger_root]
level=WARNING
handlers=

[logger_error]
level=INFO
handlers=err
propagate=0
qualname=uvicorn.error

[logger_access]
level=INFO
handlers=err
propagate=0
qualname=uvicorn.access

[handler_err]
class=StreamHandler
formatter=plain
args=(sys.stderr,)

[formatter_plain]
format=CUSTOM %(levelname)s %(name)s %(message)s
"""


def _write_config(tmp_path, kind: str):
    if kind == "json":
        path = tmp_path / "log.json"
        path.write_text(json.dumps(DICT_CONFIG))
    elif kind in ("yaml", "yml"):
        import yaml

        path = tmp_path / f"log.{kind}"
        path.write_text(yaml.safe_dump(DICT_CONFIG))
    else:
        path = tmp_path / "log.ini"
        path.write_text(textwrap.dedent(INI_CONFIG))
    return path


@pytest.mark.parametrize("kind", ["json", "yaml", "yml", "ini"])
def test_log_config_file_formats(tmp_path, kind):
    path = _write_config(tmp_path, kind)
    with sandman("tests.apps:hello", "--log-config", str(path)) as server:
        httpx.get(server.url + "/q?a=1")
        # No AccessFormatter: the raw message, without the reason phrase (as uvicorn).
        access = r'(?m)CUSTOM INFO uvicorn\.access 127\.0\.0\.1:\d+ - "GET /q\?a=1 HTTP/1\.1" 200$'
        server.wait_for(access)
        server.stop()
    pid = server.proc.pid
    assert f"CUSTOM INFO uvicorn.error Started server process [{pid}]" in server.stderr
    assert "CUSTOM INFO uvicorn.error Application startup complete." in server.stderr
    # Nothing went through the built-in formatters.
    assert "INFO:     " not in server.stderr + server.stdout


def test_trace_messages_go_to_the_uvicorn_asgi_logger(tmp_path):
    """``--log-level trace`` logs every ASGI message on ``uvicorn.asgi`` (D-LOG-1), so a log
    config can route or silence them by that name."""
    config = json.loads(json.dumps(DICT_CONFIG))
    config["loggers"]["uvicorn.asgi"] = {"handlers": ["err"], "propagate": False}
    path = tmp_path / "log.json"
    path.write_text(json.dumps(config))
    with sandman("tests.apps:hello", "--log-config", str(path), "--log-level", "trace") as server:
        httpx.get(server.url + "/")
        server.wait_for(r"CUSTOM TRACE uvicorn\.asgi 127\.0\.0\.1:\d+ - ASGI \[\d+\] Completed")
        server.stop()
    started = re.findall(r"(?m)^CUSTOM TRACE (\S+) .*ASGI \[\d+\] Started scope=", server.stderr)
    assert started and set(started) == {"uvicorn.asgi"}, server.stderr[-2000:]


def test_an_ini_log_config_leaves_earlier_loggers_enabled(tmp_path):
    # D-LOG-3: fileConfig's default would disable every logger the file does not name;
    # uvicorn (and Sandman) load ini files with disable_existing_loggers=False.
    path = _write_config(tmp_path, "ini")
    script = (
        "import logging\n"
        "early = logging.getLogger('app.created.before')\n"
        "from sandman_asgi import Config\n"
        f"Config('tests.apps:hello', log_config={str(path)!r})\n"
        "print('disabled' if early.disabled else 'enabled')\n"
        "print(logging.getLogger('uvicorn.error').handlers[0].formatter._fmt)\n"
    )
    from tests.serverproc import ROOT

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "enabled",
        "CUSTOM %(levelname)s %(name)s %(message)s",
    ], "the ini file was not applied, or it disabled an earlier logger"


def _wait_listening(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on {port}")


def test_log_level_applies_on_top_of_the_log_config(tmp_path):
    path = _write_config(tmp_path, "json")
    port = free_port()
    flags = ("--port", str(port), "--log-config", str(path), "--log-level", "warning")
    with sandman("tests.apps:hello", *flags, ready=False, port=False) as server:
        _wait_listening(port)
        httpx.get(f"http://127.0.0.1:{port}/")
        raw_exchange(port, b"NOT HTTP\r\n\r\n")
        server.wait_for("CUSTOM WARNING uvicorn.error Invalid HTTP request received.")
        server.stop()
    assert "CUSTOM INFO" not in server.stderr


def test_access_record_args_are_uvicorns_tuple(tmp_path):
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"args": {"()": "tests.log_helpers.ArgsFormatter"}},
        "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "args"}},
        "loggers": {"uvicorn.access": {"handlers": ["out"], "level": "INFO"}},
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(config))
    port = free_port()
    flags = ("--port", str(port), "--log-config", str(path))
    with sandman("tests.apps:hello", *flags, ready=False, port=False) as server:
        _wait_listening(port)
        httpx.get(f"http://127.0.0.1:{port}/a%20b?x=1")
        args = r"ARGS \('127\.0\.0\.1:(\d+)', 'GET', '/a%20b\?x=1', '1\.1', 200\)"
        assert int(server.wait_for(args).group(1)) > 0


def test_formatter_class_paths_for_log_configs(tmp_path):
    # The classes a log config names to get uvicorn's look (D-API-6).
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {
                "()": "sandman_asgi.logging.DefaultFormatter",
                "fmt": "[%(name)s] %(levelprefix)s %(message)s",
                "use_colors": False,
            },
            "access": {
                "()": "sandman_asgi.logging.AccessFormatter",
                "fmt": '[%(name)s] %(levelprefix)s %(client_addr)s "%(request_line)s" '
                "%(status_code)s",
                "use_colors": False,
            },
        },
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default"},
            "access": {"class": "logging.StreamHandler", "formatter": "access"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(config))
    with sandman("tests.apps:hello", "--log-config", str(path)) as server:
        httpx.get(server.url + "/x")
        server.wait_for(r'\[uvicorn\.access\] INFO:     127\.0\.0\.1:\d+ "GET /x HTTP/1\.1" 200 OK')
    assert "[uvicorn.error] INFO:     Application startup complete." in server.stderr


@pytest.mark.parametrize(
    ("flag", "coloured"), [("--use-colors", True), ("--no-use-colors", False), (None, False)]
)
def test_use_colors_overrides_tty_detection(flag, coloured):
    flags = (flag,) if flag else ()
    with sandman("tests.apps:hello", *flags, ready=False) as server:
        # The running line's address is bold when coloured: find the port around that.
        running = server.wait_for(r"running on (?:\x1b\[1m)?http://127\.0\.0\.1:(\d+)")
        server.port = int(running.group(1))
        httpx.get(server.url)
        server.wait_for(r"GET / HTTP/1\.1", stream="stdout")
        server.stop()
    for text in (server.stderr, server.stdout):
        assert bool(ANSI.search(text)) is coloured
    if coloured:
        plain = ANSI.sub("", server.stderr)
        assert f"INFO:     Sandman running on http://127.0.0.1:{server.port}" in plain
        assert "\x1b[32m200 OK\x1b[0m" in server.stdout  # 2xx in green


def test_default_streams_errors_to_stderr_access_to_stdout():
    with sandman("tests.apps:hello") as server:
        httpx.get(server.url)
        server.wait_for(r'"GET / HTTP/1\.1" 200 OK', stream="stdout")
        server.stop()
    assert "GET /" not in server.stderr
    assert "Started server process" not in server.stdout


def test_trace_level_is_accepted_and_named_trace(tmp_path):
    (tmp_path / "traceapp.py").write_text(
        "import logging\n"
        "from tests.apps import hello\n"
        "async def app(scope, receive, send):\n"
        "    logging.getLogger('uvicorn.error').log(5, 'from the app at level 5')\n"
        "    await hello(scope, receive, send)\n"
    )
    with sandman("traceapp:app", "--log-level", "trace", "--app-dir", str(tmp_path)) as server:
        httpx.get(server.url)
        server.wait_for("TRACE:    from the app at level 5")
    with sandman("traceapp:app", "--app-dir", str(tmp_path)) as server:
        httpx.get(server.url)
        server.wait_for(r'"GET / HTTP/1\.1" 200 OK', stream="stdout")
        server.stop()
    assert "from the app at level 5" not in server.stderr


def test_trace_level_logs_every_asgi_message():
    with sandman("tests.apps:hello", "--log-level", "trace") as server:
        httpx.get(server.url + "/t")
        server.wait_for(r"ASGI \[2\] Completed")
        server.stop()
    trace = [line for line in server.stderr.splitlines() if line.startswith("TRACE:")]
    client = r"127\.0\.0\.1:\d+ - ASGI \[2\]"
    expected = [
        r"TRACE:    ASGI \[1\] Started scope=\{'type': 'lifespan'",
        r"TRACE:    ASGI \[1\] Receive \{'type': 'lifespan\.startup'\}",
        r"TRACE:    ASGI \[1\] Send \{'type': 'lifespan\.startup\.complete'\}",
        rf"TRACE:    {client} Started scope=\{{'type': 'http'.*'headers': '<\.\.\.>'",
        rf"TRACE:    {client} Send \{{'type': 'http\.response\.start', 'status': 200, "
        r"'headers': '<\.\.\.>'\}",
        rf"TRACE:    {client} Send \{{'type': 'http\.response\.body', 'body': '<13 bytes>'\}}",
        rf"TRACE:    {client} Completed",
        r"TRACE:    ASGI \[1\] Receive \{'type': 'lifespan\.shutdown'\}",
        r"TRACE:    ASGI \[1\] Send \{'type': 'lifespan\.shutdown\.complete'\}",
        r"TRACE:    ASGI \[1\] Completed",
    ]
    asgi = [line for line in trace if "ASGI [" in line]
    assert len(asgi) == len(expected), asgi
    for line, pattern in zip(asgi, expected, strict=True):
        assert re.match(pattern, line), (line, pattern)


def test_no_asgi_trace_at_debug():
    with sandman("tests.apps:hello", "--log-level", "debug") as server:
        httpx.get(server.url)
        server.wait_for(r'"GET / HTTP/1\.1" 200 OK', stream="stdout")
        server.stop()
    assert "ASGI [" not in server.stderr
