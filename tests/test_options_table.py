"""``sandman_asgi/options.py`` is the one declaration of every setting; the command's
options, ``run()``, ``Config`` and docs/configuration.md must agree with it.

The command line is built from the table, so for it these tests check what click ends up
with (and that every environment spelling parses); ``run()`` and ``Config.__init__`` are
written out by hand, so for them they check names and defaults one by one.

``python -m tests.test_options_table --write`` regenerates the reference table in
docs/configuration.md after a change to the table.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from sandman_asgi import Config, run
from sandman_asgi.config import LOGGING_CONFIG
from sandman_asgi.options import (
    BY_NAME,
    COMMAND_LINE,
    CONFIG_KEYWORDS,
    OPTIONS,
    REQUIRED,
    RUN_KEYWORDS,
    Option,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
BEGIN = (
    "<!-- options: generated from sandman_asgi/options.py by "
    "`python -m tests.test_options_table --write` -->"
)
END = "<!-- end of options -->"
main_module = importlib.import_module("sandman_asgi.main")


def _signature_defaults(function: Any) -> dict[str, Any]:
    parameters = inspect.signature(function).parameters.values()
    return {
        p.name: REQUIRED if p.default is inspect.Parameter.empty else p.default
        for p in parameters
        if p.name != "self"
    }


def _same(a: Any, b: Any) -> bool:
    # The built-in logging dict by identity (a copy would be a different default).
    if a is LOGGING_CONFIG or b is LOGGING_CONFIG:
        return a is b
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(
    ("function", "declared"),
    [(run, RUN_KEYWORDS), (Config.__init__, CONFIG_KEYWORDS)],
    ids=["run", "Config"],
)
def test_keywords_and_defaults_are_the_tables(function, declared):
    ours = _signature_defaults(function)
    assert sorted(ours) == sorted(o.name for o in declared)
    wrong = {
        o.name: (ours[o.name], o.default) for o in declared if not _same(ours[o.name], o.default)
    }
    assert wrong == {}


def test_the_command_has_the_tables_parameters_in_its_order():
    params = main_module.main.params
    assert [p.name for p in params] == [o.name for o in COMMAND_LINE]
    for param, option in zip(params, COMMAND_LINE, strict=True):
        assert param.envvar == list(option.env), option.name
        if option.argument:
            continue
        assert "/".join(param.opts + param.secondary_opts) == option.flag
        assert param.help == option.help
        assert param.multiple == option.multiple
        if not option.multiple and option.name != "version":
            assert _same(param.default, option.command_line_default), option.name


def test_environment_spellings_follow_the_rules():
    for option in OPTIONS:
        assert option.env[:2] == tuple(f"{p}_{option.env[0][8:]}" for p in ("SANDMAN", "UVICORN"))
        if option.sandman and option.flag:
            flag = option.flag.split("/")[0]  # a switch pair: its first spelling
            assert option.env[0] == "SANDMAN_" + flag[2:].replace("-", "_").upper()
        else:
            assert option.env[0] == "SANDMAN_" + option.name.upper()  # uvicorn's rule
    assert BY_NAME["header_read_timeout"].env == (
        "SANDMAN_TIMEOUT_REQUEST_HEADER",
        "UVICORN_TIMEOUT_REQUEST_HEADER",
        "SANDMAN_HEADER_READ_TIMEOUT",
        "UVICORN_HEADER_READ_TIMEOUT",
    )
    assert BY_NAME["reload_dirs"].env[1] == "UVICORN_RELOAD_DIRS"  # as uvicorn reads it


# -- every environment spelling, parsed -----------------------------------------------------


def _sample(option: Option, tmp_path: Path) -> tuple[str, Any]:
    """A value to put in the environment for ``option`` and what ``run()`` should get."""
    special: dict[str, tuple[str, Any]] = {
        "app": ("tests.apps:hello", "tests.apps:hello"),
        "loop": ("asyncio", "asyncio"),
        "http": ("h11", "h11"),
        "ws": ("wsproto", "wsproto"),
        "headers": ("X-A:1", [("X-A", "1")]),
        "reload_dirs": (str(tmp_path), [str(tmp_path)]),
        "reload_includes": ("*.html", ["*.html"]),
        "reload_excludes": ("*.tmp", ["*.tmp"]),
        "env_file": (str(tmp_path / "empty.env"), str(tmp_path / "empty.env")),
        "log_config": (str(tmp_path / "log.json"), str(tmp_path / "log.json")),
        "workers": ("2", 2),
        # Repeatable: the environment spelling takes several values, split on spaces.
        "static": ("/a=/srv/a /b=/srv/b", ["/a=/srv/a", "/b=/srv/b"]),
        "static_max_age": ("60 /a=3600", ["60", "/a=3600"]),
        "cache_size": ("64M", "64M"),
        "ws_deflate_window_bits": ("10", 10),
    }
    if option.name in special:
        return special[option.name]
    if option.is_flag:
        flipped = not option.command_line_default
        return ("true" if flipped else "false"), flipped
    if isinstance(option.type, click.Choice):
        return option.type.choices[-1], option.type.choices[-1]
    if option.type in (int,) or isinstance(option.type, click.IntRange):
        return "7", 7
    if option.type in (float,) or isinstance(option.type, click.FloatRange):
        return "1.5", 1.5
    if option.type is bool:
        return "false", False
    return "some-value", "some-value"


ENV_CASES = [
    (option.name, variable)
    for option in COMMAND_LINE
    if option.name != "version"
    for variable in option.env
]


@pytest.mark.parametrize(("name", "variable"), ENV_CASES, ids=[v for _, v in ENV_CASES])
def test_every_environment_spelling_reaches_run(monkeypatch, tmp_path, name, variable):
    (tmp_path / "empty.env").write_text("")
    (tmp_path / "log.json").write_text("{}")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(main_module, "run", lambda **kwargs: seen.update(kwargs))
    value, expected = _sample(BY_NAME[name], tmp_path)
    args = [] if name == "app" else ["tests.apps:hello"]
    result = CliRunner().invoke(main_module.main, args, env={variable: value})
    assert result.exit_code == 0, result.output
    assert seen[name] == expected


# -- the reference in docs/configuration.md -------------------------------------------------


def _shown(value: Any) -> str:
    if value is REQUIRED:
        return "required"
    if value is LOGGING_CONFIG:
        return "the built-in config (uvicorn's format)"
    if isinstance(value, enum.Enum):
        return f"`ssl.{value.name}`"
    return f"`{value!r}`"


def reference_markdown() -> str:
    """The table docs/configuration.md carries between its markers."""
    rows = [
        "| keyword | flag | environment | default | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for option in OPTIONS:
        if option.argument:
            flag = "`APP` (argument)"
        elif option.flag:
            flag = f"`{option.flag}`"
        else:
            flag = "(keyword only)"
        if option.flag or option.argument:
            env = ", ".join(f"`{name}`" for name in option.env)
        else:
            env = ""
        where = [] if option.in_config else ["`run()` only"]
        if not option.in_run and option.in_config:
            where = ["`Config` only"]
        if not option.in_run and not option.in_config:
            where = ["command line only"]
        meaning = " ".join([option.help.replace("|", "\\|")] + [f"({w})" for w in where]).strip()
        default = _shown(option.default)
        rows.append(f"| `{option.name}` | {flag} | {env} | {default} | {meaning} |")
    return "\n".join(rows)


def _doc_section(text: str) -> str:
    start = text.index(BEGIN) + len(BEGIN)
    return text[start : text.index(END, start)].strip()


def test_configuration_reference_is_the_tables():
    assert _doc_section(DOC.read_text(encoding="utf-8")) == reference_markdown(), (
        "docs/configuration.md is out of date: run python -m tests.test_options_table --write"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        text = DOC.read_text(encoding="utf-8")
        start = text.index(BEGIN) + len(BEGIN)
        end = text.index(END, start)
        DOC.write_text(text[:start] + "\n\n" + reference_markdown() + "\n\n" + text[end:])
    else:
        print(reference_markdown())
