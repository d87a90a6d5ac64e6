"""How ``sandman dev|run`` turns PATH and ``--app`` into an import string (fastapi-cli's
rules), and what it prints. The launchers themselves run end to end in test_launchers.py."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette

from sandman_asgi.launch.banner import banner_lines, base_url, docs_path
from sandman_asgi.launch.discover import (
    Discovered,
    DiscoveryError,
    choose_app,
    default_path,
    module_source,
    pyproject_entrypoint,
)


def make_tree(root: Path, *files: str) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


@pytest.mark.parametrize(
    ("given", "module", "root"),
    [
        ("single.py", "single", "."),
        ("pkg/mod/app.py", "pkg.mod.app", "."),
        ("pkg/mod/__init__.py", "pkg.mod", "."),
        ("pkg/mod", "pkg.mod", "."),
        ("pkg", "pkg", "."),
        ("pkg/__init__.py", "pkg", "."),
        # A folder without __init__.py ends the package: loose/ is the import root.
        ("loose/pkg/mod/app.py", "pkg.mod.app", "loose"),
        ("loose/script.py", "script", "loose"),
    ],
)
def test_module_name_climbs_the_package_folders(tmp_path, given, module, root):
    make_tree(
        tmp_path,
        "single.py",
        "pkg/__init__.py",
        "pkg/mod/__init__.py",
        "pkg/mod/app.py",
        "loose/script.py",
        "loose/pkg/__init__.py",
        "loose/pkg/mod/__init__.py",
        "loose/pkg/mod/app.py",
    )
    source = module_source(tmp_path / given)
    assert source.name == module
    assert source.import_root == (tmp_path / root).resolve()


def test_the_same_file_gets_the_same_name_from_inside_its_package(tmp_path, monkeypatch):
    make_tree(tmp_path, "pkg/__init__.py", "pkg/mod/__init__.py", "pkg/mod/app.py")
    monkeypatch.chdir(tmp_path / "pkg" / "mod")
    assert module_source(Path("app.py")).name == "pkg.mod.app"
    assert module_source(Path("..")).name == "pkg"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ((), "does not exist"),
        (("bare/x.py",), "directory without __init__.py"),
        (("notes.txt",), "not a Python file"),
        (("my-app/__init__.py", "my-app/main.py"), "not a valid Python module name"),
    ],
)
def test_bad_paths_say_what_is_wrong(tmp_path, files, message):
    make_tree(tmp_path, *files)
    target = {
        (): "missing.py",
        ("bare/x.py",): "bare",
        ("notes.txt",): "notes.txt",
    }.get(files, "my-app/main.py")
    with pytest.raises(DiscoveryError, match=message):
        module_source(tmp_path / target)


def test_default_paths_in_fastapi_clis_order(tmp_path):
    with pytest.raises(DiscoveryError, match="main.py, app.py, api.py"):
        default_path(tmp_path)
    make_tree(tmp_path, "app/api.py")
    assert default_path(tmp_path) == tmp_path / "app/api.py"
    make_tree(tmp_path, "app/main.py")
    assert default_path(tmp_path) == tmp_path / "app/main.py"
    make_tree(tmp_path, "api.py")
    assert default_path(tmp_path) == tmp_path / "api.py"
    make_tree(tmp_path, "main.py")
    assert default_path(tmp_path) == tmp_path / "main.py"


def module(**attrs: object) -> types.ModuleType:
    mod = types.ModuleType("m")
    mod.__dict__.update(attrs)
    return mod


async def raw_asgi(scope, receive, send):  # an ASGI app that is no framework's
    pass


def test_app_then_api_then_the_first_framework_app_by_name():
    fast, star, other = FastAPI(), Starlette(), FastAPI()
    assert choose_app(module(app=fast, api=star), "m", None)[:2] == ("app", fast)
    assert choose_app(module(api=star, b=other), "m", None)[:2] == ("api", star)
    # "app" that is no framework app is passed over, as fastapi-cli does
    assert choose_app(module(app=raw_asgi, zeta=fast, beta=other), "m", None)[:2] == (
        "beta",
        other,
    )
    assert choose_app(module(api=star), "m", None)[2] == "by name"
    assert choose_app(module(server=star), "m", None)[2] == "by type"


def test_app_option_names_any_asgi_app_but_nothing_else():
    assert choose_app(module(handler=raw_asgi), "m", "handler") == ("handler", raw_asgi, "--app")
    with pytest.raises(DiscoveryError, match="has no attribute 'nope'"):
        choose_app(module(app=FastAPI()), "m", "nope")

    def helper() -> str:
        return "not an app"

    with pytest.raises(DiscoveryError, match="is a function, not an ASGI application"):
        choose_app(module(helper=helper), "m", "helper")
    with pytest.raises(DiscoveryError, match="is a int, not an ASGI application"):
        choose_app(module(count=3), "m", "count")


def test_no_app_found_tells_to_use_the_app_option():
    with pytest.raises(DiscoveryError, match="no FastAPI or Starlette app found.*--app NAME"):
        choose_app(module(x=1), "m", None)


def test_pyproject_entrypoint(tmp_path):
    assert pyproject_entrypoint(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert pyproject_entrypoint(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[tool.fastapi]\nentrypoint = "svc.web:api"\n')
    assert pyproject_entrypoint(tmp_path) == "svc.web:api"
    (tmp_path / "pyproject.toml").write_text("[tool.fastapi]\nentrypoint = 3\n")
    with pytest.raises(DiscoveryError, match="must be a string"):
        pyproject_entrypoint(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.fastapi\n")
    with pytest.raises(DiscoveryError, match="not valid TOML"):
        pyproject_entrypoint(tmp_path)


def test_docs_path_follows_the_apps_settings():
    assert docs_path(FastAPI()) == "/docs"
    assert docs_path(FastAPI(docs_url="/manual")) == "/manual"
    assert docs_path(FastAPI(docs_url=None)) == "/redoc"
    assert docs_path(FastAPI(docs_url=None, redoc_url=None)) is None
    assert docs_path(FastAPI(openapi_url=None)) is None


def test_base_url(monkeypatch):
    assert base_url("127.0.0.1", 8000, None) == "http://127.0.0.1:8000"
    assert base_url("::1", 8000, None) == "http://[::1]:8000"
    assert base_url("0.0.0.0", 80, "https://api.example.com/") == "https://api.example.com"


def test_banner_names_app_mode_url_and_docs(monkeypatch):
    monkeypatch.delenv("FASTAPI_PUBLIC_URL", raising=False)
    found = Discovered("main:app", Path("/srv"), FastAPI(), "by name")
    lines = banner_lines("dev", found, "127.0.0.1", 8000, True, None)
    assert lines == [
        "sandman dev: FastAPI app in development mode (auto-reload on)",
        "  import    main:app  (by name; from /srv)",
        "  serving   http://127.0.0.1:8000",
        "  API docs  http://127.0.0.1:8000/docs",
    ]
    starlette = Discovered("pkg:api", Path("/srv"), Starlette(), "--app")
    lines = banner_lines("run", starlette, "0.0.0.0", 80, False, 4)
    assert lines[0] == "sandman run: Starlette app in production mode (4 workers)"
    assert lines[-1] == "  serving   http://0.0.0.0:80"  # no docs line: Starlette has none
    monkeypatch.setenv("FASTAPI_PUBLIC_URL", "https://example.com")
    lines = banner_lines("run", found, "0.0.0.0", 80, False, None)
    assert lines[-2:] == ["  serving   https://example.com", "  API docs  https://example.com/docs"]
