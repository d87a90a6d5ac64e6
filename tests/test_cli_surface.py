"""The command line as uvicorn users type it (D-CLI-1..6 in docs/uvicorn-surface-coverage.md):
the option set, environment variables (``UVICORN_*``, ``SANDMAN_*``, ``WEB_CONCURRENCY``,
``FORWARDED_ALLOW_IPS``), ``--env-file``, ``--version``, selectors.

Parsing is checked in-process with click's runner and ``run()`` replaced by a recorder
(fast, exact); a few end-to-end runs prove the real process sees the same thing.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from sandman_asgi import Config
from tests.serverproc import ROOT, ServerProcess, command, sandman, spawn
from tests.signatures import dump

HERE = Path(__file__).resolve().parent
main_module = importlib.import_module("sandman_asgi.main")  # the package re-exports main()
SNAPSHOT = json.loads((HERE / "uvicorn_0_54_surface.json").read_text())
UVICORN = Path(os.environ.get("UVICORN_ANCHOR_BIN", ROOT / ".ci-uvicorn" / "bin" / "uvicorn"))
OPTION = re.compile(r"^  (--[a-z0-9-]+)(?: / (--[a-z0-9-]+))?", re.MULTILINE)
# Sandman's own: hardening limits (docs/hardening.md), static mounts, the response cache,
# metrics and health (docs/static-files-and-cache.md, docs/metrics.md), WebSocket
# compression memory (docs/memory.md); everything else is uvicorn's.
SANDMAN_OPTIONS = {
    "--limit-request-line",
    "--limit-request-fields",
    "--limit-request-body",
    "--limit-connections",
    "--timeout-request-header",
    "--timeout-request-body",
    "--limit-request-body-rate",
    "--limit-request-body-rate-grace",
    "--h2-max-concurrent-streams",
    "--static",
    "--static-max-age",
    "--static-index",
    "--cache-size",
    "--metrics-port",
    "--metrics-host",
    "--health-loop-timeout",
    "--ws-deflate-window-bits",
    "--ws-deflate-context-takeover",
    "--no-ws-deflate-context-takeover",
}


# -- the option set -------------------------------------------------------------------------


def test_every_option_has_uvicorns_name_type_default_and_form():
    ours = [p for p in dump("sandman_asgi")["cli"] if not set(p[1]) & SANDMAN_OPTIONS]
    assert ours == SNAPSHOT["cli"]


def _help_options(text: str) -> set[str]:
    return {opt for pair in OPTION.findall(text) for opt in pair if opt}


def test_help_lists_the_same_options_as_the_snapshot():
    result = subprocess.run(command("--help"), capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 0
    expected = {opt for p in SNAPSHOT["cli"] for opt in p[1] + p[2] if opt.startswith("--")}
    assert _help_options(result.stdout) == expected | {"--help"} | SANDMAN_OPTIONS


def test_help_lists_the_same_options_as_installed_uvicorn():
    if not UVICORN.exists():
        pytest.skip(f"uvicorn 0.54 reference not installed at {UVICORN}")
    theirs = subprocess.run([str(UVICORN), "--help"], capture_output=True, text=True, timeout=30)
    ours = subprocess.run(command("--help"), capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert _help_options(ours.stdout) == _help_options(theirs.stdout) | SANDMAN_OPTIONS
    assert len(_help_options(ours.stdout)) > 50


# -- parsing, in-process --------------------------------------------------------------------


@pytest.fixture
def parse(monkeypatch) -> Any:
    """``parse(args, env) -> kwargs`` that ``run()`` would have received."""
    seen: dict[str, Any] = {}

    def fake_run(**kwargs: Any) -> None:
        seen.clear()
        seen.update(kwargs)

    monkeypatch.setattr(main_module, "run", fake_run)
    for name in list(os.environ):
        if name.startswith(("UVICORN_", "SANDMAN_")):
            monkeypatch.delenv(name)

    def invoke(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
        result = CliRunner().invoke(main_module.main, args, env=env or {})
        assert result.exit_code == 0, result.output
        return dict(seen)

    return invoke


def test_defaults_are_uvicorns(parse):
    kwargs = parse(["tests.apps:hello"])
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8000
    assert kwargs["workers"] is None and kwargs["forwarded_allow_ips"] is None
    assert kwargs["headers"] == [] and kwargs["reload_dirs"] is None
    assert kwargs["app_dir"] == "" and kwargs["log_config"] is main_module.LOGGING_CONFIG


@pytest.mark.parametrize("prefix", ["UVICORN", "SANDMAN"])
def test_env_vars_use_the_parameter_name(parse, prefix, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env = {
        f"{prefix}_APP": "tests.apps:hello",
        f"{prefix}_PORT": "1234",
        f"{prefix}_ROOT_PATH": "/env",
        f"{prefix}_ACCESS_LOG": "false",
        f"{prefix}_PROXY_HEADERS": "0",
        f"{prefix}_RELOAD": "yes",
        # click splits a path list on os.pathsep, other lists on whitespace (as uvicorn).
        f"{prefix}_RELOAD_DIRS": f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}",
        f"{prefix}_RELOAD_INCLUDES": "*.html  *.txt",
        f"{prefix}_HEADERS": "X-One:1 X-Two:2",
        f"{prefix}_LIMIT_CONCURRENCY": "7",
        f"{prefix}_LOG_LEVEL": "debug",
        f"{prefix}_TIMEOUT_KEEP_ALIVE": "9",
        f"{prefix}_FORWARDED_ALLOW_IPS": "10.0.0.1",
    }
    kwargs = parse([], env)
    assert kwargs["app"] == "tests.apps:hello"
    assert kwargs["port"] == 1234 and kwargs["root_path"] == "/env"
    assert kwargs["access_log"] is False and kwargs["proxy_headers"] is False
    assert kwargs["reload"] is True
    assert kwargs["reload_dirs"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert kwargs["reload_includes"] == ["*.html", "*.txt"]
    assert kwargs["headers"] == [("X-One", "1"), ("X-Two", "2")]
    assert kwargs["limit_concurrency"] == 7 and kwargs["log_level"] == "debug"
    assert kwargs["timeout_keep_alive"] == 9
    assert kwargs["forwarded_allow_ips"] == "10.0.0.1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("on", True), ("y", True), ("0", False), ("off", False)],
)
def test_boolean_env_values(parse, value, expected):
    kwargs = parse(["tests.apps:hello"], {"UVICORN_DATE_HEADER": value})
    assert kwargs["date_header"] is expected


def test_command_line_beats_env(parse):
    env = {"UVICORN_PORT": "1", "SANDMAN_PORT": "2", "UVICORN_APP": "env:app"}
    kwargs = parse(["cli:app", "--port", "3", "--no-access-log"], env)
    assert (kwargs["app"], kwargs["port"], kwargs["access_log"]) == ("cli:app", 3, False)


def test_sandman_env_beats_uvicorn_env(parse):
    env = {"UVICORN_PORT": "1", "SANDMAN_PORT": "2", "UVICORN_HOST": "0.0.0.0"}
    kwargs = parse(["tests.apps:hello"], env)
    assert (kwargs["port"], kwargs["host"]) == (2, "0.0.0.0")


def test_bad_env_value_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(main_module, "run", lambda **kwargs: None)
    result = CliRunner().invoke(main_module.main, ["x:y"], env={"UVICORN_PORT": "eighty"})
    assert result.exit_code == 2
    assert "Invalid value for '--port'" in result.output


def test_web_concurrency_is_the_workers_default(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert Config("x:y", log_config=None).workers == 4
    assert Config("x:y", log_config=None, workers=2).workers == 2
    monkeypatch.delenv("WEB_CONCURRENCY")
    assert Config("x:y", log_config=None).workers == 1


def test_forwarded_allow_ips_env_is_the_default(monkeypatch):
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert Config("x:y", log_config=None).forwarded_allow_ips == ["127.0.0.1", "::1"]
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1, 10.0.0.2")
    assert Config("x:y", log_config=None).forwarded_allow_ips == ["10.0.0.1", "10.0.0.2"]
    explicit = Config("x:y", log_config=None, forwarded_allow_ips="*").forwarded_allow_ips
    assert explicit == ["*"]


# -- end to end -----------------------------------------------------------------------------


def test_env_only_run_with_uvicorn_and_sandman_names():
    # No positional APP on the command line: it must come from UVICORN_APP.
    env = {"UVICORN_APP": "tests.apps:scope_echo", "SANDMAN_ROOT_PATH": "/x"}
    with _no_app_arg(env) as server:
        assert httpx.get(server.url + "/y").json()["scope"]["root_path"] == "/x"


@contextmanager
def _no_app_arg(env: dict[str, str]) -> Iterator[ServerProcess]:
    server = spawn(command("--port", "0"), env=env)
    try:
        match = server.wait_for(r"running on http://127\.0\.0\.1:(\d+) ")
        server.port = int(match.group(1))
        yield server
    finally:
        server.stop()


def test_env_file_loads_settings_for_the_app_not_for_the_server(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("GREETING=hello from dotenv\nUVICORN_ROOT_PATH=/ignored\n")
    with sandman("tests.supervised_apps:env", "--env-file", str(env_file)) as server:
        assert httpx.get(server.url + "/GREETING").text == "hello from dotenv"
        # The variable reached the app's environment, but did not configure the server:
        # a root_path would have been prefixed onto the path the app sees.
        assert httpx.get(server.url + "/UVICORN_ROOT_PATH").text == "/ignored"
    assert f"INFO:     Loading environment from '{env_file}'" in server.stderr


def test_version_line_has_uvicorns_shape():
    ours = subprocess.run(command("--version"), capture_output=True, text=True, timeout=30)
    assert ours.returncode == 0
    shape = r"Running {name} \S+ with CPython \d+\.\d+\.\d+ on \w+\n"
    assert re.fullmatch(shape.format(name="sandman"), ours.stdout)
    from sandman_asgi import __version__

    assert f"sandman {__version__} " in ours.stdout
    if UVICORN.exists():
        theirs = subprocess.run([str(UVICORN), "--version"], capture_output=True, text=True)
        assert re.fullmatch(shape.format(name="uvicorn"), theirs.stdout)


@pytest.mark.parametrize(
    ("flags", "note"),
    [
        (["--http", "h11"], "--http h11: Sandman uses its own HTTP/1.1 implementation"),
        (["--http", "httptools"], "--http httptools: Sandman uses its own HTTP/1.1"),
        (["--http", "zttp"], "--http zttp has no effect"),
        (["--ws", "wsproto"], "--ws wsproto has no effect"),
        (["--ws", "websockets"], "--ws websockets has no effect"),
        (["--ws", "websockets-sansio"], "--ws websockets-sansio has no effect"),
        (["--http2"], "--http2: HTTP/2 is on by default"),
    ],
)
def test_selectors_without_meaning_are_accepted_with_a_note(flags, note):
    with sandman("tests.apps:hello", *flags) as server:
        assert httpx.get(server.url).text == "Hello, world!"
        server.stop()
    assert server.stderr.count(note) == 1
    assert f"INFO:     {note}" in server.stderr


@pytest.mark.parametrize(
    "flags",
    [
        ["--loop", "asyncio"],
        ["--loop", "uvloop"],
        ["--loop", "asyncio:new_event_loop"],
        ["--http", "auto", "--ws", "auto", "--interface", "asgi3"],
    ],
)
def test_selectors_with_meaning_are_accepted_silently(flags):
    with sandman("tests.apps:hello", *flags) as server:
        assert httpx.get(server.url).text == "Hello, world!"
        server.stop()
    assert "has no effect" not in server.stderr


def test_bad_custom_loop_exits_3():
    result = subprocess.run(
        command("tests.apps:hello", "--port", "0", "--loop", "nowhere:loop"),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert result.returncode == 3
    assert result.stderr.startswith(
        'ERROR:    Error loading custom loop setup function. Could not import module "nowhere".'
    )


def test_python_dash_m_is_the_same_command():
    via_m = subprocess.run(command("--help"), capture_output=True, text=True, timeout=30)
    script = Path(sys.executable).parent / "sandman"
    via_script = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert _help_options(via_m.stdout) == _help_options(via_script.stdout)


def test_app_string_may_name_a_nested_attribute():
    # D-CLI-2: ``module:obj.attr`` walks the dotted path, as uvicorn's importer does.
    with sandman("tests.apps:Routes.hello") as server:
        assert httpx.get(server.url).text == "Hello, world!"
